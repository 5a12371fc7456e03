/**
 * zod issues → one (path, reason) pair per refusal, in the words src/policy/resources.ts
 * uses ("required field is missing", "unknown field", "33 is out of range 20-32").
 */
import { z } from 'zod';

export interface Refusal {
  /** "spec.blockSize", "metadata.labels[\"a b\"]", "" for the whole object. */
  readonly path: string;
  readonly reason: string;
}

export function formatPath(path: readonly (string | number)[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(part)) out += out === '' ? part : `.${part}`;
    else out += `[${JSON.stringify(part)}]`;
  }
  return out;
}

export const errorMap: z.ZodErrorMap = (issue, ctx) => {
  switch (issue.code) {
    case z.ZodIssueCode.invalid_type:
      return {
        message:
          issue.received === 'undefined'
            ? 'required field is missing'
            : `expected ${issue.expected}, got ${issue.received}`,
      };
    case z.ZodIssueCode.invalid_enum_value:
      return {
        message: `${JSON.stringify(issue.received)} is not one of ${issue.options.join(', ')}`,
      };
    case z.ZodIssueCode.invalid_literal:
      return { message: `expected ${JSON.stringify(issue.expected)}` };
    default:
      return { message: ctx.defaultError };
  }
};

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
