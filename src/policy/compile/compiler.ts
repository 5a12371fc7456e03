/**
 * The policy compiler: world → the entries of the policy maps and the endpoint map
 * (bpf/tortie_maps.h, the policy section: address, l4 and source-port stages),
 * incrementally.
 *
 * Per local endpoint and direction: build the program (./build-program.ts), decide it
 * over the address space (./sweep.ts), emit prefixes (./emit.ts). Sets and classes are
 * named by content, so equal contents share one id and an unchanged content keeps its
 * id; the delta is the difference between consecutive states, at set and class
 * granularity, in an order in which no packet meets a half-built set.
 */
import type { Direction, Endpoint, World } from '../model.js';
import { parseAddress } from './addresses.js';
import { PlanCache, ProgramBuilder } from './build-program.js';
import {
  BudgetExceeded,
  emitSet,
  type ClassContent,
  type SetContent,
  type SportContent,
} from './emit.js';
import { LocalEndpointError, PolicyBudgetError, PolicyMapFullError } from './errors.js';
import { IdAllocator } from './ids.js';
import { editedRange, reviseSet, sweptSet, type SetEdit, type SweptSet } from './incremental.js';
import type { Program } from './program.js';
import { RuleIds } from './rule-ids.js';
import { RuleCache } from './rules-plan.js';
import { ClassTable, decideProgram } from './sweep.js';
import { entityKey, WorldIndex } from './world-index.js';
import {
  namedClass,
  namedSport,
  Snapshot,
  type NamedClass,
  type NamedSet,
  type NamedSport,
} from './snapshot.js';
import type {
  CompiledState,
  CompileWork,
  Delta,
  EndpointEntry,
  LocalEndpoint,
  PolAddrEntry,
  PolicyCompilerOptions,
  PolL4Entry,
  PolSportEntry,
} from './types.js';

export class PolicyCompiler {
  private readonly limits: Required<PolicyCompilerOptions>;
  private state: CompiledState = new Snapshot([], new Map(), new Map());
  /** The sets, classes and source-port classes in use, by content fingerprint. */
  private readonly sets = new Map<string, NamedSet>();
  private readonly classes = new Map<string, NamedClass>();
  /** Source-port classes: numbered from the class ids (one id space, one allocator). */
  private readonly sports = new Map<string, NamedSport>();
  /** How many sets use each class; how many classes each source-port class. */
  private readonly classUsers = new Map<string, number>();
  private readonly sportUsers = new Map<string, number>();
  /** Entries of the state in each policy map. */
  private totals = { addr: 0, l4: 0, sport: 0 };
  private setIds = new IdAllocator('policy set');
  private classIds = new IdAllocator('policy class');
  private readonly ruleIds = new RuleIds();
  private plans: PlanCache | undefined;
  private readonly rules = new RuleCache();
  /** The l4 functions of the last update's sets, reused by the next (./sweep.ts). */
  private readonly classTable = new ClassTable();
  /** Program fingerprint → its compiled set, for the programs of the last update. */
  private compiled = new Map<string, SetContent>();
  /** Set fingerprint → its pieces and program, for the sets of the last update. */
  private swept = new Map<string, SweptSet>();
  /** "endpoint key|direction" → the set fingerprint it had in the last update. */
  private slots = new Map<string, string>();
  private lastRev = 0;

  constructor(opts: PolicyCompilerOptions = {}) {
    this.limits = {
      maxEntriesPerSet: opts.maxEntriesPerSet ?? 65_536,
      maxEntriesPerClass: opts.maxEntriesPerClass ?? 65_536,
      maxAddrEntries: opts.maxAddrEntries ?? 1 << 20,
      maxL4Entries: opts.maxL4Entries ?? 1 << 20,
      maxSportEntries: opts.maxSportEntries ?? 1 << 20,
    };
  }

  /** The state after the last successful update. */
  current(): CompiledState {
    return this.state;
  }

