/**
 * BPF policy: the endpoints' attachments, the compiled policy maps, and what a previous
 * agent left pinned (adopted at start, retired once every endpoint switched: ../adopt.ts).
 * Also the dataplane's counters and conntrack, for /status and /metrics.
 *
 * A failed write of the maps fails the reconcile: the compiler's state is dropped and the
 * maps are adopted as they are, so the next reconcile builds beside them (as a restart does).
 */
import type { Logger } from 'pino';
import { applyDelta } from '../../dataplane/apply.js';
import type {
  ConntrackPressure,
  CounterRow,
  NodeDataplane,
} from '../../dataplane/node-dataplane.js';
import { PolicyCompiler, type CompiledState, type Delta } from '../../policy/compile/index.js';
import {
  deletePinnedEndpoints,
  deletePinnedPolicy,
  IdSpace,
  pinnedEntryCount,
  readPinnedPolicy,
  staleEndpoints,
  type PinnedPolicy,
} from '../adopt.js';
import { conntrackFamilies, conntrackSummary } from '../conntrack.js';
import type { LocalEndpointInfo } from '../endpoints.js';
import { HOST_ENDPOINT_ID_BASE } from './host-endpoints.js';
import type {
  ManagerContext,
  ManagerResult,
  MetricsOut,
  Pass,
  PolicyManager,
  StatusPart,
} from '../manager.js';

/** Old pinned sets go this long after the endpoints switched away from them. */
export const PINNED_CLEANUP_DELAY_MS = 250;

export type MapRole =
  | 'ifaces'
  | 'routes'
  | 'ct'
  | 'frags'
  | 'polIp32'
  | 'polAddr'
  | 'polPort'
  | 'polL4'
  | 'polDflt'
  | 'polSport';

const POLICY_ROLES = ['polIp32', 'polAddr', 'polPort', 'polL4', 'polDflt', 'polSport'] as const;

/** The BPF side effects this manager needs (NodeDataplane; in memory in unit tests). */
export interface PolicyMapsPort {
  attach(ifindex: number): void;
  /** The policy state pinned now (nothing is written). */
  readPinned(): PinnedPolicy;
  apply(delta: Delta): { writes: number; deletes: number };
  deleteEndpoints(ifindexes: readonly number[]): number;
  deletePolicy(pinned: PinnedPolicy): number;
  counters(): CounterRow[];
  conntrack(): ConntrackPressure;
  /** A map's name and max_entries. */
  mapInfo(role: MapRole): { name: string; capacity: number };
  /** Entries in a map (not asked of the policy maps nor of ct). */
  mapCount(role: 'ifaces' | 'routes' | 'frags'): number;
}

export function policyMapsPort(dp: NodeDataplane): PolicyMapsPort {
  const maps = () => dp.dp.maps;
  return {
    attach: (ifindex) => dp.attach(ifindex),
    readPinned: () => readPinnedPolicy(maps()),
    apply: (delta) => applyDelta(maps(), delta),
    deleteEndpoints: (ifindexes) => deletePinnedEndpoints(maps(), ifindexes),
    deletePolicy: (pinned) => deletePinnedPolicy(maps(), pinned),
    counters: () => dp.counters(),
    conntrack: () => dp.conntrack(),
    mapInfo: (role) => {
      const info = maps()[role].info();
      return { name: info.name, capacity: info.maxEntries };
    },
    mapCount: (role) => maps()[role].count(),
  };
}

export class BpfPolicyManager implements PolicyManager {
  readonly name = 'bpf-policy';
  readonly endpointScoped = true;
  private readonly log: Logger;
  private compiler = new PolicyCompiler();
  private pinned: PinnedPolicy | undefined;
  private ids: IdSpace;
  private pinnedCleanup: NodeJS.Timeout | undefined;
  private compiled: CompiledState | undefined;
  private readonly attached = new Set<number>();
  /** Endpoint id → `namespace/name` of the endpoints last programmed. */
  private names = new Map<number, string>();
  private readonly adoptedFigures: Record<string, number>;

  constructor(
    private readonly ctx: ManagerContext,
    private readonly port: PolicyMapsPort,
  ) {
    this.log = ctx.log;
    this.pinned = port.readPinned();
    this.ids = IdSpace.above(this.pinned);
    this.adoptedFigures = {
      endpoints: this.pinned.endpoints.size,
      policyEntries: pinnedEntryCount(this.pinned),
    };
  }

  /** Pinned endpoints' ids (ifindex → id), so a restart keeps them. */
  endpointIdSeed(): Map<number, number> {
    // A host endpoint's id is its own range's (./host-endpoints.ts): pods count up apart.
    return new Map(
      [...(this.pinned?.endpoints ?? [])]
        .filter(([, e]) => e.id < HOST_ENDPOINT_ID_BASE)
        .map(([ifindex, e]) => [ifindex, e.id]),
    );
  }

