/**
 * How tortie words a zod issue for a user: a field path such as
 * `spec.ingress[0].ports[1]` or `metadata.labels["a b"]`, and messages such as
 * "required field is missing" or `"Foo" is not one of Allow, Deny`. The policy resources
 * and the datastore schemas both refuse objects in these words.
 */
import { z } from 'zod';

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