  /**
   * Recompiles for a new world; returns the new state and the delta from the previous
   * one, and the work it took. On error (a budget exceeded, a malformed world) nothing
   * changes.
   */
  update(
    world: World,
    locals: readonly LocalEndpoint[],
  ): { state: CompiledState; delta: Delta; work: CompileWork } {
    checkLocals(locals);
    const rulesBefore = this.rules.planned;
    const classesBefore = this.classTable.created;
    let setsCompiled = 0;
    let setsReused = 0;
    const plans = this.plansFor(world);
    const builder = new ProgramBuilder(world, plans, this.ruleIds);

    // 1. One compiled set per distinct program: a program edited by a few rules since
    // the last update is compiled incrementally from the set it had (./incremental.ts).
    const compiled = new Map<string, SetContent>();
    const swept = new Map<string, SweptSet>();
    const slots = new Map<string, string>();
    const edits = new Map<string, SetEdit>();
    const chosen = locals.map((local) => {
      const pick = (direction: Direction): SetContent => {
        const pending = builder.build(local.endpoint, direction, local.host?.failsafe);
        const slot = `${local.endpoint.key}|${direction}`;
        let content = compiled.get(pending.fingerprint) ?? this.compiled.get(pending.fingerprint);
        if (content === undefined) {
          const prev = this.swept.get(this.slots.get(slot) ?? '');
          const made = this.compile(pending.layout(), prev, local.endpoint, direction);
          content = made.swept.content;
          swept.set(content.fingerprint, made.swept);
          if (made.edit !== undefined && !edits.has(content.fingerprint))
            edits.set(content.fingerprint, made.edit);
          setsCompiled++;
        } else {
          setsReused++;
          if (!swept.has(content.fingerprint)) {
            const known = this.swept.get(content.fingerprint);
            if (known !== undefined) swept.set(content.fingerprint, known);
          }
        }
        compiled.set(pending.fingerprint, content);
        slots.set(slot, content.fingerprint);
        return content;
      };
      return { local, ingress: pick('ingress'), egress: pick('egress') };
    });

    // 2. Ids by content: kept for unchanged content, new for new content, and the id of
    // the set it came from for content changed in place. Classes and source-port classes
    // are counted by how many sets (classes) use them: an update touches the counts of
    // what entered or left, not every class that exists.
    const setIds = this.setIds.clone();
    const classIds = this.classIds.clone();
    const inPlace = this.inPlaceEdits(chosen, edits);
    const enteringClasses = new Map<string, NamedClass>();
    const enteringSports = new Map<string, NamedSport>();
    const sportNamed = (c: SportContent): NamedSport => {
      let n = this.sports.get(c.fingerprint) ?? enteringSports.get(c.fingerprint);
      if (n === undefined) {
        n = namedSport(classIds.allocate(), c);
        enteringSports.set(c.fingerprint, n);
      }
      return n;
    };
    const classNamed = (c: ClassContent): NamedClass => {
      let n = this.classes.get(c.fingerprint) ?? enteringClasses.get(c.fingerprint);
      if (n === undefined) {
        const id = classIds.allocate();
        n = namedClass(id, c, c.sports.map(sportNamed));
        enteringClasses.set(c.fingerprint, n);
      }
      return n;
    };
    const classId = (fp: string): number => (this.classes.get(fp) ?? enteringClasses.get(fp))!.id;
    const users = new Map<string, number>();
    const bump = (counts: Map<string, number>, fp: string, by: number): void => {
      counts.set(fp, (counts.get(fp) ?? 0) + by);
    };
    const sets = new Map<string, NamedSet>();
    const enteringSets: NamedSet[] = [];
    let addrTotal = this.totals.addr;
    for (const { ingress, egress } of chosen) {
      for (const set of [ingress, egress]) {
        if (sets.has(set.fingerprint)) continue;
        let named = this.sets.get(set.fingerprint);
        if (named === undefined) {
          const edit = inPlace.get(set.fingerprint);
          if (edit !== undefined) {
            const was = this.sets.get(edit.from.fingerprint)!;
            const gained = edit.gained.map(classNamed);
            for (const c of edit.gained) bump(users, c.fingerprint, 1);
            for (const fp of edit.lost) bump(users, fp, -1);
            const lost = new Set(edit.lost);
            const classes =
              lost.size === 0 && gained.length === 0
                ? was.classes
                : was.classes.filter((c) => !lost.has(c.content.fingerprint)).concat(gained);
            const span = edit.span.map((e) => ({
              setId: was.id,
              addr: e.addr,
              bits: e.bits,
              classId: classId(e.classFingerprint),
            }));
            named = {
              id: was.id,
              content: set,
              classes,
              entries: was.entries.slice(0, edit.start).concat(span, was.entries.slice(edit.end)),
            };
            addrTotal += span.length - (edit.end - edit.start);
          } else {
            const id = setIds.allocate();
            const classes = set.classes.map(classNamed);
            for (const c of set.classes) bump(users, c.fingerprint, 1);
            named = {
              id,
              content: set,
              classes,
              entries: set.entries.map((e) => ({
                setId: id,
                addr: e.addr,
                bits: e.bits,
                classId: classId(e.classFingerprint),
              })),
            };
            addrTotal += named.entries.length;
          }
          enteringSets.push(named);
        }
        sets.set(set.fingerprint, named);
      }
    }
    const claimed = new Set([...inPlace.values()].map((e) => e.from.fingerprint));
    const changedIds = new Set([...inPlace.keys()].map((fp) => sets.get(fp)!.id));
    const leavingSets = [...this.sets.values()].filter(
      (s) => !sets.has(s.content.fingerprint) && !claimed.has(s.content.fingerprint),
    );
    for (const s of leavingSets) {
      for (const c of s.classes) bump(users, c.content.fingerprint, -1);
      addrTotal -= s.entries.length;
    }
    const sportUsers = new Map<string, number>();
    const classesIn: NamedClass[] = [];
    const classesOut: NamedClass[] = [];
    let l4Total = this.totals.l4;
    for (const [fp, by] of users) {
      const before = this.classUsers.get(fp) ?? 0;
      if (before === 0 && by > 0) {
        const n = enteringClasses.get(fp)!;
        classesIn.push(n);
        l4Total += n.entries.length;
        for (const s of n.sports) bump(sportUsers, s.content.fingerprint, 1);
      } else if (before > 0 && before + by === 0) {
        const n = this.classes.get(fp)!;
        classesOut.push(n);
        l4Total -= n.entries.length;
        for (const s of n.sports) bump(sportUsers, s.content.fingerprint, -1);
      }
    }
    const sportsIn: NamedSport[] = [];
    const sportsOut: NamedSport[] = [];
    let sportTotal = this.totals.sport;
    for (const [fp, by] of sportUsers) {
      const before = this.sportUsers.get(fp) ?? 0;
      if (before === 0 && by > 0) {
        const n = enteringSports.get(fp)!;
        sportsIn.push(n);
        sportTotal += n.entries.length;
      } else if (before > 0 && before + by === 0) {
        const n = this.sports.get(fp)!;
        sportsOut.push(n);
        sportTotal -= n.entries.length;
      }
    }
    this.checkMapSizes(addrTotal, l4Total, sportTotal);
    // Only now, after every allocation of this update (see ./ids.ts).
    setIds.release(leavingSets.map((s) => s.id));
    classIds.release([...classesOut, ...sportsOut].map((c) => c.id));

    // 3. The delta (the new state is these sets, classes and endpoints).
    const delta = {
      sportWrites: [] as PolSportEntry[],
      l4Writes: [] as PolL4Entry[],
      addrWrites: [] as PolAddrEntry[],
      addrTrims: [] as PolAddrEntry[],
      endpointWrites: [] as EndpointEntry[],
      endpointDeletes: [] as EndpointEntry[],
      addrDeletes: [] as PolAddrEntry[],
      l4Deletes: [] as PolL4Entry[],
      sportDeletes: [] as PolSportEntry[],
    };
    for (const n of sportsIn) for (const e of n.entries) delta.sportWrites.push(e);
    for (const n of classesIn) for (const e of n.entries) delta.l4Writes.push(e);
    for (const [fp, edit] of inPlace) {
      // Changed entries longest prefix first, then the trimmed ones shortest first: at
      // every step each address finds its old class or its new one (../../dataplane/apply.ts).
      const setId = sets.get(fp)!.id;
      for (const e of edit.writes)
        delta.addrWrites.push({
          setId,
          addr: e.addr,
          bits: e.bits,
          classId: classId(e.classFingerprint),
        });
      for (const e of edit.deletes)
        delta.addrTrims.push({
          setId,
          addr: e.addr,
          bits: e.bits,
          classId: classId(e.classFingerprint),
        });
    }
    for (const n of enteringSets)
      if (!changedIds.has(n.id)) for (const e of n.entries) delta.addrWrites.push(e);
    let lastRev = this.lastRev;
    const endpoints = new Map<number, EndpointEntry>();
    for (const { local, ingress, egress } of chosen) {
      const before = this.state.endpoints.get(local.ifindex);
      const ingressSet = sets.get(ingress.fingerprint)!.id;
      const egressSet = sets.get(egress.fingerprint)!.id;
      // Content is named by id and an id is never reused within an update, so "same ids"
      // means "same contents" — but for a set changed in place, which keeps its id: its
      // endpoints' revision moves all the same.
      const sameSets =
        before !== undefined &&
        before.ingressSet === ingressSet &&
        before.egressSet === egressSet &&
        !changedIds.has(ingressSet) &&
        !changedIds.has(egressSet);
      const entry: EndpointEntry = {
        ifindex: local.ifindex,
        id: local.id,
        ip: parseAddress(local.endpoint.ip),
        ingressSet,
        egressSet,
        policyRev: sameSets ? before.policyRev : ++lastRev,
        ...(local.host === undefined ? {} : { host: true as const }),
      };
      endpoints.set(local.ifindex, entry);
      if (before === undefined || !sameEndpoint(before, entry)) delta.endpointWrites.push(entry);
    }
    for (const [ifindex, before] of this.state.endpoints) {
      if (!endpoints.has(ifindex)) delta.endpointDeletes.push(before);
    }
    for (const s of leavingSets) for (const e of s.entries) delta.addrDeletes.push(e);
    for (const n of classesOut) for (const e of n.entries) delta.l4Deletes.push(e);
    for (const n of sportsOut) for (const e of n.entries) delta.sportDeletes.push(e);

    // 4. Commit: the tables change in place (a state holds its own sets, not these).
    for (const s of leavingSets) this.sets.delete(s.content.fingerprint);
    for (const fp of claimed) this.sets.delete(fp);
    for (const n of enteringSets) this.sets.set(n.content.fingerprint, n);
    for (const [fp, by] of users) {
      const count = (this.classUsers.get(fp) ?? 0) + by;
      if (count === 0) this.classUsers.delete(fp);
      else this.classUsers.set(fp, count);
    }
    for (const n of classesIn) this.classes.set(n.content.fingerprint, n);
    for (const n of classesOut) this.classes.delete(n.content.fingerprint);
    for (const [fp, by] of sportUsers) {
      const count = (this.sportUsers.get(fp) ?? 0) + by;
      if (count === 0) this.sportUsers.delete(fp);
      else this.sportUsers.set(fp, count);
    }
    for (const n of sportsIn) this.sports.set(n.content.fingerprint, n);
    for (const n of sportsOut) this.sports.delete(n.content.fingerprint);
    this.totals = { addr: addrTotal, l4: l4Total, sport: sportTotal };
    this.state = new Snapshot([...sets.values()], endpoints, this.ruleIds.table());
    this.setIds = setIds;
    this.classIds = classIds;
    this.compiled = compiled;
    this.swept = swept;
    this.slots = slots;
    this.lastRev = lastRev;
    plans.prune();
    if (this.classTable.collectDue)
      this.classTable.collect(
        (function* (all: Iterable<SweptSet>) {
          for (const set of all) for (const p of set.pieces) yield p.value;
        })(swept.values()),
      );
    const work = {
      setsCompiled,
      setsReused,
      rulesPlanned: this.rules.planned - rulesBefore,
      classesCreated: this.classTable.created - classesBefore,
    };
    return { state: this.state, delta, work };
  }

