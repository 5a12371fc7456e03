/**
 * Compiled states as sets and classes under their ids. Each set, class and source-port
 * class carries its entries (built once: its id and its classes' ids never change, and
 * a set changed in place gets new entries spliced from its old ones) and the named
 * classes it uses, so a state is its list of sets and needs none of the compiler's
 * tables — which the next update changes in place. The keyed entry maps of a state are
 * built only when someone reads them: the compiler itself works set by set, so an update
 * costs what changed, not what exists.
 */
import type { RuleRef } from '../model.js';
import type { ClassContent, SetContent, SportContent } from './emit.js';
import {
  addrKey,
  l4Key,
  sportKey,
  type CompiledState,
  type EndpointEntry,
  type PolAddrEntry,
  type PolL4Entry,
  type PolSportEntry,
} from './types.js';

export interface NamedSport {
  readonly id: number;
  readonly content: SportContent;
  readonly entries: readonly PolSportEntry[];
}

export interface NamedClass {
  readonly id: number;
  readonly content: ClassContent;
  /** The source-port classes its entries name. */
  readonly sports: readonly NamedSport[];
  readonly entries: readonly PolL4Entry[];
}

export interface NamedSet {
  readonly id: number;
  readonly content: SetContent;
  /** The classes its entries name, each once. */
  readonly classes: readonly NamedClass[];
  readonly entries: readonly PolAddrEntry[];
}

export function namedSport(id: number, content: SportContent): NamedSport {
  return {
    id,
    content,
    entries: content.entries.map((e) => ({
      classId: id,
      sport: e.sport,
      bits: e.bits,
      action: e.action,
      flags: e.flags,
      ruleId: e.ruleId,
    })),
  };
}

export function namedClass(
  id: number,
  content: ClassContent,
  sports: readonly NamedSport[],
): NamedClass {
  const sportId = (fp: string): number => sports.find((s) => s.content.fingerprint === fp)!.id;
  return {
    id,
    content,
    sports,
    entries: content.entries.map((e) => ({
      classId: id,
      l4: e.l4,
      bits: e.bits,
      action: e.action,
      flags: e.flags,
      ruleId: e.sportFingerprint === undefined ? e.ruleId : sportId(e.sportFingerprint),
    })),
  };
}

/**
 * A compiled state: the sets and endpoints of one update. The entry maps are built on
 * first use.
 */
export class Snapshot implements CompiledState {
  private addrMap: Map<string, PolAddrEntry> | undefined;
  private l4Map: Map<string, PolL4Entry> | undefined;
  private sportMap: Map<string, PolSportEntry> | undefined;

  constructor(
    private readonly sets: readonly NamedSet[],
    readonly endpoints: ReadonlyMap<number, EndpointEntry>,
    readonly rules: ReadonlyMap<number, RuleRef>,
  ) {}

  get addr(): ReadonlyMap<string, PolAddrEntry> {
    if (this.addrMap === undefined) {
      this.addrMap = new Map();
      for (const set of this.sets) for (const e of set.entries) this.addrMap.set(addrKey(e), e);
    }
    return this.addrMap;
  }

  get l4(): ReadonlyMap<string, PolL4Entry> {
    if (this.l4Map === undefined) {
      this.l4Map = new Map();
      for (const cls of this.classList()) for (const e of cls.entries) this.l4Map.set(l4Key(e), e);
    }
    return this.l4Map;
  }

  get sport(): ReadonlyMap<string, PolSportEntry> {
    if (this.sportMap === undefined) {
      this.sportMap = new Map();
      const seen = new Set<number>();
      for (const cls of this.classList()) {
        for (const s of cls.sports) {
          if (seen.has(s.id)) continue;
          seen.add(s.id);
          for (const e of s.entries) this.sportMap.set(sportKey(e), e);
        }
      }
    }
    return this.sportMap;
  }

  private classList(): NamedClass[] {
    const seen = new Map<number, NamedClass>();
    for (const set of this.sets) for (const c of set.classes) seen.set(c.id, c);
    return [...seen.values()];
  }
}
