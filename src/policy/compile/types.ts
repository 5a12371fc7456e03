/**
 * What the compiler produces: the entries of the three policy stages (address, l4,
 * source port) and tortie_ifaces (bpf/tortie_maps.h) as plain values, the state they
 * form and the delta between two states.
 */
import type { Endpoint, Failsafe, RuleRef } from '../model.js';
import type { L4Action, MapAction } from './verdict.js';

export interface LocalEndpoint {
  /** A pod; or, with `host`, a host endpoint (`endpoint.kind` 'host'). */
  readonly endpoint: Endpoint;
  /** Host end of the pod veth; for a host endpoint, its interface. */
  readonly ifindex: number;
  /** Endpoint id for counters and events; never 0. */
  readonly id: number;
  /**
   * A host endpoint's program: the failsafe ports as its first rules, then the normal
   * policies that select it and its profiles (docs/host-endpoints.md).
   */
  readonly host?: { readonly failsafe: Failsafe };
}

export interface PolAddrEntry {
  readonly setId: number;
  /** u32: the dotted quad read most significant first (host order). */
  readonly addr: number;
  /** 0..32 */
  readonly bits: number;
  readonly classId: number;
}

export interface PolL4Entry {
  readonly classId: number;
  /** u24: protocol << 16 | port. */
  readonly l4: number;
  /** 0..24 */
  readonly bits: number;
  /** ACTION_BY_SPORT: the source port decides, by source-port class `ruleId`. */
  readonly action: L4Action;
  /** TORTIE_VERDICT_F_* (LOG = 1). */
  readonly flags: number;
  /** The deciding rule; for ACTION_BY_SPORT the source-port class id. */
  readonly ruleId: number;
}

/** Stage 3: a source-port class's entry (ids share the class id space). */
export interface PolSportEntry {
  readonly classId: number;
  /** u16 source port. */
  readonly sport: number;
  /** 0..16 */
  readonly bits: number;
  readonly action: MapAction;
  readonly flags: number;
  readonly ruleId: number;
}

export interface EndpointEntry {
  readonly ifindex: number;
  readonly id: number;
  /** u32, host order. */
  readonly ip: number;
  readonly ingressSet: number;
  readonly egressSet: number;
  readonly policyRev: number;
  /** A host endpoint (TORTIE_EP_F_HOST); absent for pods. */
  readonly host?: true;
}

export interface CompiledState {
  /** Keyed by `addrKey(entry)`. */
  readonly addr: ReadonlyMap<string, PolAddrEntry>;
  /** Keyed by `l4Key(entry)`. */
  readonly l4: ReadonlyMap<string, PolL4Entry>;
  /** Keyed by `sportKey(entry)`. */
  readonly sport: ReadonlyMap<string, PolSportEntry>;
  /** Keyed by ifindex. */
  readonly endpoints: ReadonlyMap<number, EndpointEntry>;
  /** Every rule id handed out → its ref. */
  readonly rules: ReadonlyMap<number, RuleRef>;
}

/** The changes from one state to the next, in the order they must be applied. */
export interface Delta {
  /** Entries of new source-port classes: written before any class points at them. */
  readonly sportWrites: readonly PolSportEntry[];
  /** Entries of new classes: written before anything points at them. */
  readonly l4Writes: readonly PolL4Entry[];
  /**
   * Entries of new sets (written complete before any endpoint switches to them) and the
   * new or changed entries of sets changed in place (longest prefix first).
   */
  readonly addrWrites: readonly PolAddrEntry[];
  /**
   * Entries sets changed in place no longer have, shortest prefix first, after every
   * write and before the endpoints' revisions move (so a flow re-judged on the new
   * revision meets the whole new set).
   */
  readonly addrTrims: readonly PolAddrEntry[];
  /** New or changed endpoints (switching set ids). */
  readonly endpointWrites: readonly EndpointEntry[];
  /** Endpoints gone (the entries being removed). */
  readonly endpointDeletes: readonly EndpointEntry[];
  /** Entries of sets no endpoint uses any more. */
  readonly addrDeletes: readonly PolAddrEntry[];
  /** Entries of classes no set uses any more. */
  readonly l4Deletes: readonly PolL4Entry[];
  /** Entries of source-port classes no class uses any more. */
  readonly sportDeletes: readonly PolSportEntry[];
}

/**
 * What one update computed anew rather than reused from the previous one: an update
 * should cost what changed, not what exists (tests hold the compiler to this by these
 * counts, which do not depend on the machine's speed).
 */
export interface CompileWork {
  /** (Endpoint, direction) programs whose set was swept and emitted. */
  readonly setsCompiled: number;
  /** Programs whose set was found by fingerprint, from this update or the last. */
  readonly setsReused: number;
  /** Rules resolved against the world (the others came from the rule cache). */
  readonly rulesPlanned: number;
  /** l4 functions (classes) created by the sweeps (the others were found again). */
  readonly classesCreated: number;
}

export interface PolicyCompilerOptions {
  /** Address-stage entries one set may need (default 65,536). */
  readonly maxEntriesPerSet?: number;
  /** l4-stage entries one class may need (default 65,536). */
  readonly maxEntriesPerClass?: number;
  /** Entries tortie_pol_addr holds (default TORTIE_MAX_POL_ADDR, 2^20). */
  readonly maxAddrEntries?: number;
  /** Entries tortie_pol_l4 holds (default TORTIE_MAX_POL_L4, 2^20). */
  readonly maxL4Entries?: number;
  /** Entries tortie_pol_sprt holds (default TORTIE_MAX_POL_SPORT, 2^20). */
  readonly maxSportEntries?: number;
}

export function addrKey(e: Pick<PolAddrEntry, 'setId' | 'addr' | 'bits'>): string {
  return `${e.setId}/${e.addr}/${e.bits}`;
}

export function l4Key(e: Pick<PolL4Entry, 'classId' | 'l4' | 'bits'>): string {
  return `${e.classId}/${e.l4}/${e.bits}`;
}

export function sportKey(e: Pick<PolSportEntry, 'classId' | 'sport' | 'bits'>): string {
  return `${e.classId}/${e.sport}/${e.bits}`;
}