  /** Reuses the resolved rule lists while the world's entities are unchanged. */
  private plansFor(world: World): PlanCache {
    const key = entityKey(world);
    if (this.plans === undefined || this.plans.index.key !== key) {
      this.plans = new PlanCache(new WorldIndex(world, key), this.ruleIds, this.rules);
    }
    return this.plans;
  }

  /**
   * The set of `program`: from `prev` (the set this (endpoint, direction) had) where the
   * edit allows, else in full.
   */
  private compile(
    program: Program,
    prev: SweptSet | undefined,
    endpoint: Endpoint,
    direction: Direction,
  ): { swept: SweptSet; edit?: SetEdit } {
    try {
      if (prev !== undefined) {
        const range = editedRange(prev.program, program);
        if (range === 'same') return { swept: { ...prev, program } };
        if (range !== 'all') {
          const revised = reviseSet(prev, program, range, this.classTable, this.limits);
          if (revised !== undefined) {
            if (revised.swept.content.fingerprint === prev.content.fingerprint)
              return { swept: { ...prev, program, coverage: revised.swept.coverage } };
            return revised;
          }
        }
      }
      const fn = decideProgram(program, this.classTable);
      const content = emitSet(fn, this.limits);
      return { swept: sweptSet(program, fn, content) };
    } catch (err) {
      if (err instanceof BudgetExceeded) {
        throw new PolicyBudgetError(endpoint.key, direction, err.what, err.entries, err.limit);
      }
      throw err;
    }
  }

