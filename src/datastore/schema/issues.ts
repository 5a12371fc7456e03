/**
 * zod issues → (path, reason) pairs, one per problem, in the words src/policy/resources.ts
 * uses ("required field is missing", "unknown field (did you mean natOutgoing?)",
 * "33 is out of range 20-32"). Every problem of an object is reported, not only the first.
 */
import {
  allRefusals,
  errorMap,
  formatPath,
  refusalsOf,
  type Refusal,
} from '../../util/zod-issues.js';
import type { z } from 'zod';

export { allRefusals, errorMap, formatPath, refusalsOf, type Refusal };

/** Parses with the shared error map; a failure carries every problem found. */
export function parseWith<T>(
  schema: z.ZodType<T, z.ZodTypeDef, unknown>,
  value: unknown,
): { ok: true; value: T } | { ok: false; refusals: Refusal[] } {
  const result = schema.safeParse(value, { errorMap });
  return result.success
    ? { ok: true, value: result.data }
    : { ok: false, refusals: allRefusals(result.error, schema) };
}
