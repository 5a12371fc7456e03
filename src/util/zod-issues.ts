/**
 * How tortie words a zod issue for a user: a field path such as
 * `spec.ingress[0].ports[1]` or `metadata.labels["a b"]`, and messages such as
 * "required field is missing" or `"Foo" is not one of Allow, Deny`. The policy resources
 * and the datastore schemas both refuse objects in these words.
 */
import { z } from 'zod';
import { didYouMean } from './nearest.js';
import { knownKeysAt } from './zod-shape.js';

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
            : issue.expected === 'string' &&
                (issue.received === 'number' || issue.received === 'boolean')
              ? `expected string, got ${issue.received} (quote it: YAML reads it as a ${issue.received})`
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

export interface Refusal {
  /** "spec.blockSize", "metadata.labels[\"a b\"]", "" for the whole object. */
  readonly path: string;
  readonly reason: string;
}

/**
 * The refusals one issue makes: one per unknown key, each with the nearest field name the
 * schema knows at that place ("unknown field (did you mean natOutgoing?)").
 */
export function refusalsOf(issue: z.ZodIssue, schema?: z.ZodTypeAny): Refusal[] {
  if (issue.code === z.ZodIssueCode.unrecognized_keys) {
    const known = schema === undefined ? [] : knownKeysAt(schema, issue.path);
    return issue.keys.map((key) => ({
      path: formatPath([...issue.path, key]),
      reason: `unknown field${didYouMean(key, known)}`,
    }));
  }
  return [{ path: formatPath(issue.path), reason: issue.message }];
}

/** Every refusal of a failed parse, each once, in the order zod found them. */
export function allRefusals(error: z.ZodError, schema?: z.ZodTypeAny): Refusal[] {
  const seen = new Set<string>();
  const out: Refusal[] = [];
  for (const issue of error.issues) {
    for (const r of refusalsOf(issue, schema)) {
      const id = `${r.path}\u0000${r.reason}`;
      if (seen.has(id)) continue;
      seen.add(id);
      out.push(r);
    }
  }
  return out;
}
