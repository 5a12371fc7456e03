/**
 * Policy-routing rules that refuse to route (`prohibit`), through rtnetlink: what CNI ADD
 * guards a pod with until its programs are attached (src/cni/guard.ts).
 */
import { native } from '../native/index.js';
import { netnsTarget } from './netns.js';
import { nativeNetns } from './pod-network.js';

/**
 * Adds (idempotent: an existing rule is not doubled) or deletes (an absent one is fine)
 * `pref P iif X prohibit` for each of `iifs` and `pref P to D/32 prohibit` for each of
 * `dsts`, in the namespace at `netnsPath` (undefined: the caller's). A rule for an
 * interface that does not exist yet is valid: the kernel matches it by name.
 */
export function prohibitRules(
  netnsPath: string | undefined,
  action: 'add' | 'delete',
  pref: number,
  iifs: readonly string[],
  dsts: readonly string[],
): void {
  const netns = nativeNetns(netnsTarget(netnsPath, 'host network namespace path'));
  native.prohibitRules(netns, action === 'add', pref, iifs, dsts);
}
