/**
 * One node's BPF dataplane as the control plane drives it: the loaded object with its
 * pinned maps, the policy compiler whose deltas it applies, the local routes, and the
 * observability a user reads (counters by reason, events with rule names).
 */
import {
  loadDataplane,
  removePins,
  type Dataplane,
  type DataplaneConfig,
} from '../loader/index.js';
import { ipToU32, u32ToIp } from '../maps/addr.js';
import { isDrop, reasonName, RouteType } from '../maps/enums.js';
import { eventCodec, type EventRecord } from '../maps/structs.js';
import { native } from '../native/index.js';
import type { RingBuffer } from '../native/types.js';
import {
  PolicyCompiler,
  type CompiledState,
  type LocalEndpoint,
  type PolicyCompilerOptions,
} from '../policy/compile/index.js';
import type { RuleRef, World } from '../policy/model.js';
import { applyDelta, type ApplyStats } from './apply.js';

export interface NodeDataplaneOptions {
  /** bpffs directory for the pins, e.g. /sys/fs/bpf/tortie. */
  pinRoot: string;
  /** Namespace holding the pod veths' host ends (default: the caller's). */
  nodeNetns?: string;
  config?: DataplaneConfig;
  compiler?: PolicyCompilerOptions;
}

export interface ProgramStats extends ApplyStats {
  compileMs: number;
  applyMs: number;
  sets: number;
}

export interface CounterRow {
  epId: number;
  reason: string;
  dropped: boolean;
  dir: 'from-pod' | 'to-pod';
  packets: bigint;
  bytes: bigint;
}

export interface DataplaneEvent {
  type: 'drop' | 'verdict' | 'log';
  epId: number;
  ifindex: number;
  reason: string;
  action: 'allow' | 'deny' | 'none';
  rule: RuleRef | undefined;
  saddr: string;
  daddr: string;
  protocol: number;
  sport: number;
  dport: number;
  dir: 'from-pod' | 'to-pod';
  raw: EventRecord;
}

const EVENT_TYPES = { 1: 'drop', 2: 'verdict', 3: 'log' } as const;
const ACTIONS = { 0: 'none', 1: 'allow', 2: 'deny' } as const;

export class NodeDataplane {
  private readonly compiler: PolicyCompiler;
  private state: CompiledState | undefined;

  private constructor(
    readonly dp: Dataplane,
    readonly options: NodeDataplaneOptions,
  ) {
    this.compiler = new PolicyCompiler(options.compiler);
  }

  static open(options: NodeDataplaneOptions): NodeDataplane {
    const dp = loadDataplane({ pinRoot: options.pinRoot, config: options.config });
    return new NodeDataplane(dp, options);
  }

  /** Attach both programs to a pod's host veth. */
  attach(ifindex: number): void {
    this.dp.attachToEndpoint(ifindex, { netnsPath: this.options.nodeNetns });
  }

  detach(ifindex: number): boolean {
    return this.dp.detachFromEndpoint(ifindex, { netnsPath: this.options.nodeNetns });
  }

  /** A pod on this node: packets to `ip` are judged by its ingress policy and redirected into it. */
  setLocalRoute(ip: string, ifindex: number): void {
    this.dp.views.routes.update(
      { prefixlen: 32, addr: ipToU32(ip) },
      { type: RouteType.LOCAL_EP, ifindex, next_hop: 0, flags: 0 },
    );
  }

  deleteLocalRoute(ip: string): boolean {
    return this.dp.views.routes.delete({ prefixlen: 32, addr: ipToU32(ip) });
  }

  /** Compile `world` for the local endpoints and write the difference to the maps. */
  program(world: World, locals: LocalEndpoint[]): ProgramStats {
    const t0 = performance.now();
    const { state, delta } = this.compiler.update(world, locals);
    const t1 = performance.now();
    const stats = applyDelta(this.dp.maps, delta);
    const t2 = performance.now();
    this.state = state;
    const sets = new Set<number>();
    for (const e of state.endpoints.values()) sets.add(e.ingressSet).add(e.egressSet);
    return { ...stats, compileMs: t1 - t0, applyMs: t2 - t1, sets: sets.size };
  }

  ruleRef(ruleId: number): RuleRef | undefined {
    return ruleId === 0 ? undefined : this.state?.rules.get(ruleId);
  }

  get compiled(): CompiledState | undefined {
    return this.state;
  }

  counters(): CounterRow[] {
    return this.dp.views.metrics
      .entriesSum()
      .map(([k, v]) => ({
        epId: k.ep_id,
        reason: reasonName(k.reason),
        dropped: isDrop(k.reason),
        dir: (k.dir === 0 ? 'from-pod' : 'to-pod') as CounterRow['dir'],
        packets: BigInt(v.packets),
        bytes: BigInt(v.bytes),
      }))
      .sort(
        (a, b) => a.epId - b.epId || a.reason.localeCompare(b.reason) || a.dir.localeCompare(b.dir),
      );
  }

  decodeEvent(buf: Buffer): DataplaneEvent {
    const raw = eventCodec.decode(buf);
    return {
      type: EVENT_TYPES[raw.type as 1 | 2 | 3] ?? 'drop',
      epId: raw.ep_id,
      ifindex: raw.ifindex,
      reason: reasonName(raw.reason),
      action: ACTIONS[raw.action as 0 | 1 | 2] ?? 'none',
      rule: this.ruleRef(raw.rule_id),
      saddr: u32ToIp(raw.saddr),
      daddr: u32ToIp(raw.daddr),
      protocol: raw.proto,
      sport: raw.sport,
      dport: raw.dport,
      dir: raw.dir === 0 ? 'from-pod' : 'to-pod',
      raw,
    };
  }

  /**
   * Events from the ring buffer. With `poll` a background thread delivers them as they
   * come; without, call consume() on the returned buffer to drain synchronously.
   */
  events(onEvent: (e: DataplaneEvent) => void, opts: { poll?: boolean } = {}): RingBuffer {
    return native.ringBuffer(this.dp.maps.events.fd, (rec) => onEvent(this.decodeEvent(rec)), opts);
  }

  /** Release the object; attachments and pins stay (an agent restart adopts them). */
  close(): void {
    this.dp.close();
  }

  /** Release the object and remove the pins (a lab or test tearing down). */
  destroy(): void {
    this.dp.close();
    removePins(this.options.pinRoot);
  }
}
