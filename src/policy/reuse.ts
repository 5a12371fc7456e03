/**
 * Keeping unchanged rules the same objects across versions of a policy or profile.
 *
 * The watch hands out a new object for every version of a resource, and its conversion
 * (./resources.ts) builds every rule anew: a one-rule edit of a 10,000-rule policy looks,
 * by object, like 10,000 new rules. Here each new rule equal in value to the rule the
 * previous version had at the same place (counted from the front, or from the back for
 * the rules after an insertion or a removal) is replaced by that previous object, and a
 * version equal throughout is the previous object itself. The compiler compares rules by
 * identity first (./compile/rules-plan.ts), so what it sees of an edit is the edit.
 *
 * Equality is by value as JSON sees it: an absent field equals a field set to undefined.
 */
import { policyKey, type Policy, type Profile, type Rule, type World } from './model.js';

/** Whether two JSON-like values are equal (objects by fields, arrays by position). */
export function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameValue(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  let fields = 0;
  for (const k in x) {
    if (x[k] === undefined) continue;
    fields++;
    if (!sameValue(x[k], y[k])) return false;
  }
  for (const k in y) if (y[k] !== undefined) fields--;
  return fields === 0;
}

/**
 * `next` with each rule equal to `prev`'s at the same place from the front, or from the
 * back past the first difference, replaced by `prev`'s object; `prev` itself when equal.
 */
export function reuseRules(prev: readonly Rule[], next: readonly Rule[]): readonly Rule[] {
  if (prev === next) return prev;
  const max = Math.min(prev.length, next.length);
  let head = 0;
  while (head < max && sameValue(prev[head], next[head])) head++;
  if (head === prev.length && head === next.length) return prev;
  let tail = 0;
  while (tail < max - head && sameValue(prev[prev.length - 1 - tail], next[next.length - 1 - tail]))
    tail++;
  const out = new Array<Rule>(next.length);
  for (let i = 0; i < next.length; i++) {
    if (i < head) out[i] = prev[i]!;
    else if (i >= next.length - tail) out[i] = prev[prev.length - (next.length - i)]!;
    else out[i] = next[i]!;
  }
  return out;
}

/** `next` with its rules reused from `prev` (the previous version); `prev` when equal. */
export function reuseRuleLists<T extends Policy | Profile>(prev: T | undefined, next: T): T {
  if (prev === undefined || prev === next) return next;
  const ingress = reuseRules(prev.ingress, next.ingress);
  const egress = reuseRules(prev.egress, next.egress);
  if (ingress === prev.ingress && egress === prev.egress && sameOtherFields(prev, next))
    return prev;
  if (ingress === next.ingress && egress === next.egress) return next;
  return { ...next, ingress, egress };
}

/** Whether two versions agree on every field but their rules. */
function sameOtherFields(a: Policy | Profile, b: Policy | Profile): boolean {
  const x = a as unknown as Record<string, unknown>;
  const y = b as unknown as Record<string, unknown>;
  let fields = 0;
  for (const k in x) {
    if (k === 'ingress' || k === 'egress' || x[k] === undefined) continue;
    fields++;
    if (!sameValue(x[k], y[k])) return false;
  }
  for (const k in y) if (k !== 'ingress' && k !== 'egress' && y[k] !== undefined) fields--;
  return fields === 0;
}

/**
 * `next` with every policy's and profile's rules reused from the same policy (profile)
 * in `prev`: what a consumer building a World anew for each change does to keep rule
 * identity (bench/update.ts's fresh-object mode; the agent does it per resource).
 */
export function reuseWorld(prev: World | undefined, next: World): World {
  if (prev === undefined) return next;
  const policies = new Map(prev.policies.map((p) => [policyKey(p), p]));
  const profiles = new Map(prev.profiles.map((p) => [p.name, p]));
  return {
    ...next,
    policies: next.policies.map((p) => reuseRuleLists(policies.get(policyKey(p)), p)),
    profiles: next.profiles.map((p) => reuseRuleLists(profiles.get(p.name), p)),
  };
}
