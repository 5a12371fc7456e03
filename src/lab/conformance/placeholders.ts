/**
 * Placeholders in case-file policies, replaced before the policies are parsed:
 * `$POD_IP(ns/pod)` is that pod's address, `$POD_CIDR` a CIDR holding every pod of the
 * model. They may sit anywhere inside a string value ("$POD_IP(x/b)/32").
 */
import type { JsonPath } from './errors.js';

export interface Addresses {
  podIp(key: string): string;
  podCidr: string;
}

const POD_IP = /\$POD_IP\(([^)]*)\)/g;
const POD_CIDR = /\$POD_CIDR\b/g;

function mapStrings(value: unknown, f: (s: string) => string): unknown {
  if (typeof value === 'string') return f(value);
  if (Array.isArray(value)) return value.map((v) => mapStrings(v, f));
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, mapStrings(v, f)]));
  }
  return value;
}

/** A deep copy of `value` with every placeholder replaced. */
export function substitutePlaceholders(value: unknown, addresses: Addresses): unknown {
  return mapStrings(value, (s) =>
    s
      .replace(POD_IP, (_m, key: string) => addresses.podIp(key.trim()))
      .replace(POD_CIDR, addresses.podCidr),
  );
}

/** The first malformed placeholder or unknown pod, with the path of its string under `value`. */
export function placeholderProblem(
  value: unknown,
  knownPod: (key: string) => boolean,
  at: JsonPath = [],
): { path: JsonPath; reason: string } | undefined {
  if (typeof value === 'string') {
    for (const m of value.matchAll(POD_IP)) {
      const key = m[1]!.trim();
      if (!knownPod(key)) return { path: at, reason: `${m[0]}: no pod ${key} in the model` };
    }
    const rest = value.replace(POD_IP, '');
    if (rest.includes('$POD_IP')) {
      return { path: at, reason: `${JSON.stringify(value)}: write $POD_IP(namespace/pod)` };
    }
    return undefined;
  }
  const entries: [string | number, unknown][] = Array.isArray(value)
    ? value.map((v, i) => [i, v])
    : typeof value === 'object' && value !== null
      ? Object.entries(value)
      : [];
  for (const [k, v] of entries) {
    const problem = placeholderProblem(v, knownPod, [...at, k]);
    if (problem !== undefined) return problem;
  }
  return undefined;
}

/** True when `value` holds a placeholder anywhere. */
export function hasPlaceholders(value: unknown): boolean {
  let found = false;
  mapStrings(value, (s) => {
    if (/\$POD_(IP\(|CIDR\b)/.test(s)) found = true;
    return s;
  });
  return found;
}
