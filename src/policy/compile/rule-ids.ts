/**
 * Rule ids: the u32 a verdict carries to name its deciding rule. One id per distinct
 * RuleRef, never 0, never reassigned: the same ref keeps its id across recompiles, so
 * events and conntrack entries written under an older compile still name the right rule.
 */
import type { RuleRef } from '../model.js';

const MAX_RULE_ID = 2 ** 32 - 1;

export class RuleIds {
  private readonly ids = new Map<RuleRef, number>();
  private readonly refs = new Map<number, RuleRef>();

  idOf(ref: RuleRef): number {
    let id = this.ids.get(ref);
    if (id === undefined) {
      id = this.ids.size + 1;
      if (id > MAX_RULE_ID)
        throw new RangeError('rule ids exhausted: more than 2^32 - 1 distinct rule refs');
      this.ids.set(ref, id);
      this.refs.set(id, ref);
    }
    return id;
  }

  private snapshot: ReadonlyMap<number, RuleRef> = new Map();

  /** Every id handed out so far → its ref (a copy, shared until new ids are handed out). */
  table(): ReadonlyMap<number, RuleRef> {
    if (this.snapshot.size !== this.refs.size) this.snapshot = new Map(this.refs);
    return this.snapshot;
  }
}
