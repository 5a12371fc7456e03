/**
 * The policy walk over l4 for one fixed set of peer addresses: the semantics' "first
 * matching rule decides" applied to a whole set of (protocol, port) points at once.
 *
 * The walk holds the points still undecided in the current tier (each with its logged
 * flag), the points that passed out of the tier, and the decided pieces. A rule moves
 * the undecided points it matches: Allow/Deny decide them, Pass sends them on to the
 * next tier, Log marks them logged. A tier end denies what is left or passes it on.
 */
import type { IntervalSet } from './intervals.js';
import type { Piece } from './prefixes.js';
import type { RuleAction } from './program.js';
import { ACTION_ALLOW, ACTION_DENY, verdictCode, type VerdictCode } from './verdict.js';

interface Segment {
  lo: number;
  hi: number;
  logged: boolean;
}

export class L4Walk {
  private active: Segment[];
  private passed: Segment[] = [];
  private readonly decided: Piece<VerdictCode>[] = [];

  /** Starts with `points` undecided and nothing logged. */
  constructor(points: IntervalSet) {
    this.active = points.map(([lo, hi]) => ({ lo, hi, logged: false }));
  }

  /** True once every point is decided: later steps cannot change anything. */
  get done(): boolean {
    return this.active.length === 0 && this.passed.length === 0;
  }

  /** A rule whose match, among the walk's points, is `l4`. */
  rule(action: RuleAction, ruleId: number, l4: IntervalSet): void {
    const active = this.active;
    // Most rules miss a small undecided set entirely: check the hulls first.
    if (active.length === 0 || l4.length === 0) return;
    if (l4[l4.length - 1]![1] < active[0]!.lo || l4[0]![0] > active[active.length - 1]!.hi) return;
    for (const [lo, hi] of l4) {
      if (this.active.length === 0) return;
      this.applyRange(lo, hi, action, ruleId);
    }
  }

  /** The end of a tier: deny what is left by `ruleId`, or pass it on to the next tier. */
  endTier(passes: boolean, ruleId: number): void {
    if (passes) {
      for (const s of this.active) this.passed.push(s);
    } else {
      for (const s of this.active) this.decide(s.lo, s.hi, ACTION_DENY, s.logged, ruleId);
    }
    this.active = this.passed.sort((a, b) => a.lo - b.lo);
    this.passed = [];
  }

  /** The decided pieces, sorted, with equal neighbours merged. Points never decided are absent. */
  result(): Piece<VerdictCode>[] {
    const sorted = this.decided.sort((a, b) => a.lo - b.lo);
    const out: Piece<VerdictCode>[] = [];
    for (const piece of sorted) {
      const last = out[out.length - 1];
      if (last !== undefined && last.value === piece.value && last.hi + 1 === piece.lo) {
        out[out.length - 1] = { lo: last.lo, hi: piece.hi, value: last.value };
      } else {
        out.push(piece);
      }
    }
    return out;
  }

  private decide(
    lo: number,
    hi: number,
    action: typeof ACTION_ALLOW | typeof ACTION_DENY,
    logged: boolean,
    ruleId: number,
  ): void {
    this.decided.push({ lo, hi, value: verdictCode(action, logged, ruleId) });
  }

  /** Applies one rule to the undecided points in [lo, hi]. */
  private applyRange(lo: number, hi: number, action: RuleAction, ruleId: number): void {
    const segments = this.active;
    const first = this.firstEndingAtOrAfter(lo);
    let last = first;
    const kept: Segment[] = [];
    while (last < segments.length && segments[last]!.lo <= hi) {
      const s = segments[last]!;
      if (s.lo < lo) kept.push({ lo: s.lo, hi: lo - 1, logged: s.logged });
      const a = Math.max(s.lo, lo);
      const b = Math.min(s.hi, hi);
      switch (action) {
        case 'Allow':
          this.decide(a, b, ACTION_ALLOW, s.logged, ruleId);
          break;
        case 'Deny':
          this.decide(a, b, ACTION_DENY, s.logged, ruleId);
          break;
        case 'Pass':
          this.passed.push({ lo: a, hi: b, logged: s.logged });
          break;
        case 'Log':
          kept.push({ lo: a, hi: b, logged: true });
          break;
      }
      if (s.hi > hi) kept.push({ lo: hi + 1, hi: s.hi, logged: s.logged });
      last++;
    }
    if (last === first) return;
    if (kept.length < 1024) segments.splice(first, last - first, ...kept);
    else this.active = segments.slice(0, first).concat(kept, segments.slice(last));
  }

  private firstEndingAtOrAfter(x: number): number {
    let lo = 0;
    let hi = this.active.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.active[mid]!.hi < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
