/**
 * Kubernetes label syntax, checked before anything is allocated so that a bad label is a
 * config error (code 7), not a datastore refusal after the pod was half set up.
 *
 *   key   := [prefix '/'] name      prefix: a DNS subdomain, at most 253 characters
 *   name  := 1-63 of [A-Za-z0-9_.-], starting and ending with a letter or digit
 *   value := empty, or as name
 */
const NAME = /^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/;

/** Why `key` is not a label key, or undefined when it is one. */
export function labelKeyProblem(key: string): string | undefined {
  const slash = key.indexOf('/');
  const name = slash < 0 ? key : key.slice(slash + 1);
  if (slash >= 0) {
    const prefix = key.slice(0, slash);
    if (prefix.length === 0 || prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix)) {
      return `label key ${JSON.stringify(key)}: prefix ${JSON.stringify(prefix)} is not a DNS subdomain`;
    }
  }
  if (!NAME.test(name)) {
    return `label key ${JSON.stringify(key)}: ${JSON.stringify(name)} must be 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`;
  }
  return undefined;
}

/** Why `value` is not a label value, or undefined when it is one. */
export function labelValueProblem(key: string, value: string): string | undefined {
  if (value === '' || NAME.test(value)) return undefined;
  return `label ${key}=${JSON.stringify(value)}: a value must be empty or 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`;
}
