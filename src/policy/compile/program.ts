/**
 * A policy program: what one (endpoint, direction) is judged by, with every selector,
 * named port and local-side field already resolved. It is the walk of
 * docs/policy-semantics.md laid out flat:
 *
 *   tier 1 rules…, end of tier 1, tier 2 rules…, end of tier 2, …, profile rules…, end
 *
 * A rule is a list of atoms: (peer addresses, l4 points[, source ports]) boxes, any of which
 * matching means the rule matches. A rule that cannot match E (a false local-side
 * field, an empty address or l4 set) has no atoms or is left out. A tier end applies the
 * tier's defaultAction to whatever the tier left undecided; the profiles end like a tier
 * whose default is deny, and a Pass among profile rules is a deny by
 * `profiles/default/<d>`, so the program needs no special case for profiles.
 */
import type { IntervalSet } from './intervals.js';

export type RuleAction = 'Allow' | 'Deny' | 'Pass' | 'Log';

export interface Atom {
  /** Peer addresses (u32). */
  readonly addr: IntervalSet;
  /** `addr` spelled (./intervals.ts `spell`): atoms with equal keys cover the same peers. */
  readonly addrKey: string;
  /** (protocol << 16 | port) points. */
  readonly l4: IntervalSet;
  /** Source ports (0..65535; 0 for a protocol without ports); undefined: any. */
  readonly sport?: IntervalSet;
}

export interface RuleStep {
  readonly kind: 'rule';
  readonly action: RuleAction;
  readonly ruleId: number;
  readonly atoms: readonly Atom[];
}

export interface TierEnd {
  readonly kind: 'end';
  /** True: what is undecided moves on to the next tier; false: it is denied by `ruleId`. */
  readonly passes: boolean;
  /** The default rule denying what reaches the end (unused when `passes`). */
  readonly ruleId: number;
}

export type Step = RuleStep | TierEnd;

export interface Program {
  readonly steps: readonly Step[];
  /**
   * Per step, [lo, hi] at 2i, 2i+1: the hull of its atoms' addresses (a rule step without
   * atoms: [Infinity, -Infinity]; a tier end: [-Infinity, Infinity]). A restricted sweep
   * skips the steps outside its range on these alone, without touching the steps.
   */
  readonly bounds?: Float64Array;
  /** Equal for programs that decide every packet the same way by the same rules. */
  readonly fingerprint: string;
}
