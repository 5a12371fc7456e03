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
import type { Program } from './program.js';
import { RuleIds } from './rule-ids.js';
import { RuleCache } from './rules-plan.js';
import { ClassTable, decideProgram } from './sweep.js';
import { entityKey, WorldIndex } from './world-index.js';
import { classEntries, setEntries, Snapshot, sportEntries, type Named } from './snapshot.js';
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
  private state: CompiledState = new Snapshot(
    new Map(),
    new Map(),
    new Map(),
    new Map(),
    new Map(),
  );
  private sets = new Map<string, Named<SetContent>>();
  private classes = new Map<string, Named<ClassContent>>();
  /** Source-port classes: numbered from the class ids (one id space, one allocator). */
  private sports = new Map<string, Named<SportContent>>();
  private setIds = new IdAllocator('policy set');
  private classIds = new IdAllocator('policy class');
  private readonly ruleIds = new RuleIds();
  private plans: PlanCache | undefined;
  private readonly rules = new RuleCache();
  /** The l4 functions of the last update's sets, reused by the next (./sweep.ts). */
  private readonly classTable = new ClassTable();
  /** Program fingerprint → its compiled set, for the programs of the last update. */
  private compiled = new Map<string, SetContent>();
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

    // 1. One compiled set per distinct program.
    const compiled = new Map<string, SetContent>();
    const chosen = locals.map((local) => {
      const pick = (direction: Direction): SetContent => {
        const pending = builder.build(local.endpoint, direction);
        let content = compiled.get(pending.fingerprint) ?? this.compiled.get(pending.fingerprint);
        if (content === undefined) {
          content = this.compile(pending.layout(), local.endpoint, direction);
          setsCompiled++;
        } else setsReused++;
        compiled.set(pending.fingerprint, content);
        return content;
      };
      return { local, ingress: pick('ingress'), egress: pick('egress') };
    });

    // 2. Ids by content: kept for unchanged content, new for new content.
    const setIds = this.setIds.clone();
    const classIds = this.classIds.clone();
    const sets = new Map<string, Named<SetContent>>();
    const classes = new Map<string, Named<ClassContent>>();
    const sports = new Map<string, Named<SportContent>>();
    for (const { ingress, egress } of chosen) {
      for (const set of [ingress, egress]) {
        if (sets.has(set.fingerprint)) continue;
        sets.set(
          set.fingerprint,
          this.sets.get(set.fingerprint) ?? { id: setIds.allocate(), content: set },
        );
        for (const cls of set.classes) {
          if (classes.has(cls.fingerprint)) continue;
          classes.set(
            cls.fingerprint,
            this.classes.get(cls.fingerprint) ?? { id: classIds.allocate(), content: cls },
          );
          for (const sport of cls.sports) {
            if (sports.has(sport.fingerprint)) continue;
            sports.set(
              sport.fingerprint,
              this.sports.get(sport.fingerprint) ?? { id: classIds.allocate(), content: sport },
            );
          }
        }
      }
    }
    this.checkMapSizes(sets, classes, sports);
    const removedSets = [...this.sets.values()].filter((s) => !sets.has(s.content.fingerprint));
    const removedClasses = [...this.classes.values()].filter(
      (c) => !classes.has(c.content.fingerprint),
    );
    const removedSports = [...this.sports.values()].filter(
      (c) => !sports.has(c.content.fingerprint),
    );
    // Only now, after every allocation of this update (see ./ids.ts).
    setIds.release(removedSets.map((s) => s.id));
    classIds.release([...removedClasses, ...removedSports].map((c) => c.id));

    // 3. The delta (the new state is these sets, classes and endpoints).
    const delta = {
      sportWrites: [] as PolSportEntry[],
      l4Writes: [] as PolL4Entry[],
      addrWrites: [] as PolAddrEntry[],
      endpointWrites: [] as EndpointEntry[],
      endpointDeletes: [] as EndpointEntry[],
      addrDeletes: [] as PolAddrEntry[],
      l4Deletes: [] as PolL4Entry[],
      sportDeletes: [] as PolSportEntry[],
    };
    for (const [fp, sport] of sports) {
      if (!this.sports.has(fp)) for (const e of sportEntries(sport)) delta.sportWrites.push(e);
    }
    for (const [fp, cls] of classes) {
      if (!this.classes.has(fp)) for (const e of classEntries(cls, sports)) delta.l4Writes.push(e);
    }
    for (const [fp, set] of sets) {
      if (!this.sets.has(fp)) for (const e of setEntries(set, classes)) delta.addrWrites.push(e);
    }
    let lastRev = this.lastRev;
    const endpoints = new Map<number, EndpointEntry>();
    for (const { local, ingress, egress } of chosen) {
      const before = this.state.endpoints.get(local.ifindex);
      const ingressSet = sets.get(ingress.fingerprint)!.id;
      const egressSet = sets.get(egress.fingerprint)!.id;
      // Content is named by id and an id is never reused within an update, so "same ids"
      // means "same contents": the revision moves exactly when a set of the endpoint does.
      const sameSets =
        before !== undefined && before.ingressSet === ingressSet && before.egressSet === egressSet;
      const entry: EndpointEntry = {
        ifindex: local.ifindex,
        id: local.id,
        ip: parseAddress(local.endpoint.ip),
        ingressSet,
        egressSet,
        policyRev: sameSets ? before.policyRev : ++lastRev,
      };
      endpoints.set(local.ifindex, entry);
      if (before === undefined || !sameEndpoint(before, entry)) delta.endpointWrites.push(entry);
    }
    for (const [ifindex, before] of this.state.endpoints) {
      if (!endpoints.has(ifindex)) delta.endpointDeletes.push(before);
    }
    for (const set of removedSets)
      for (const e of setEntries(set, this.classes)) delta.addrDeletes.push(e);
    for (const cls of removedClasses)
      for (const e of classEntries(cls, this.sports)) delta.l4Deletes.push(e);
    for (const sport of removedSports)
      for (const e of sportEntries(sport)) delta.sportDeletes.push(e);

    // 4. Commit.
    this.state = new Snapshot(sets, classes, sports, endpoints, this.ruleIds.table());
    this.sets = sets;
    this.classes = classes;
    this.sports = sports;
    this.setIds = setIds;
    this.classIds = classIds;
    this.compiled = compiled;
    this.lastRev = lastRev;
    plans.prune();
    this.classTable.prune();
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

  private compile(program: Program, endpoint: Endpoint, direction: Direction): SetContent {
    try {
      return emitSet(decideProgram(program, this.classTable), this.limits);
    } catch (err) {
      if (err instanceof BudgetExceeded) {
        throw new PolicyBudgetError(endpoint.key, direction, err.what, err.entries, err.limit);
      }
      throw err;
    }
  }

  private checkMapSizes(
    sets: Map<string, Named<SetContent>>,
    classes: Map<string, Named<ClassContent>>,
    sports: Map<string, Named<SportContent>>,
  ): void {
    let addrEntries = 0;
    for (const s of sets.values()) addrEntries += s.content.entries.length;
    if (addrEntries > this.limits.maxAddrEntries) {
      throw new PolicyMapFullError('tortie_pol_addr', addrEntries, this.limits.maxAddrEntries);
    }
    let l4Entries = 0;
    for (const c of classes.values()) l4Entries += c.content.entries.length;
    if (l4Entries > this.limits.maxL4Entries) {
      throw new PolicyMapFullError('tortie_pol_l4', l4Entries, this.limits.maxL4Entries);
    }
    let sportEntryCount = 0;
    for (const c of sports.values()) sportEntryCount += c.content.entries.length;
    if (sportEntryCount > this.limits.maxSportEntries) {
      throw new PolicyMapFullError('tortie_pol_sprt', sportEntryCount, this.limits.maxSportEntries);
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
    a.policyRev === b.policyRev
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