  /**
   * The edited sets that may change in place, under the id of the set they came from:
   * every endpoint that had that set moves to this one, no endpoint keeps it or takes it
   * up, and no other content claims it. Any other new content gets a new id.
   */
  private inPlaceEdits(
    chosen: readonly { local: LocalEndpoint; ingress: SetContent; egress: SetContent }[],
    edits: ReadonlyMap<string, SetEdit>,
  ): Map<string, SetEdit> {
    const out = new Map<string, SetEdit>();
    if (edits.size === 0) return out;
    const wanted = new Set<string>();
    const next = new Map<string, string>();
    for (const { local, ingress, egress } of chosen) {
      wanted.add(ingress.fingerprint).add(egress.fingerprint);
      next.set(`${local.ifindex}|i`, ingress.fingerprint);
      next.set(`${local.ifindex}|e`, egress.fingerprint);
    }
    const claimed = new Set<string>();
    for (const [fp, edit] of edits) {
      const from = this.sets.get(edit.from.fingerprint);
      if (from === undefined || this.sets.has(fp) || wanted.has(edit.from.fingerprint)) continue;
      if (claimed.has(edit.from.fingerprint)) continue;
      let all = true;
      for (const e of this.state.endpoints.values()) {
        if (e.ingressSet === from.id && next.get(`${e.ifindex}|i`) !== fp) all = false;
        if (e.egressSet === from.id && next.get(`${e.ifindex}|e`) !== fp) all = false;
        if (!all) break;
      }
      if (!all) continue;
      claimed.add(edit.from.fingerprint);
      out.set(fp, edit);
    }
    return out;
  }

