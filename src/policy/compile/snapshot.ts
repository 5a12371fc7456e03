/**
 * Compiled states as sets and classes under their ids. Entries are built once per set or
 * class, and the keyed entry maps of a state only when someone reads them — the compiler
 * itself works set by set, so an update costs what changed, not what exists.
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

/** A set's, class's or source-port class's content under its id, and its entries once built. */
export interface Named<
  C,
  E = C extends SetContent ? PolAddrEntry : C extends ClassContent ? PolL4Entry : PolSportEntry,
> {
  readonly id: number;
  readonly content: C;
  entries?: readonly E[];
}

/** A set's address entries (built once per set: its id and its classes' ids never change). */
export function setEntries(
  set: Named<SetContent>,
  classes: ReadonlyMap<string, Named<ClassContent>>,
): readonly PolAddrEntry[] {
  set.entries ??= set.content.entries.map((e) => ({
    setId: set.id,
    addr: e.addr,
    bits: e.bits,
    classId: classes.get(e.classFingerprint)!.id,
  }));
  return set.entries;
}

/** A class's l4 entries (built once: its id and its source-port classes' ids never change). */
export function classEntries(
  cls: Named<ClassContent>,
  sports: ReadonlyMap<string, Named<SportContent>>,
): readonly PolL4Entry[] {
  cls.entries ??= cls.content.entries.map((e) => ({
    classId: cls.id,
    l4: e.l4,
    bits: e.bits,
    action: e.action,
    flags: e.flags,
    ruleId: e.sportFingerprint === undefined ? e.ruleId : sports.get(e.sportFingerprint)!.id,
  }));
  return cls.entries;
}

export function sportEntries(sport: Named<SportContent>): readonly PolSportEntry[] {
  sport.entries ??= sport.content.entries.map((e) => ({
    classId: sport.id,
    sport: e.sport,
    bits: e.bits,
    action: e.action,
    flags: e.flags,
    ruleId: e.ruleId,
  }));
  return sport.entries;
}

/**
 * A compiled state: the sets, classes and endpoints of one update. The entry maps are
 * built on first use — the compiler itself works set by set, so an update costs what
 * changed, not what exists.
 */
export class Snapshot implements CompiledState {
  private addrMap: Map<string, PolAddrEntry> | undefined;
  private l4Map: Map<string, PolL4Entry> | undefined;
  private sportMap: Map<string, PolSportEntry> | undefined;

  constructor(
    private readonly sets: ReadonlyMap<string, Named<SetContent, PolAddrEntry>>,
    private readonly classes: ReadonlyMap<string, Named<ClassContent, PolL4Entry>>,
    private readonly sports: ReadonlyMap<string, Named<SportContent, PolSportEntry>>,
    readonly endpoints: ReadonlyMap<number, EndpointEntry>,
    readonly rules: ReadonlyMap<number, RuleRef>,
  ) {}

  get addr(): ReadonlyMap<string, PolAddrEntry> {
    if (this.addrMap === undefined) {
      this.addrMap = new Map();
      for (const set of this.sets.values())
        for (const e of setEntries(set, this.classes)) this.addrMap.set(addrKey(e), e);
    }
    return this.addrMap;
  }

  get l4(): ReadonlyMap<string, PolL4Entry> {
    if (this.l4Map === undefined) {
      this.l4Map = new Map();
      for (const cls of this.classes.values())
        for (const e of classEntries(cls, this.sports)) this.l4Map.set(l4Key(e), e);
    }
    return this.l4Map;
  }

  get sport(): ReadonlyMap<string, PolSportEntry> {
    if (this.sportMap === undefined) {
      this.sportMap = new Map();
      for (const s of this.sports.values())
        for (const e of sportEntries(s)) this.sportMap.set(sportKey(e), e);
    }
    return this.sportMap;
  }
}
