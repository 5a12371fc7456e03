/**
 * zod issues → one (path, reason) pair per refusal, in the words src/policy/resources.ts
 * uses ("required field is missing", "unknown field", "33 is out of range 20-32").
 */
import { z } from 'zod';
import { errorMap, formatPath } from '../../util/zod-issues.js';

export { errorMap, formatPath };

export interface Refusal {
  /** "spec.blockSize", "metadata.labels[\"a b\"]", "" for the whole object. */
  readonly path: string;
  readonly reason: string;
}

export function refusalOf(issue: z.ZodIssue): Refusal {
  if (issue.code === z.ZodIssueCode.unrecognized_keys) {
    return { path: formatPath([...issue.path, issue.keys[0]!]), reason: 'unknown field' };
  }
  return { path: formatPath(issue.path), reason: issue.message };
}

/** Parses with the shared error map; the first issue becomes the refusal. */
export function parseWith<T>(
  schema: z.ZodType<T, z.ZodTypeDef, unknown>,
  value: unknown,
): { ok: true; value: T } | { ok: false; refusal: Refusal } {
  const result = schema.safeParse(value, { errorMap });
  return result.success
    ? { ok: true, value: result.data }
    : { ok: false, refusal: refusalOf(result.error.issues[0]!) };
}
