/**
 * Field names as calicoctl reads them. calicoctl decodes documents with Go's
 * encoding/json, which matches a field name to a struct field in any case (`Order`,
 * `exportv4`, `CIDR` all land on their field: tried with the real calicoctl). A Calico
 * user's files may therefore spell a field in another case and still work; tortie accepts
 * them too, stores the canonical spelling, and says which names it rewrote.
 *
 * A name is rewritten only when exactly one known field of that object matches it
 * case-insensitively and the object does not also carry that field; anything else stays
 * an unknown field, refused with the nearest name. Map keys (labels, annotations,
 * selectors' maps) are data, never rewritten: only the keys of object schemas are.
 */
import type { z } from 'zod';
import { knownKeysAt } from '../../util/zod-shape.js';
import { formatPath } from './issues.js';

export interface FieldRewrite {
  /** Where the field was, as written: `spec.Order`. */
  readonly path: string;
  readonly from: string;
  readonly to: string;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * `value` (found at `path` of `schema`) with its field names in their canonical case;
 * every rewrite is appended to `rewrites`. The input is not modified.
 */
export function canonicalFieldNames(
  value: unknown,
  schema: z.ZodTypeAny,
  path: readonly (string | number)[],
  rewrites: FieldRewrite[],
): unknown {
  if (Array.isArray(value))
    return value.map((item, i) => canonicalFieldNames(item, schema, [...path, i], rewrites));
  if (!isRecord(value)) return value;
  const known = knownKeysAt(schema, path);
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    let name = key;
    if (known.length > 0 && !known.includes(key)) {
      const lower = key.toLowerCase();
      const same = known.filter((k) => k.toLowerCase() === lower);
      const rivals = Object.keys(value).filter((k) => k.toLowerCase() === lower);
      if (same.length === 1 && rivals.length === 1) {
        name = same[0]!;
        rewrites.push({ path: formatPath([...path, key]), from: key, to: name });
      }
    }
    Object.defineProperty(out, name, {
      value: canonicalFieldNames(item, schema, [...path, name], rewrites),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}