  adopted(): Record<string, number> {
    return this.adoptedFigures;
  }

  reconcile(pass: Pass): ManagerResult {
    const { locals, links } = pass.snapshot;
    const live = new Set(links.values());
    // Attach first: a new veth is fail-closed (no entry: every packet dropped) from here.
    const attachedLocals: LocalEndpointInfo[] = [];
    for (const l of locals) {
      if (!this.attached.has(l.ifindex)) {
        try {
          this.port.attach(l.ifindex);
          this.attached.add(l.ifindex);
        } catch (e) {
          pass.unresolved.push({
            key: l.endpoint.key,
            interfaceName: l.interfaceName,
            reason: (e as Error).message,
          });
          continue;
        }
      }
      attachedLocals.push(l);
    }
    for (const i of this.attached) if (!live.has(i)) this.attached.delete(i);

    // Policy: compile, shift above what is pinned, apply in the delta's safe order.
    const { state, delta } = this.compiler.update(pass.snapshot.world, [
      ...attachedLocals,
      ...pass.hostEndpoints,
    ]);
    let stats;
    try {
      stats = this.port.apply(this.ids.delta(delta));
    } catch (e) {
      // The compiler committed a state the maps do not hold: start over as a restart
      // does, beside what is there now.
      this.readopt();
      throw e;
    }
    let deletes = stats.deletes;
    this.compiled = state;
    if (this.pinned !== undefined) deletes += this.retirePinned(state);
    pass.programmed = attachedLocals;
    this.names = new Map(
      [...attachedLocals, ...pass.hostEndpoints].map((l) => [l.id, l.endpoint.key]),
    );
    return { writes: stats.writes, deletes };
  }

  endpointRev(l: LocalEndpointInfo): number | undefined {
    const e = this.compiled?.endpoints.get(l.ifindex);
    return e === undefined ? undefined : this.ids.rev(e.policyRev);
  }

  rules(): ReadonlyMap<number, string> {
    return this.compiled?.rules ?? new Map();
  }

  /**
   * After the first compilation is in: the pinned endpoints that are not local any more
   * go now, the previous agent's sets and classes a moment later (see ../adopt.ts). One
   * timer, armed by the first good compilation: a later reconcile does not arm another
   * (an orphaned timer would outlive a readopt and delete the sets it adopted).
   */
  private retirePinned(state: CompiledState): number {
    const pinned = this.pinned!;
    const stale = staleEndpoints(pinned, new Set(state.endpoints.keys()));
    const n = this.port.deleteEndpoints(stale);
    if (stale.length > 0)
      this.log.info({ ifindexes: stale }, 'removed pinned endpoints that are not local any more');
    // Armed once, by the first good compilation (the endpoints switched then). A second
    // timer would orphan the first, and an orphan that outlives a readopt deletes the
    // sets the readopt adopted: every live endpoint's.
    this.pinnedCleanup ??= setTimeout(() => {
      this.pinnedCleanup = undefined;
      this.cleanPinnedPolicy();
    }, PINNED_CLEANUP_DELAY_MS);
    return n;
  }

  /** Forget the compiler's state and adopt the maps as they are (after a failed write). */
  private readopt(): void {
    clearTimeout(this.pinnedCleanup);
    this.pinnedCleanup = undefined;
    this.compiler = new PolicyCompiler();
    this.pinned = this.port.readPinned();
    this.ids = IdSpace.above(this.pinned);
    this.compiled = undefined;
    this.log.warn(
      { policyEntries: pinnedEntryCount(this.pinned) },
      'writing the policy maps failed: the next reconcile rebuilds beside what they hold',
    );
  }

  private cleanPinnedPolicy(): void {
    const pinned = this.pinned;
    if (pinned === undefined) return;
    this.pinned = undefined;
    try {
      const n = this.port.deletePolicy(pinned);
      if (n > 0)
        this.log.info(
          { entries: n },
          "removed the previous agent's policy entries (every endpoint has switched)",
        );
    } catch (e) {
      this.log.error(
        { err: (e as Error).message },
        "removing the previous agent's policy entries failed",
      );
    }
  }

