/**
 * The field names an object schema knows at a path of a zod schema, so an "unknown field"
 * refusal can suggest the nearest one. Looks through the wrappers tortie's schemas use
 * (optional, default, effects, arrays, records, unions, pipelines, lazy).
 */
import { z } from 'zod';

type Any = z.ZodTypeAny;

function unwrap(schema: Any): Any[] {
  if (schema instanceof z.ZodOptional || schema instanceof z.ZodNullable)
    return unwrap(schema.unwrap() as Any);
  if (schema instanceof z.ZodDefault) return unwrap(schema.removeDefault() as Any);
  if (schema instanceof z.ZodEffects) return unwrap(schema.innerType() as Any);
  if (schema instanceof z.ZodPipeline) return unwrap(schema._def.in as Any);
  if (schema instanceof z.ZodLazy) return unwrap(schema.schema as Any);
  if (schema instanceof z.ZodBranded) return unwrap(schema.unwrap() as Any);
  if (schema instanceof z.ZodUnion || schema instanceof z.ZodDiscriminatedUnion)
    return (schema.options as Any[]).flatMap(unwrap);
  if (schema instanceof z.ZodIntersection)
    return [...unwrap(schema._def.left as Any), ...unwrap(schema._def.right as Any)];
  return [schema];
}

function step(schema: Any, part: string | number): Any[] {
  return unwrap(schema).flatMap((s): Any[] => {
    if (s instanceof z.ZodObject && typeof part === 'string') {
      const field = (s.shape as Record<string, Any>)[part];
      return field === undefined ? [] : [field];
    }
    if (s instanceof z.ZodArray && typeof part === 'number') return [s.element as Any];
    if (s instanceof z.ZodRecord) return [s.valueSchema as Any];
    if (s instanceof z.ZodTuple && typeof part === 'number') {
      const item = (s.items as Any[])[part];
      return item === undefined ? [] : [item];
    }
    return [];
  });
}

/** The keys of the object schema(s) found at `path`; empty when there is none. */
export function knownKeysAt(schema: Any, path: readonly (string | number)[]): string[] {
  let here: Any[] = [schema];
  for (const part of path) here = here.flatMap((s) => step(s, part));
  const keys = new Set<string>();
  for (const s of here.flatMap(unwrap))
    if (s instanceof z.ZodObject) for (const k of Object.keys(s.shape as object)) keys.add(k);
  return [...keys];
}