  private checkMapSizes(addr: number, l4: number, sport: number): void {
    if (addr > this.limits.maxAddrEntries) {
      throw new PolicyMapFullError('tortie_pol_addr', addr, this.limits.maxAddrEntries);
    }
    if (l4 > this.limits.maxL4Entries) {
      throw new PolicyMapFullError('tortie_pol_l4', l4, this.limits.maxL4Entries);
    }
    if (sport > this.limits.maxSportEntries) {
      throw new PolicyMapFullError('tortie_pol_sprt', sport, this.limits.maxSportEntries);
    }
  }
}

function sameEndpoint(a: EndpointEntry, b: EndpointEntry): boolean {
  return (
    a.ifindex === b.ifindex &&
    a.id === b.id &&
    a.ip === b.ip &&
    a.ingressSet === b.ingressSet &&
    a.egressSet === b.egressSet &&
    a.policyRev === b.policyRev &&
    a.host === b.host
  );
}

function checkLocals(locals: readonly LocalEndpoint[]): void {
  const seen = new Map<number, string>();
  for (const { endpoint, ifindex, id } of locals) {
    if (!Number.isInteger(ifindex) || ifindex <= 0) {
      throw new LocalEndpointError(
        `local endpoint ${endpoint.key}: ifindex ${ifindex} is not a positive integer`,
      );
    }
    if (!Number.isInteger(id) || id <= 0 || id > 2 ** 32 - 1) {
      throw new LocalEndpointError(`local endpoint ${endpoint.key}: id ${id} is not a u32 above 0`);
    }
    const other = seen.get(ifindex);
    if (other !== undefined) {
      throw new LocalEndpointError(
        `local endpoints ${other} and ${endpoint.key} share ifindex ${ifindex}`,
      );
    }
    seen.set(ifindex, endpoint.key);
  }
}