  /** Drops by reason, summed over endpoints and directions. Throws when they cannot be read. */
  drops(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const c of this.port.counters()) {
      if (c.dropped) out[c.reason] = (out[c.reason] ?? 0) + Number(c.packets);
    }
    return out;
  }

  status(): StatusPart {
    const errors: Record<string, string> = {};
    let drops: Record<string, number> = {};
    try {
      drops = this.drops();
    } catch (e) {
      errors.drops = `cannot read the dataplane counters: ${(e as Error).message}`;
    }
    let ct: ConntrackPressure | undefined;
    try {
      ct = this.port.conntrack();
    } catch (e) {
      errors.conntrack = `cannot read tortie_ct: ${(e as Error).message}`;
    }
    return {
      drops,
      ...(ct === undefined ? {} : { conntrack: conntrackSummary(ct, this.names) }),
      ...(Object.keys(errors).length === 0 ? {} : { errors }),
    };
  }

  metrics(out: MetricsOut): void {
    out.part('dataplane-counters', () => counterFamilies(this.port.counters(), out));
    let ct: ConntrackPressure | undefined;
    out.part('conntrack', () => {
      ct = this.port.conntrack();
      out.families.push(...conntrackFamilies(ct, this.names));
    });
    // Each map on its own: one that cannot be read is left out (and counted), not all.
    const occupancy: { map: string; entries: number; capacity: number }[] = [];
    const pol = { polIp32: 0, polAddr: 0, polPort: 0, polL4: 0, polDflt: 0, polSport: 0 };
    if (this.compiled) {
      for (const e of this.compiled.addr.values()) pol[e.bits === 32 ? 'polIp32' : 'polAddr']++;
      for (const e of this.compiled.l4.values())
        pol[e.bits === 24 ? 'polPort' : e.bits === 0 ? 'polDflt' : 'polL4']++;
      pol.polSport += this.compiled.sport.size;
    }
    if (this.pinned) {
      for (const role of POLICY_ROLES) pol[role] += this.pinned.keys[role].length;
    }
    const failed: string[] = [];
    const entries = (role: MapRole): number => {
      if (role === 'ct') {
        if (ct === undefined) throw new Error('tortie_ct not counted');
        return ct.entries;
      }
      if (role === 'ifaces' || role === 'routes' || role === 'frags')
        return this.port.mapCount(role);
      return pol[role];
    };
    for (const role of ['ifaces', 'routes', 'ct', 'frags', ...POLICY_ROLES] as const) {
      try {
        const info = this.port.mapInfo(role);
        occupancy.push({ map: info.name, entries: entries(role), capacity: info.capacity });
      } catch (e) {
        failed.push(`${role}: ${(e as Error).message}`);
      }
    }
    out.families.push(
      {
        name: 'tortie_bpf_map_entries',
        help: 'Entries in each BPF map (policy maps: as compiled).',
        type: 'gauge',
        samples: occupancy.map((o) => ({ labels: { map: o.map }, value: o.entries })),
      },
      {
        name: 'tortie_bpf_map_capacity',
        help: 'max_entries of each BPF map.',
        type: 'gauge',
        samples: occupancy.map((o) => ({ labels: { map: o.map }, value: o.capacity })),
      },
      {
        name: 'tortie_bpf_map_pressure_ratio',
        help: 'Entries over capacity of each BPF map (1 = full: writes fail, policy fails closed).',
        type: 'gauge',
        samples: occupancy.map((o) => ({
          labels: { map: o.map },
          value: o.capacity === 0 ? 0 : o.entries / o.capacity,
        })),
      },
    );
    if (failed.length > 0)
      out.part('bpf-maps', () => {
        throw new Error(`maps left out: ${failed.join('; ')}`);
      });
  }

  stop(): void {
    if (this.pinnedCleanup !== undefined) {
      clearTimeout(this.pinnedCleanup);
      this.pinnedCleanup = undefined;
      this.cleanPinnedPolicy();
    }
  }
}

/** tortie_dataplane_packets_total / _bytes_total from the per-endpoint counters. */
export function counterFamilies(counters: readonly CounterRow[], out: MetricsOut): void {
  const byReason = new Map<
    string,
    { reason: string; dir: string; dropped: boolean; packets: bigint; bytes: bigint }
  >();
  for (const c of counters) {
    const k = `${c.reason}/${c.dir}`;
    const agg = byReason.get(k) ?? {
      reason: c.reason,
      dir: c.dir,
      dropped: c.dropped,
      packets: 0n,
      bytes: 0n,
    };
    agg.packets += c.packets;
    agg.bytes += c.bytes;
    byReason.set(k, agg);
  }
  const rows = [...byReason.values()].sort((a, b) =>
    a.reason + a.dir < b.reason + b.dir ? -1 : 1,
  );
  out.families.push(
    {
      name: 'tortie_dataplane_packets_total',
      help: 'Packets judged by the BPF programs, by reason (PASS_* allowed, DROP_* dropped) and direction.',
      type: 'counter',
      samples: rows.map((r) => ({
        labels: { reason: r.reason, dir: r.dir, verdict: r.dropped ? 'drop' : 'allow' },
        value: r.packets,
      })),
    },
    {
      name: 'tortie_dataplane_bytes_total',
      help: 'Bytes judged by the BPF programs, by reason and direction.',
      type: 'counter',
      samples: rows.map((r) => ({
        labels: { reason: r.reason, dir: r.dir, verdict: r.dropped ? 'drop' : 'allow' },
        value: r.bytes,
      })),
    },
  );
}
