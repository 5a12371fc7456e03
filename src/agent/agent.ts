/**
 * The per-node agent: keeps the BPF dataplane equal to the store.
 *
 *   etcd ──watch──► ClusterModel ─┐
 *   ipam blocks ──follow──────────┼─► reconcile (debounced) ─► policy maps, attachments,
 *   node heartbeats ──follow──────┘                             local and remote routes
 *                                                            ─► endpoint status, heartbeat
 *
 * Invariants:
 *  - Nothing is written to the dataplane before the first full sync (resources, blocks
 *    and heartbeats all listed): until then the pinned state keeps working as it is.
 *  - The first compilation after a start lands beside what is pinned and swaps
 *    (./adopt.ts): no live endpoint ever sees an empty or half-built set.
 *  - An endpoint's status is written only after its policy, attachment and route are in
 *    place: CNI ADD waits for it (waitForEndpointProgrammed), so no pod runs unprotected.
 *  - etcd unreachable: nothing is torn down; the dataplane keeps its last state. The
 *    watch resumes (or lists again) when etcd answers, and a reconcile follows.
 *  - A reconcile that fails (a policy over budget, a full map) changes nothing: the
 *    compiler commits only what it could apply, endpoints without policy drop (fail
 *    closed), and the failure is logged, counted and shown in /status.
 */
import type { Logger } from 'pino';
import { RouteMonitor } from './route-monitor.js';
import { Bird, type BgpSession } from '../bgp/bird.js';
import { renderBird, type BgpTimers } from '../bgp/render.js';
import { Datastore, type ResourceWatcher, type WatchEvent } from '../datastore/index.js';
import { applyDelta } from '../dataplane/apply.js';
import { NodeDataplane, type ConntrackPressure } from '../dataplane/node-dataplane.js';
import { IpamKeys } from '../ipam/keys.js';
import { affinityNode, ordinalAddress, parseBlock } from '../ipam/records.js';
import type { DataplaneConfig } from '../loader/index.js';
import { u32ToIp } from '../maps/addr.js';
import { RouteFlags, RouteType } from '../maps/enums.js';
import { PolicyCompiler, type CompiledState } from '../policy/compile/index.js';
import type { World } from '../policy/model.js';
import { endpointChainName, IptablesDataplane, type IptablesEndpoint } from '../iptables/index.js';
import {
  deletePinnedEndpoints,
  deletePinnedPolicy,
  IdSpace,
  pinnedEntryCount,
  readPinnedPolicy,
  staleEndpoints,
  type PinnedPolicy,
} from './adopt.js';
import type { AgentConfig } from './config.js';
import { Debouncer } from './debounce.js';
import {
  EndpointIds,
  resolveLocalEndpoints,
  type LocalEndpointInfo,
  type UnresolvedEndpoint,
} from './endpoints.js';
import { PrefixFollower } from './follow.js';
import { startOpsServer, type OpsServer, type Probe } from './http.js';
import {
  applyKernelRoutes,
  detectNodeAddress,
  findAddressInterface,
  listNodeAddresses,
  listKernelRoutes,
  listLinks,
} from './links.js';
import { createLogger } from './log.js';
import { conntrackFamilies, conntrackSummary, type ConntrackSummary } from './conntrack.js';
import { Histogram, RECONCILE_BUCKETS, renderMetrics, type MetricFamily } from './metrics.js';
import { buildWorld, ClusterModel, WATCHED_KINDS, type ModelProblem } from './model.js';
import { natRules, syncNat } from './nat.js';
import { StatusReporter } from './reporter.js';
import { VXLAN_DEVICE, VXLAN_MTU, VXLAN_PORT, VxlanDevice } from './vxlan.js';
import {
  BIRD_ROUTE_PROTO,
  desiredKernelRoutes,
  desiredRoutes,
  learnedRoutes,
  diffKernelRoutes,
  diffRoutes,
  TORTIE_ROUTE_PROTO,
  knownNodeAddresses,
  vxlanInnerSources,
  type DesiredRoute,
  type KernelRoute,
  type RouteBlock,
  type RouteInputs,
} from './routes.js';
import {
  endpointStatusKey,
  nodeStatusPrefix,
  type EndpointStatus,
  type NodeStatus,
} from './status.js';

/** What NodeDataplane offers for remote routes (added by the IPIP work; used when present). */
interface RemoteRouteApi {
  setRemoteRoute(cidr: string, nextHop: string, opts: { ipip: boolean }): void;
  deleteRoute(cidr: string): unknown;
  setKnownNodes(ips: readonly string[]): unknown;
}

/** This node on the underlay (the IPIP work; used when present). */
interface UplinkApi {
  setNodeConfig(cfg: { underlayIp: string; uplinkIfindex: number }): void;
  attachUplink(ifindex: number): void;
}

/** Old pinned sets go this long after the endpoints switched away from them. */
const PINNED_CLEANUP_DELAY_MS = 250;
/** With BGP routing: how often the learned kernel routes and BIRD's sessions are read. */
const BGP_POLL_MS = 1000;
/** A reconcile running longer than this makes /healthz fail. */
const STUCK_RECONCILE_MS = 60_000;

export interface AgentOptions {
  readonly log?: Logger;
  /** The BPF object (default: the package's bpf/tc_policy.o). */
  readonly dataplane?: DataplaneConfig;
}

export interface ReconcileRecord {
  readonly at: Date;
  readonly ok: boolean;
  readonly durationMs: number;
  readonly error?: string;
  readonly endpoints: number;
  readonly writes: number;
  readonly deletes: number;
}

export interface AgentStatus {
  readonly node: string;
  readonly ipv4Address: string | undefined;
  readonly synced: boolean;
  readonly ready: boolean;
  readonly etcdConnected: boolean;
  readonly healthUrl: string | undefined;
  readonly lease: string | undefined;
  /** Store revision of the model the last successful reconcile programmed ("0": none). */
  readonly programmedRevision: string;
  readonly endpoints: {
    key: string;
    interfaceName: string;
    ifindex: number;
    id: number;
    ip: string;
    policyRev: number;
    revision: string;
  }[];
  readonly unresolved: readonly UnresolvedEndpoint[];
  readonly routes: readonly DesiredRoute[];
  readonly remoteRoutesProgrammed: boolean;
  readonly routeError: string | undefined;
  readonly uplink: { ip: string; ifindex: number } | { error: string } | undefined;
  readonly knownNodes: readonly string[];
  /** Nodes whose heartbeat the agent sees in the store (a change is reconciled at once). */
  readonly liveNodes: readonly string[];
  /** natOutgoing: rules in the node's TORTIE-NAT-OUTGOING chain, and the last failure. */
  readonly nat: { readonly rules: number; readonly error: string | undefined };
  readonly lastReconcile: ReconcileRecord | undefined;
  readonly reconciles: { ok: number; failed: number };
  readonly problems: readonly ModelProblem[];
  readonly drops: Record<string, number>;
  /** tortie_ct's fill and its biggest creators (BPF dataplane only). */
  readonly conntrack?: ConntrackSummary;
  /** Only with `routing: bgp`. */
  readonly bgp?: BgpStatus;
}

/** BIRD as the agent sees it (`routing: bgp`). */
export interface BgpStatus {
  readonly routing: 'bgp';
  /** BIRD's pid (undefined: not running). */
  readonly birdPid: number | undefined;
  readonly configFile: string;
  readonly socket: string;
  readonly sessions: readonly BgpSession[];
  /** Routes BIRD installed in the node's kernel (`proto bird`). */
  readonly learned: readonly KernelRoute[];
  readonly error: string | undefined;
  /** Peers the renderer left out, and why. */
  readonly problems: readonly string[];
}

export class Agent {
  readonly log: Logger;
  private readonly model = new ClusterModel();
  private compiler = new PolicyCompiler();
  private ids: IdSpace;
  private readonly endpointIds: EndpointIds;
  private readonly debouncer: Debouncer;
  private readonly histogram = new Histogram(RECONCILE_BUCKETS);
  private readonly startedAt = new Date();
  private ds: Datastore | undefined;
  private watcher: ResourceWatcher | undefined;
  private blocks: PrefixFollower | undefined;
  private heartbeats: PrefixFollower | undefined;
  private reporter: StatusReporter | undefined;
  private ops: OpsServer | undefined;
  private pinned: PinnedPolicy | undefined;
  private pinnedCleanup: NodeJS.Timeout | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private retryTimers = new Set<NodeJS.Timeout>();
  private resourcesSynced = false;
  private everSynced = false;
  private programmedOnce = false;
  private watchConnected = false;
  private etcdOk = false;
  private stopped = false;
  private address: string | undefined;
  private compiled: CompiledState | undefined;
  private locals: LocalEndpointInfo[] = [];
  private unresolved: UnresolvedEndpoint[] = [];
  private problems: ModelProblem[] = [];
  private readonly attached = new Set<number>();
  /** Local /32 → ifindex, as in the routes map. */
  private localRoutes = new Map<string, number>();
  /** Remote routes as in the routes map. */
  private remoteRoutes = new Map<string, DesiredRoute>();
  private desired: DesiredRoute[] = [];
  private knownNodes: string[] = [];
  private knownNodesSet: string | undefined;
  private aliveNodes = '';
  /** The store revision of the model the last successful reconcile programmed. */
  private programmedRev = 0n;
  private revWaiters = new Set<() => void>();
  private reconcileStarted: number | undefined;
  private last: ReconcileRecord | undefined;
  private okCount = 0;
  private failCount = 0;
  private warnedNoRouteApi = false;
  private unresolvedShown = '';
  private uplink: { ip: string; ifindex: number } | undefined;
  /** The node addresses last written as host routes (programHostAddresses). */
  private hostAddressesKey: string | undefined;
  private uplinkError: string | undefined;
  private routeError: string | undefined;
  private routeErrors = 0;
  /** natOutgoing: the chain's rules last synced (undefined: not yet), when, and the last error. */
  private natSynced: { rules: string; at: number } | undefined;
  private natError: string | undefined;
  private natErrors = 0;
  /** BGP routing: this node's BIRD, what it learned, its sessions, the last failure. */
  private bird: Bird | undefined;
  private bgpTimer: NodeJS.Timeout | undefined;
  /** BGP routing: BIRD's kernel routes as they change (reads at once, not at the next poll). */
  private routeMonitor: RouteMonitor | undefined;
  private bgpPolling = false;
  private learned: KernelRoute[] = [];
  private learnedKey = '';
  private bgpSoon: NodeJS.Timeout | undefined;
  private bgpRepoll = false;
  private sessions: BgpSession[] = [];
  private bgpError: string | undefined;
  private bgpProblems: string[] = [];
  private birdGoneLogged = false;

  /** iptables mode: what is programmed per endpoint (ifindex → policyRev), and figures. */
  private iptRevs = new Map<number, number>();
  private iptGeneration = 0;
  private iptErrors = 0;
  private iptError: string | undefined;
  private iptChains = 0;
  private iptSets = 0;
  private readonly iptHistogram = new Histogram(RECONCILE_BUCKETS);
  /** iptables mode: the VXLAN device (made when a route wants it), and a refused encap. */
  private vxlan: VxlanDevice | undefined;
  private encapError: string | undefined;

  private constructor(
    readonly config: AgentConfig,
    private readonly bpf: NodeDataplane | undefined,
    log: Logger,
    /** The iptables dataplane (`dataplane: iptables`); undefined in BPF mode. */
    readonly iptables?: IptablesDataplane,
  ) {
    this.log = log;
    if (bpf !== undefined) {
      this.pinned = readPinnedPolicy(bpf.dp.maps);
      this.ids = IdSpace.above(this.pinned);
      this.endpointIds = new EndpointIds(
        new Map([...this.pinned.endpoints].map(([ifindex, e]) => [ifindex, e.id])),
      );
      this.seedRoutes();
    } else {
      this.ids = new IdSpace(0, 0, 0);
      this.endpointIds = new EndpointIds(new Map());
    }
    if (config.routing === 'bgp') {
      this.bird = new Bird({
        node: config.nodeName,
        runDir: config.bgpRunDir,
        netns: config.nodeNetns,
      });
    }
    this.debouncer = new Debouncer(() => this.reconcile(), {
      quietMs: config.debounceMs,
      maxDelayMs: config.maxDelayMs,
      onError: (e) => this.log.error({ err: (e as Error).message }, 'reconcile crashed'),
    });
  }

  /** The BPF dataplane (throws in iptables mode, which loads none). */
  get dataplane(): NodeDataplane {
    if (this.bpf === undefined)
      throw new Error(`${this.config.nodeName}: dataplane iptables: no BPF dataplane loaded`);
    return this.bpf;
  }

  /**
   * Loads the dataplane (adopting its pins), serves /healthz etc., and starts following
   * the store in the background: resolves at once, also when etcd is unreachable.
   */
  static async start(config: AgentConfig, options: AgentOptions = {}): Promise<Agent> {
    const log = options.log ?? createLogger(config.nodeName, config.logLevel);
    if (config.dataplane === 'iptables') {
      // No BPF object: chains and ipsets in the node's namespace, a previous run's adopted.
      const ipt = await IptablesDataplane.open({
        ...(config.nodeNetns === undefined ? {} : { netns: config.nodeNetns }),
        allowIPIPPacketsFromWorkloads: config.allowIPIPPacketsFromWorkloads,
        allowVXLANPacketsFromWorkloads: config.allowVXLANPacketsFromWorkloads,
        vxlanPort: VXLAN_PORT,
        endpointToHost: config.defaultEndpointToHostAction,
      });
      const agent = new Agent(config, undefined, log, ipt);
      try {
        await agent.begin();
        return agent;
      } catch (e) {
        await agent.stop().catch(() => undefined);
        throw e;
      }
    }
    const dataplane = NodeDataplane.open({
      pinRoot: config.pinRoot,
      ...(config.nodeNetns === undefined ? {} : { nodeNetns: config.nodeNetns }),
      config: {
        allowIPIPPacketsFromWorkloads: config.allowIPIPPacketsFromWorkloads,
        allowVXLANPacketsFromWorkloads: config.allowVXLANPacketsFromWorkloads,
        vxlanPort: VXLAN_PORT,
        ...(config.ctNewFlowBudget === undefined
          ? {}
          : { ctNewFlowBudget: config.ctNewFlowBudget }),
        ...options.dataplane,
        endpointToHostAction: config.defaultEndpointToHostAction,
      },
    });
    let agent: Agent | undefined;
    try {
      agent = new Agent(config, dataplane, log);
      await agent.begin();
      return agent;
    } catch (e) {
      if (agent === undefined) dataplane.close();
      else await agent.stop().catch(() => dataplane.close());
      throw e;
    }
  }

  // --- lifecycle ----------------------------------------------------------------------

  private async begin(): Promise<void> {
    const c = this.config;
    if (this.iptables !== undefined) {
      const held = this.iptables.current();
      this.log.info(
        {
          dataplane: 'iptables',
          nodeNetns: c.nodeNetns,
          etcd: c.etcd.endpoints,
          adopted: { chains: held.chains.size, sets: held.sets.size },
        },
        'agent starting: iptables dataplane, existing chains and sets adopted (nothing is written before the first sync)',
      );
    } else
      this.log.info(
        {
          pinRoot: c.pinRoot,
          nodeNetns: c.nodeNetns,
          etcd: c.etcd.endpoints,
          adopted: {
            endpoints: this.pinned!.endpoints.size,
            policyEntries: pinnedEntryCount(this.pinned!),
            localRoutes: this.localRoutes.size,
            remoteRoutes: this.remoteRoutes.size,
          },
        },
        'agent starting: dataplane loaded, pinned state adopted (nothing is written before the first sync)',
      );
    this.ops = await startOpsServer(c.healthHost, c.healthPort, {
      healthz: () => this.healthz(),
      readyz: () => this.readyz(),
      metrics: () => this.metrics(),
      status: () => this.status(),
      rules: () => this.ruleTable(),
    });
    this.log.info({ url: this.ops.url }, 'serving /healthz, /readyz, /metrics, /status, /rules');
    this.address = c.ipv4Address ?? (await detectNodeAddress(c.nodeNetns).catch(() => undefined));
    if (this.address === undefined) {
      this.log.warn(
        'no underlay address given (--ip) or found: other nodes cannot route to this one',
      );
    }
    this.ds = await Datastore.connect(c.etcd);
    const prefix = this.ds.prefix;
    this.reporter = new StatusReporter({
      etcd: this.ds.etcd,
      prefix,
      node: c.nodeName,
      ttlSeconds: c.heartbeatTtlSeconds,
      reportIntervalSeconds: c.reportIntervalSeconds,
      nodeStatus: () => this.nodeStatus(),
      log: this.log,
      onEtcd: (ok) => this.noteEtcd(ok),
    });
    this.reporter.start();
    this.blocks = new PrefixFollower({
      etcd: this.ds.etcd,
      prefix: new IpamKeys(prefix).blocks,
      log: this.log,
      onChange: () => this.debouncer.trigger(),
    });
    this.heartbeats = new PrefixFollower({
      etcd: this.ds.etcd,
      prefix: nodeStatusPrefix(prefix),
      keysOnly: true,
      log: this.log,
      onChange: (snap) => {
        const alive = [...snap.keys()].sort().join(',');
        if (alive !== this.aliveNodes) {
          this.aliveNodes = alive;
          this.debouncer.trigger();
        }
      },
    });
    this.blocks.start();
    this.heartbeats.start();
    void this.register(0);
    void this.startWatch(0);
    this.resyncTimer = setInterval(() => this.debouncer.trigger(), c.resyncIntervalMs);
    if (this.bird !== undefined) {
      this.log.info(
        { runDir: c.bgpRunDir, birdPid: this.bird.pid() },
        this.bird.pid() === undefined
          ? 'routing: bgp (BIRD is started at the first sync)'
          : 'routing: bgp (a running BIRD is adopted)',
      );
      this.bgpTimer = setInterval(() => void this.pollBgp(), BGP_POLL_MS);
      this.routeMonitor = new RouteMonitor({
        nodeNetns: c.nodeNetns,
        match: 'proto bird',
        onChange: () => this.pollBgpSoon(),
        onProblem: (message) => this.log.warn({ err: message }, 'route monitor (retried)'),
      });
      this.routeMonitor.start();
    }
  }

  /** A learned route changed: read them now (coalesced; pollBgp skips while one runs). */
  private pollBgpSoon(): void {
    if (this.bgpSoon !== undefined) return;
    this.bgpSoon = setTimeout(() => {
      this.bgpSoon = undefined;
      void this.pollBgp();
    }, 5);
  }

  /**
   * Stops following the store and releases the dataplane object. Attachments, pins and
   * the lease stay: a new agent adopts the first two, and the heartbeat lives until its
   * TTL, so a restart is invisible to other nodes.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.resyncTimer);
    clearInterval(this.bgpTimer);
    clearTimeout(this.bgpSoon);
    this.routeMonitor?.stop();
    for (const t of this.retryTimers) clearTimeout(t);
    await this.debouncer.stop();
    for (const w of [...this.revWaiters]) w();
    if (this.pinnedCleanup !== undefined) {
      clearTimeout(this.pinnedCleanup);
      this.pinnedCleanup = undefined;
      this.cleanPinnedPolicy();
    }
    await Promise.all([
      this.watcher?.cancel(),
      this.blocks?.stop(),
      this.heartbeats?.stop(),
      this.reporter?.stop(),
      this.ops?.close(),
    ]);
    await this.ds?.close();
    this.bpf?.close();
    this.log.info(
      this.bpf === undefined
        ? 'agent stopped (iptables chains left in place)'
        : 'agent stopped (dataplane left running on its pins)',
    );
  }

  /** Runs a reconcile now (after one in progress) and waits for it. */
  reconcileNow(): Promise<void> {
    return this.debouncer.flush();
  }

  /** Resolves when no reconcile is scheduled or running. */
  idle(): Promise<void> {
    return this.debouncer.idle();
  }

  /** The store revision whose model the last successful reconcile programmed (0: none yet). */
  get programmedRevision(): bigint {
    return this.programmedRev;
  }

  /**
   * Resolves once a reconcile of a model holding every change up to store revision
   * `revision` (of the kinds the agent watches) has completed; rejects after `timeoutMs`.
   */
  waitForRevision(revision: string | bigint, timeoutMs = 30_000): Promise<void> {
    const want = BigInt(revision);
    if (this.programmedRev >= want) return Promise.resolve();
    // The model has it already but nothing is scheduled (a change that changed nothing).
    if (BigInt(this.model.revision) >= want) this.debouncer.trigger();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.programmedRev < want && !this.stopped) return;
        clearTimeout(timer);
        this.revWaiters.delete(check);
        if (this.programmedRev >= want) resolve();
        else reject(new Error(`${this.config.nodeName}: agent stopped`));
      };
      const timer = setTimeout(() => {
        this.revWaiters.delete(check);
        reject(
          new Error(
            `${this.config.nodeName}: store revision ${want} not programmed within ${timeoutMs} ms ` +
              `(model at ${this.model.revision}, programmed ${this.programmedRev}` +
              `${this.last?.error === undefined ? '' : `, last reconcile failed: ${this.last.error}`})`,
          ),
        );
      }, timeoutMs);
      this.revWaiters.add(check);
    });
  }

  /** Resolves once the endpoint statuses written so far are in etcd. */
  async statusSettled(): Promise<void> {
    await this.reporter?.settled();
  }

  /**
   * The rule a verdict's rule id names (drop events, counters). The agent compiles with
   * its own compiler, so NodeDataplane.ruleRef does not know these ids.
   */
  ruleRef(ruleId: number): string | undefined {
    return ruleId === 0 ? undefined : this.compiled?.rules.get(ruleId);
  }

  get healthUrl(): string | undefined {
    return this.ops?.url;
  }

  get synced(): boolean {
    return this.everSynced;
  }

  get programmed(): boolean {
    return this.programmedOnce;
  }

  private later(ms: number, fn: () => void): void {
    if (this.stopped) return;
    const t = setTimeout(() => {
      this.retryTimers.delete(t);
      if (!this.stopped) fn();
    }, ms);
    this.retryTimers.add(t);
  }

  private noteEtcd(ok: boolean): void {
    if (ok !== this.etcdOk) {
      this.etcdOk = ok;
      if (ok) this.log.info('etcd reachable');
      else this.log.warn('etcd unreachable: the dataplane keeps its last state');
    }
  }

  // --- registration -------------------------------------------------------------------

  /** Writes this node's Node (address, AS number, labels), merged into what is stored. */
  private async register(attempt: number): Promise<void> {
    if (this.stopped) return;
    const ds = this.ds!;
    const c = this.config;
    try {
      const existing = await ds.get('Node', c.nodeName);
      const bgp = {
        ...(existing?.spec.bgp ?? {}),
        ...(this.address === undefined ? {} : { ipv4Address: this.address }),
        ...(c.asNumber === undefined ? {} : { asNumber: c.asNumber }),
      };
      const spec = {
        ...(existing?.spec ?? {}),
        ...(bgp.ipv4Address === undefined ? {} : { bgp }),
      };
      const labels = { ...(existing?.metadata.labels ?? {}), ...c.labels };
      const [res] = await ds.apply({
        apiVersion: 'tortie.io/v1',
        kind: 'Node',
        metadata: {
          name: c.nodeName,
          ...(Object.keys(labels).length === 0 ? {} : { labels }),
          ...(existing?.metadata.annotations ? { annotations: existing.metadata.annotations } : {}),
        },
        spec,
      });
      this.noteEtcd(true);
      this.log.info(
        { action: res?.action, ipv4Address: bgp.ipv4Address, asNumber: bgp.asNumber },
        'node registered',
      );
    } catch (e) {
      this.noteEtcd(false);
      const delay = Math.min(250 * 2 ** attempt, 5000);
      this.log.warn(
        { err: (e as Error).message, retryInMs: delay },
        'cannot register the node yet',
      );
      this.later(delay, () => void this.register(attempt + 1));
    }
  }

  // --- the watch ----------------------------------------------------------------------

  private async startWatch(attempt: number): Promise<void> {
    if (this.stopped) return;
    try {
      this.watcher = await this.ds!.watch(WATCHED_KINDS, (ev) => this.onEvent(ev), {
        onError: (err) => this.log.warn({ err: err.message }, 'watch problem'),
        onStatus: (status, detail) => {
          const connected = status === 'connected';
          if (connected !== this.watchConnected) {
            this.watchConnected = connected;
            this.log.info({ status, detail }, 'store watch');
          }
          this.noteEtcd(connected);
          // Back: resync what the blocks and heartbeats missed, and reconcile.
          if (connected) this.debouncer.trigger();
        },
      });
      if (this.stopped) await this.watcher.cancel();
    } catch (e) {
      this.noteEtcd(false);
      const delay = Math.min(250 * 2 ** attempt, 5000);
      this.log.warn({ err: (e as Error).message, retryInMs: delay }, 'cannot list the store yet');
      this.later(delay, () => void this.startWatch(attempt + 1));
    }
  }

  private onEvent(ev: WatchEvent): void {
    const changed = this.model.apply(ev);
    if (ev.type === 'synced') {
      this.noteEtcd(true);
      if (!this.resourcesSynced) this.log.info({ revision: ev.revision }, 'store listed');
      else this.log.info({ revision: ev.revision, cause: ev.cause }, 'store listed again');
      this.resourcesSynced = true;
      this.debouncer.trigger();
      return;
    }
    if (changed && this.resourcesSynced) this.debouncer.trigger();
  }

  // --- reconcile ----------------------------------------------------------------------

  private fullySynced(): boolean {
    return this.resourcesSynced && this.blocks?.synced === true && this.heartbeats?.synced === true;
  }

  private async reconcile(): Promise<void> {
    if (this.stopped) return;
    if (!this.fullySynced()) {
      this.log.debug('not reconciling before the first full sync');
      return;
    }
    if (!this.everSynced) {
      this.everSynced = true;
      this.reporter?.reportNow();
    }
    const t0 = performance.now();
    this.reconcileStarted = Date.now();
    let writes = 0;
    let deletes = 0;
    try {
      const modelRev = BigInt(this.model.revision);
      const built = buildWorld(this.model);
      this.reportProblems(built.problems);
      const links = await listLinks(this.config.nodeNetns);
      if (this.stopped) return;
      const { locals, unresolved } = resolveLocalEndpoints(
        this.config.nodeName,
        built.endpoints.values(),
        links,
        this.endpointIds,
      );
      let attachedLocals: LocalEndpointInfo[] = [];
      const liveIfindexes = new Set(links.values());
      if (this.iptables !== undefined) {
        // iptables mode: chains for every resolved endpoint; a veth in no dispatch chain
        // is dropped, so a new one is fail-closed until this write is in.
        const w = await this.programIptables(this.iptables, built.world, locals);
        writes += w;
        attachedLocals = locals;
        if (this.stopped) return;
      } else {
        // Attach first: a new veth is fail-closed (no entry: every packet dropped) from here.
        for (const l of locals) {
          if (!this.attached.has(l.ifindex)) {
            try {
              this.dataplane.attach(l.ifindex);
              this.attached.add(l.ifindex);
            } catch (e) {
              unresolved.push({
                key: l.endpoint.key,
                interfaceName: l.interfaceName,
                reason: (e as Error).message,
              });
              continue;
            }
          }
          attachedLocals.push(l);
        }
        for (const i of this.attached) if (!liveIfindexes.has(i)) this.attached.delete(i);

        // Policy: compile, shift above what is pinned, apply in the delta's safe order.
        const { state, delta } = this.compiler.update(built.world, attachedLocals);
        let stats;
        try {
          stats = applyDelta(this.dataplane.dp.maps, this.ids.delta(delta));
        } catch (e) {
          // The compiler committed a state the maps do not hold: start over as a restart
          // does, beside what is there now.
          this.readopt();
          throw e;
        }
        writes += stats.writes;
        deletes += stats.deletes;
        this.compiled = state;
        if (this.pinned !== undefined) deletes += this.retirePinned(state);

        // Local routes: a /32 per local endpoint into its veth.
        const wantLocal = new Map(attachedLocals.map((l) => [l.endpoint.ip, l.ifindex]));
        for (const [ip, ifindex] of wantLocal) {
          if (this.localRoutes.get(ip) !== ifindex) {
            this.dataplane.setLocalRoute(ip, ifindex);
            writes++;
          }
        }
        for (const ip of this.localRoutes.keys()) {
          if (!wantLocal.has(ip)) {
            this.dataplane.deleteLocalRoute(ip);
            deletes++;
          }
        }
        this.localRoutes = wantLocal;
      }

      // Remote routes.
      const inputs = this.routeInputs();
      if (this.bird === undefined) this.desired = desiredRoutes(inputs);
      else {
        // BGP: the route map follows what BIRD installed in the kernel.
        try {
          this.learned = await listKernelRoutes(this.config.nodeNetns, BIRD_ROUTE_PROTO);
          this.learnedKey = JSON.stringify(this.learned);
        } catch (e) {
          this.log.warn({ err: (e as Error).message }, 'cannot read the learned routes');
        }
        if (this.stopped) return;
        this.desired = learnedRoutes(this.learned, inputs);
      }
      this.knownNodes = knownNodeAddresses(inputs);
      // Routing problems do not hold back local policy (nor the endpoints' status).
      try {
        const r = this.programRemoteRoutes();
        writes += r.writes;
        deletes += r.deletes;
        this.routeError = undefined;
      } catch (e) {
        this.routeError = (e as Error).message;
        this.routeErrors++;
        this.log.error({ err: this.routeError }, 'programming remote routes failed (retried)');
        this.later(2000, () => this.debouncer.trigger());
      }
      await this.programUplink(liveIfindexes);
      if (this.stopped) return;
      await this.programHostAddresses();
      if (this.stopped) return;
      // BGP: BIRD's configuration from the store (started, reloaded or left alone).
      if (this.bird !== undefined) {
        await this.programBird(inputs, links);
        if (this.stopped) return;
      }
      // Kernel routes for the remote blocks (plain mode: they carry the pods' packets).
      try {
        const r = await this.programKernelRoutes(links);
        writes += r.writes;
        deletes += r.deletes;
      } catch (e) {
        this.routeError = (e as Error).message;
        this.routeErrors++;
        this.log.error({ err: this.routeError }, 'programming kernel routes failed (retried)');
        this.later(2000, () => this.debouncer.trigger());
      }
      // natOutgoing: the node's netfilter chain (nothing to do with the maps).
      await this.programNat();
      if (this.stopped) return;

      this.locals = attachedLocals;
      this.unresolved = unresolved;
      this.endpointIds.retain(new Set(locals.map((l) => l.endpoint.key)));
      if (unresolved.length > 0) {
        const shown = JSON.stringify(unresolved);
        if (shown !== this.unresolvedShown) {
          this.log.warn(
            { unresolved },
            'local endpoints without a usable interface (not programmed; retried every second)',
          );
        }
        this.unresolvedShown = shown;
        this.later(1000, () => this.debouncer.trigger());
      } else {
        this.unresolvedShown = '';
      }
      if (!this.programmedOnce) {
        // Labs and scripts wait for this line: the dataplane equals the store once.
        this.log.info({ endpoints: locals.length }, 'first sync programmed');
      }
      this.programmedOnce = true;
      this.reporter?.setEndpoints(this.endpointStatuses());
      this.record(t0, true, undefined, writes, deletes);
      if (modelRev > this.programmedRev) this.programmedRev = modelRev;
      for (const w of [...this.revWaiters]) w();
    } catch (e) {
      this.record(t0, false, (e as Error).message, writes, deletes);
      this.later(2000, () => this.debouncer.trigger());
    } finally {
      this.reconcileStarted = undefined;
    }
  }

  /**
   * iptables mode: renders the world for the resolved local endpoints and writes what
   * changed (IptablesDataplane: ipset restore, iptables-restore --noflush). Only once it
   * returned do the endpoints count as programmed (their status follows). An endpoint's
   * policyRev is the write generation at which its own chains last changed.
   */
  private async programIptables(
    ipt: IptablesDataplane,
    world: World,
    locals: readonly LocalEndpointInfo[],
  ): Promise<number> {
    const eps: IptablesEndpoint[] = locals.map((l) => ({
      endpoint: l.endpoint,
      iface: l.interfaceName,
    }));
    const t0 = performance.now();
    let report;
    try {
      // VXLAN is accepted from the other nodes only (tortie-INPUT, docs/iptables.md).
      // VXLAN's inner source must be routed to the sending node (tortie-vxlan-in).
      const inputs = this.routeInputs();
      report = await ipt.program(world, eps, {
        vxlanSources: knownNodeAddresses(inputs),
        vxlanInnerSources: vxlanInnerSources(inputs),
      });
    } catch (e) {
      this.iptErrors++;
      this.iptError = (e as Error).message;
      throw e;
    }
    this.iptError = undefined;
    this.iptHistogram.observe((performance.now() - t0) / 1000);
    const held = ipt.current();
    this.iptChains = held.chains.size;
    this.iptSets = held.sets.size;
    const written = new Set(report.writtenChains);
    const changed = written.size + report.writtenSets.length + report.deletedChains.length > 0;
    if (changed) this.iptGeneration++;
    const revs = new Map<number, number>();
    for (const l of locals) {
      const own =
        written.has(endpointChainName(l.interfaceName, 'ingress')) ||
        written.has(endpointChainName(l.interfaceName, 'egress'));
      const before = this.iptRevs.get(l.ifindex);
      revs.set(l.ifindex, own || before === undefined ? Math.max(1, this.iptGeneration) : before);
    }
    this.iptRevs = revs;
    if (changed) {
      this.log.info(
        {
          ms: Math.round(report.ms * 10) / 10,
          writtenChains: report.writtenChains.length,
          deletedChains: report.deletedChains.length,
          writtenSets: report.writtenSets.length,
          deletedSets: report.deletedSets.length,
          chains: this.iptChains,
          sets: this.iptSets,
        },
        'iptables programmed',
      );
    }
    return written.size + report.writtenSets.length;
  }

  /** The policyRev an endpoint is programmed at (undefined: not programmed). */
  private endpointRev(l: LocalEndpointInfo): number | undefined {
    if (this.iptables !== undefined) return this.iptRevs.get(l.ifindex);
    const e = this.compiled?.endpoints.get(l.ifindex);
    return e === undefined ? undefined : this.ids.rev(e.policyRev);
  }

  private record(
    t0: number,
    ok: boolean,
    error: string | undefined,
    writes: number,
    deletes: number,
  ): void {
    const durationMs = performance.now() - t0;
    this.histogram.observe(durationMs / 1000);
    this.last = {
      at: new Date(),
      ok,
      durationMs,
      endpoints: this.locals.length,
      writes,
      deletes,
      ...(error ? { error } : {}),
    };
    if (ok) this.okCount++;
    else this.failCount++;
    const fields = {
      durationMs: Math.round(durationMs * 10) / 10,
      endpoints: this.locals.length,
      writes,
      deletes,
    };
    if (!ok)
      this.log.error(
        { ...fields, err: error },
        'reconcile failed: the dataplane keeps its previous state',
      );
    else if (writes + deletes > 0) this.log.info(fields, 'reconciled');
    else this.log.debug(fields, 'reconciled (no change)');
  }

  private reportProblems(problems: readonly ModelProblem[]): void {
    const before = new Set(this.problems.map((p) => `${p.object}: ${p.message}`));
    for (const p of problems) {
      if (!before.has(`${p.object}: ${p.message}`))
        this.log.error(p, 'resource left out of the policy model');
    }
    this.problems = [...problems];
  }

  /**
   * After the first compilation is in: the pinned endpoints that are not local any more
   * go now, the previous agent's sets and classes a moment later (see ./adopt.ts).
   */
  private retirePinned(state: CompiledState): number {
    const pinned = this.pinned!;
    const stale = staleEndpoints(pinned, new Set(state.endpoints.keys()));
    const n = deletePinnedEndpoints(this.dataplane.dp.maps, stale);
    if (stale.length > 0)
      this.log.info({ ifindexes: stale }, 'removed pinned endpoints that are not local any more');
    this.pinnedCleanup = setTimeout(() => {
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
    this.pinned = readPinnedPolicy(this.dataplane.dp.maps);
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
      const n = deletePinnedPolicy(this.dataplane.dp.maps, pinned);
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

  private endpointStatuses(): Map<string, EndpointStatus> {
    const out = new Map<string, EndpointStatus>();
    const prefix = this.ds!.prefix;
    const now = new Date().toISOString();
    for (const l of this.locals) {
      const rev = this.endpointRev(l);
      if (rev === undefined) continue;
      out.set(
        endpointStatusKey(prefix, this.config.nodeName, l.endpoint.namespace, l.endpoint.name),
        {
          programmed: true,
          policyRev: rev,
          revision: l.wep.metadata.resourceVersion ?? '0',
          node: this.config.nodeName,
          interfaceName: l.interfaceName,
          ifindex: l.ifindex,
          endpointId: l.id,
          ip: l.endpoint.ip,
          programmedAt: now,
        },
      );
    }
    return out;
  }

  // --- routes -------------------------------------------------------------------------

  private routeInputs(): RouteInputs {
    const prefix = this.ds!.prefix;
    // A node's routes follow its Node resource, not its agent's heartbeat: an agent that
    // is restarting, upgrading or cut off from etcd leaves a dataplane that still forwards
    // (its pins stay), so the other nodes keep routing to it. Deleting the Node (what a
    // decommission or Kubernetes' node controller does) withdraws them, as in Calico.
    const nodes = this.model.list('Node').map((n) => ({
      name: n.metadata.name,
      address: n.spec.bgp?.ipv4Address,
      alive: true,
    }));
    const keys = new IpamKeys(prefix);
    const blocks: RouteBlock[] = [];
    for (const [key, value] of this.blocks?.snapshot ?? []) {
      const cidr = keys.blockCidr(key);
      if (cidr === undefined) continue;
      try {
        const b = parseBlock(key, value.toString(), cidr);
        blocks.push({
          cidr: b.cidr,
          affinity: affinityNode(b),
          allocations: b.allocations.map((a) => ({
            ip: ordinalAddress(cidr, a.ordinal),
            node: a.node,
          })),
        });
      } catch (e) {
        this.log.warn({ key, err: (e as Error).message }, 'IPAM block left out of the routes');
      }
    }
    const pools = this.model.list('IPPool').map((p) => ({
      cidr: p.spec.cidr,
      ipipMode: p.spec.ipipMode,
      vxlanMode: p.spec.vxlanMode,
    }));
    return { self: this.config.nodeName, nodes, blocks, pools };
  }

  private routeApi(): RemoteRouteApi | undefined {
    if (this.bpf === undefined) return undefined;
    const dp = this.bpf as unknown as Partial<RemoteRouteApi>;
    return typeof dp.setRemoteRoute === 'function' && typeof dp.deleteRoute === 'function'
      ? (dp as RemoteRouteApi)
      : undefined;
  }

  private programRemoteRoutes(): { writes: number; deletes: number } {
    const api = this.routeApi();
    if (this.bpf === undefined) return { writes: 0, deletes: 0 }; // iptables: kernel routes only
    if (api === undefined) {
      if (!this.warnedNoRouteApi && this.desired.length > 0) {
        this.warnedNoRouteApi = true;
        this.log.warn(
          { routes: this.desired.length },
          'this dataplane cannot program remote routes yet (NodeDataplane.setRemoteRoute is missing): computed, not written',
        );
      }
      return { writes: 0, deletes: 0 };
    }
    const diff = diffRoutes(this.remoteRoutes, this.desired);
    // New and changed routes first, then withdrawals: a moved block is never unrouted.
    for (const r of diff.set) {
      api.setRemoteRoute(r.cidr, r.nextHop, { ipip: r.ipip });
      this.remoteRoutes.set(r.cidr, r);
    }
    for (const cidr of diff.remove) {
      api.deleteRoute(cidr);
      this.remoteRoutes.delete(cidr);
    }
    const known = this.knownNodes.join(',');
    if (typeof api.setKnownNodes === 'function' && known !== this.knownNodesSet) {
      api.setKnownNodes(this.knownNodes);
      this.knownNodesSet = known;
    }
    if (diff.set.length + diff.remove.length > 0) {
      this.log.info(
        {
          set: diff.set.map((r) => `${r.cidr} via ${r.nextHop}${r.ipip ? ' (ipip)' : ''}`),
          withdrawn: diff.remove,
        },
        'remote routes',
      );
    }
    return { writes: diff.set.length, deletes: diff.remove.length };
  }

  /**
   * Kernel routes in the node's namespace for every remote route: `<cidr> via <node> dev
   * <uplink> proto 177`, with `mtu 1480` under IPIP (the node's own traffic, encapsulated
   * by tortie_to_uplink). Diffed against the routes with tortie's protocol that are
   * present; other routes are never touched. Skipped while the uplink is unknown.
   */
  private async programKernelRoutes(
    links: ReadonlyMap<string, number>,
  ): Promise<{ writes: number; deletes: number }> {
    if (this.address === undefined) return { writes: 0, deletes: 0 };
    const ip = this.address.split('/')[0]!;
    const ifindex =
      this.uplink?.ip === ip
        ? this.uplink.ifindex
        : await findAddressInterface(this.config.nodeNetns, ip);
    const dev = [...links].find(([, i]) => i === ifindex)?.[0];
    // BGP: BIRD's kernel protocol installs the remote routes; tortie's own (left by static
    // routing) are withdrawn.
    const wanted = this.bird === undefined ? this.desired : [];
    if (dev === undefined) {
      if (wanted.length === 0) return { writes: 0, deletes: 0 };
      throw new Error(`no interface holds the node address ${ip}: no kernel routes`);
    }
    let desiredKernel = desiredKernelRoutes(wanted, dev, undefined, ip);
    if (this.iptables !== undefined) desiredKernel = await this.iptablesEncap(wanted, dev, ip);
    const present = await listKernelRoutes(this.config.nodeNetns, TORTIE_ROUTE_PROTO);
    const lines = diffKernelRoutes(present, desiredKernel);
    if (lines.length === 0) return { writes: 0, deletes: 0 };
    await applyKernelRoutes(this.config.nodeNetns, lines, dev);
    this.log.info({ lines }, 'kernel routes');
    const removed = lines.filter((l) => l.startsWith('route del')).length;
    return { writes: lines.length - removed, deletes: removed };
  }

  /**
   * iptables mode: the kernel routes. Plain (`Never`) routes go out of the uplink as in BPF
   * mode; VXLAN routes go `via <peer VTEP> dev vxlan.tortie onlink` (./vxlan.ts) after the
   * device, its FDB entries and neighbours are in place; IPIP routes are refused (the
   * kernel here has no ipip module, and iptables mode has no BPF encapsulation): left
   * out, logged, and reported in /status as routeError.
   */
  private async iptablesEncap(
    wanted: readonly DesiredRoute[],
    dev: string,
    ip: string,
  ): Promise<KernelRoute[]> {
    const ipip = wanted.filter((r) => r.ipip);
    const refused =
      ipip.length === 0
        ? undefined
        : `dataplane iptables cannot encapsulate IPIP (no ipip module, no BPF): ` +
          `${ipip.length} route(s) left out (${ipip
            .slice(0, 3)
            .map((r) => r.cidr)
            .join(', ')}${ipip.length > 3 ? ', …' : ''}); use ipipMode Never with ` +
          `vxlanMode Always, or Never`;
    if (refused !== this.encapError && refused !== undefined)
      this.log.error({ err: refused }, 'IP pool encapsulation refused');
    this.encapError = refused;
    const usable = wanted.filter((r) => !r.ipip);
    const vx = usable.filter((r) => r.vxlan);
    if (vx.length > 0) {
      this.vxlan ??= new VxlanDevice(this.config.nodeNetns, ip, dev);
      if (await this.vxlan.ensureDevice())
        this.log.info({ device: VXLAN_DEVICE, local: ip }, 'VXLAN device created');
      const n = await this.vxlan.syncPeers(vx.map((r) => ({ ip: r.nextHop })));
      if (n > 0)
        this.log.info(
          { peers: [...new Set(vx.map((r) => r.nextHop))] },
          'VXLAN FDB and neighbours',
        );
    }
    return usable.map((r) =>
      r.vxlan
        ? {
            cidr: r.cidr,
            via: r.nextHop,
            dev: VXLAN_DEVICE,
            mtu: VXLAN_MTU,
            src: ip,
            onlink: true,
          }
        : { cidr: r.cidr, via: r.nextHop, dev, mtu: undefined, src: ip },
    );
  }

  /**
   * BGP routing: renders BIRD's configuration from the store (./../bgp/render.ts) and
   * makes BIRD run it — started when none runs (also after it died), reloaded when the
   * text changed, left alone otherwise. A failure is logged and retried; it holds back
   * nothing else (the route map keeps following what the kernel has).
   */
  private async programBird(
    inputs: RouteInputs,
    links: ReadonlyMap<string, number>,
  ): Promise<void> {
    const bird = this.bird!;
    const c = this.config;
    try {
      const stored = this.model.list('Node');
      const nodes = stored.map((n) => ({
        name: n.metadata.name,
        address:
          n.metadata.name === c.nodeName
            ? (n.spec.bgp?.ipv4Address ?? this.address)
            : n.spec.bgp?.ipv4Address,
        asNumber: n.spec.bgp?.asNumber,
        labels: n.metadata.labels ?? {},
        routeReflectorClusterID: n.spec.bgp?.routeReflectorClusterID,
      }));
      if (!nodes.some((n) => n.name === c.nodeName))
        nodes.push({
          name: c.nodeName,
          address: this.address,
          asNumber: c.asNumber,
          labels: {},
          routeReflectorClusterID: undefined,
        });
      const hold = c.bgpHoldTimeSeconds;
      const timers: BgpTimers | undefined =
        hold === undefined
          ? undefined
          : {
              holdTime: hold,
              startDelayTime: 1,
              connectRetryTime: Math.max(1, Math.floor(hold / 3)),
              errorWaitTime: [1, hold],
            };
      const uplink =
        this.uplink === undefined
          ? undefined
          : [...links].find(([, i]) => i === this.uplink!.ifindex)?.[0];
      const rendered = renderBird({
        self: c.nodeName,
        nodes,
        config: this.model.get('BGPConfiguration', 'default')?.spec,
        nodeConfig: this.model.get('BGPConfiguration', `node.${c.nodeName}`)?.spec,
        peers: this.model.list('BGPPeer').map((p) => ({ name: p.metadata.name, spec: p.spec })),
        pools: inputs.pools,
        blocks: inputs.blocks,
        uplink,
        logFile: bird.paths.log,
        timers,
      });
      if (rendered.problems.join('\n') !== this.bgpProblems.join('\n'))
        for (const p of rendered.problems) this.log.error({ problem: p }, 'BGP peer left out');
      this.bgpProblems = [...rendered.problems];
      const result = await bird.apply(rendered.text);
      if (result !== 'unchanged') {
        this.log.info(
          {
            result,
            birdPid: bird.pid(),
            config: bird.paths.conf,
            peers: rendered.peers.map((p) => p.name),
            originated: rendered.originated,
          },
          result === 'started' ? 'BIRD started' : 'BIRD reconfigured',
        );
        this.birdGoneLogged = false;
        void this.pollBgp();
      }
      this.bgpError = undefined;
    } catch (e) {
      const msg = (e as Error).message;
      if (msg !== this.bgpError)
        this.log.error({ err: msg }, 'BIRD configuration failed (retried)');
      this.bgpError = msg;
      this.routeErrors++;
      this.later(2000, () => this.debouncer.trigger());
    }
  }

  /**
   * BGP routing, every second: the learned routes (a change triggers a reconcile, which
   * refills the route map), BIRD's sessions (for /status and the heartbeat), and whether
   * BIRD still runs (if not, a reconcile starts it again).
   */
  private async pollBgp(): Promise<void> {
    const bird = this.bird;
    if (bird === undefined || this.stopped) return;
    if (this.bgpPolling) {
      this.bgpRepoll = true;
      return;
    }
    this.bgpPolling = true;
    try {
      const learned = await listKernelRoutes(this.config.nodeNetns, BIRD_ROUTE_PROTO);
      const key = JSON.stringify(learned);
      if (key !== this.learnedKey && this.programmedOnce) {
        this.learnedKey = key;
        this.debouncer.trigger();
      }
      this.sessions = await bird.sessions();
      if (bird.pid() === undefined && this.programmedOnce) {
        if (!this.birdGoneLogged)
          this.log.warn({ config: bird.paths.conf }, 'BIRD is not running: starting it again');
        this.birdGoneLogged = true;
        this.debouncer.trigger();
      }
    } catch (e) {
      this.log.debug({ err: (e as Error).message }, 'BGP poll failed');
    } finally {
      this.bgpPolling = false;
      // A change seen while this read ran gets one more read.
      if (this.bgpRepoll && !this.stopped) {
        this.bgpRepoll = false;
        this.pollBgpSoon();
      }
    }
  }

  /** BGP routing: BIRD's state for /status. */
  private bgpStatus(): BgpStatus | undefined {
    const bird = this.bird;
    if (bird === undefined) return undefined;
    return {
      routing: 'bgp',
      birdPid: bird.pid(),
      configFile: bird.paths.conf,
      socket: bird.paths.ctl,
      sessions: this.sessions,
      learned: this.learned,
      error: this.bgpError,
      problems: this.bgpProblems,
    };
  }

  /**
   * The uplink: the interface of the node namespace holding the node's underlay address
   * gets the uplink programs (decapsulation, the node's own traffic to remote pods), and
   * the dataplane learns the address and the interface. Done at the first reconcile (a
   * restarted agent replaces the previous agent's programs) and again when the interface
   * changes. A failure is reported and retried; it does not hold back policy.
   */
  private async programUplink(liveIfindexes: ReadonlySet<number>): Promise<void> {
    if (this.bpf === undefined) return; // iptables mode: no uplink programs
    const dp = this.bpf as unknown as Partial<UplinkApi>;
    if (typeof dp.setNodeConfig !== 'function' || typeof dp.attachUplink !== 'function') return;
    if (this.address === undefined) return;
    const ip = this.address.split('/')[0]!;
    if (this.uplink?.ip === ip && liveIfindexes.has(this.uplink.ifindex)) return;
    try {
      const ifindex = await findAddressInterface(this.config.nodeNetns, ip);
      if (ifindex === undefined) throw new Error(`no interface holds the node address ${ip}`);
      dp.attachUplink.call(this.dataplane, ifindex);
      dp.setNodeConfig.call(this.dataplane, { underlayIp: ip, uplinkIfindex: ifindex });
      this.uplink = { ip, ifindex };
      this.uplinkError = undefined;
      this.log.info({ underlayIp: ip, uplinkIfindex: ifindex }, 'uplink programs attached');
    } catch (e) {
      const msg = (e as Error).message;
      if (msg !== this.uplinkError)
        this.log.error({ err: msg }, 'cannot set up the uplink (retried)');
      this.uplinkError = msg;
    }
  }

  /**
   * The node's own addresses as host routes of the BPF dataplane: how tortie_from_pod
   * tells a pod's packet for the node (defaultEndpointToHostAction) from one it routes.
   * Read every reconcile (an address can come and go under the agent); the map is
   * written only when the list changed. A failure is logged and retried; the previous
   * list stays in force.
   */
  private async programHostAddresses(): Promise<void> {
    if (this.bpf === undefined) return; // iptables mode: INPUT sees the node's addresses itself
    try {
      const ips = await listNodeAddresses(this.config.nodeNetns);
      const key = ips.join(',');
      if (key === this.hostAddressesKey) return;
      const r = this.bpf.setHostAddresses(ips);
      this.hostAddressesKey = key;
      if (r.added + r.removed > 0) this.log.info({ addresses: ips }, 'host addresses programmed');
    } catch (e) {
      this.log.error({ err: (e as Error).message }, 'cannot program the host addresses (retried)');
    }
  }

  /**
   * natOutgoing (./nat.ts): keeps the TORTIE-NAT-OUTGOING chain of the node's `nat` table
   * equal to the pools. Read and diffed when the pools changed, and at most every 10 s
   * otherwise (someone may have flushed it). A failure is logged, counted and retried; it
   * does not hold back policy or routes.
   */
  private async programNat(): Promise<void> {
    const rules = natRules(
      this.model.list('IPPool').map((p) => ({
        name: p.metadata.name,
        cidr: p.spec.cidr,
        natOutgoing: p.spec.natOutgoing,
      })),
    );
    const key = rules.join('\n');
    const last = this.natSynced;
    if (last !== undefined && last.rules === key && Date.now() - last.at < 10_000) return;
    try {
      const plan = await syncNat(this.config.nodeNetns, rules);
      this.natSynced = { rules: key, at: Date.now() };
      this.natError = undefined;
      if (plan !== undefined) this.log.info({ rules }, 'natOutgoing chain written');
    } catch (e) {
      const msg = (e as Error).message;
      this.natSynced = undefined;
      this.natErrors++;
      if (rules.length === 0 && /ENOENT|No such file|not found|could not be started/i.test(msg)) {
        // No iptables on this node and no pool wants NAT: nothing to do.
        this.natSynced = { rules: key, at: Date.now() };
        return;
      }
      if (msg !== this.natError) this.log.error({ err: msg }, 'natOutgoing chain failed (retried)');
      this.natError = msg;
      this.later(2000, () => this.debouncer.trigger());
    }
  }

  /**
   * The rule table for `tortie monitor` (GET /rules): every rule id this agent's compiler
   * has handed out → its rule ref. Ids are this agent's: a restarted agent numbers anew,
   * so a reader keys its cache by pid and startedAt.
   */
  ruleTable(): { node: string; pid: number; startedAt: string; rules: Record<string, string> } {
    const rules: Record<string, string> = {};
    for (const [id, ref] of this.compiled?.rules ?? []) rules[String(id)] = ref;
    return {
      node: this.config.nodeName,
      pid: process.pid,
      startedAt: this.startedAt.toISOString(),
      rules,
    };
  }

  /** What a previous agent left in the routes map: local /32s and remote routes. */
  private seedRoutes(): void {
    for (const [k, v] of this.dataplane.dp.views.routes.entries()) {
      const ip = u32ToIp(k.addr);
      if (v.type === RouteType.LOCAL_EP && k.prefixlen === 32) this.localRoutes.set(ip, v.ifindex);
      else if (v.type === RouteType.REMOTE_BLOCK) {
        const cidr = `${ip}/${k.prefixlen}`;
        this.remoteRoutes.set(cidr, {
          cidr,
          node: '',
          nextHop: u32ToIp(v.next_hop),
          ipip: (v.flags & RouteFlags.IPIP) !== 0,
          vxlan: (v.flags & RouteFlags.VXLAN) !== 0,
        });
      }
    }
  }

  // --- operations ---------------------------------------------------------------------

  private healthz(): Probe {
    if (this.stopped) return { ok: false, detail: 'stopped' };
    if (
      this.reconcileStarted !== undefined &&
      Date.now() - this.reconcileStarted > STUCK_RECONCILE_MS
    ) {
      return {
        ok: false,
        detail: `a reconcile has been running for ${Math.round((Date.now() - this.reconcileStarted) / 1000)} s`,
      };
    }
    return { ok: true, detail: 'live' };
  }

  private readyz(): Probe {
    if (!this.everSynced) return { ok: false, detail: 'not synced with etcd yet' };
    const etcd = this.etcdOk && this.watchConnected;
    if (etcd) return { ok: true, detail: 'synced, etcd reachable' };
    if (this.programmedOnce)
      return { ok: true, detail: 'etcd unreachable; dataplane programmed (last state kept)' };
    return { ok: false, detail: 'etcd unreachable and nothing programmed yet' };
  }

  private drops(): Record<string, number> {
    const out: Record<string, number> = {};
    try {
      for (const c of this.dataplane.counters()) {
        if (c.dropped) out[c.reason] = (out[c.reason] ?? 0) + Number(c.packets);
      }
    } catch {
      /* closed */
    }
    return out;
  }

  private nodeStatus(): NodeStatus {
    const last = this.last;
    return {
      node: this.config.nodeName,
      ...(this.address === undefined ? {} : { ipv4Address: this.address }),
      pid: process.pid,
      startedAt: this.startedAt.toISOString(),
      pinRoot: this.config.pinRoot,
      heartbeatAt: new Date().toISOString(),
      ...(this.ops ? { healthUrl: this.ops.url } : {}),
      synced: this.everSynced,
      ready: this.readyz().ok,
      endpoints: {
        local: this.locals.length + this.unresolved.length,
        programmed: this.locals.filter((l) => this.endpointRev(l) !== undefined).length,
        unresolved: this.unresolved.length,
      },
      ...(last
        ? {
            lastReconcile: {
              at: last.at.toISOString(),
              ok: last.ok,
              durationMs: Math.round(last.durationMs * 10) / 10,
              ...(last.error ? { error: last.error } : {}),
            },
          }
        : {}),
      routes: this.desired.length,
      drops: this.drops(),
      ...this.conntrackField(),
      ...(this.bird === undefined ? {} : { bgp: { sessions: this.sessions } }),
    };
  }

  status(): AgentStatus {
    return {
      node: this.config.nodeName,
      ipv4Address: this.address,
      synced: this.everSynced,
      ready: this.readyz().ok,
      etcdConnected: this.etcdOk && this.watchConnected,
      healthUrl: this.ops?.url,
      lease: this.reporter?.connectedLease,
      programmedRevision: String(this.programmedRev),
      endpoints: this.locals.map((l) => {
        return {
          key: l.endpoint.key,
          interfaceName: l.interfaceName,
          ifindex: l.ifindex,
          id: l.id,
          ip: l.endpoint.ip,
          policyRev: this.endpointRev(l) ?? 0,
          revision: l.wep.metadata.resourceVersion ?? '0',
        };
      }),
      unresolved: this.unresolved,
      routes: this.desired,
      remoteRoutesProgrammed: this.routeApi() !== undefined,
      routeError: this.routeError ?? this.encapError,
      uplink: this.uplinkError !== undefined ? { error: this.uplinkError } : this.uplink,
      knownNodes: this.knownNodes,
      liveNodes: [...(this.heartbeats?.snapshot.keys() ?? [])]
        .map((k) => k.slice(nodeStatusPrefix(this.ds?.prefix ?? '').length))
        .sort(),
      nat: {
        rules: this.natSynced?.rules ? this.natSynced.rules.split('\n').length : 0,
        error: this.natError,
      },
      lastReconcile: this.last,
      reconciles: { ok: this.okCount, failed: this.failCount },
      problems: this.problems,
      drops: this.drops(),
      ...this.conntrackField(),
      ...(this.bird === undefined ? {} : { bgp: this.bgpStatus()! }),
    };
  }

  metrics(): string {
    const families: MetricFamily[] = [];
    const counters = (() => {
      try {
        return this.dataplane.counters();
      } catch {
        return [];
      }
    })();
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
    families.push({
      name: 'tortie_dataplane_packets_total',
      help: 'Packets judged by the BPF programs, by reason (PASS_* allowed, DROP_* dropped) and direction.',
      type: 'counter',
      samples: rows.map((r) => ({
        labels: { reason: r.reason, dir: r.dir, verdict: r.dropped ? 'drop' : 'allow' },
        value: r.packets,
      })),
    });
    families.push({
      name: 'tortie_dataplane_bytes_total',
      help: 'Bytes judged by the BPF programs, by reason and direction.',
      type: 'counter',
      samples: rows.map((r) => ({
        labels: { reason: r.reason, dir: r.dir, verdict: r.dropped ? 'drop' : 'allow' },
        value: r.bytes,
      })),
    });

    if (this.bpf !== undefined) this.bpfMapMetrics(families);
    else this.iptablesMetrics(families);
    families.push({
      name: 'tortie_agent_endpoints',
      help: 'Workload endpoints: local to this node and programmed, local without a usable interface, and in the whole cluster.',
      type: 'gauge',
      samples: [
        { labels: { state: 'programmed' }, value: this.locals.length },
        { labels: { state: 'unresolved' }, value: this.unresolved.length },
        { labels: { state: 'cluster' }, value: this.model.list('WorkloadEndpoint').length },
      ],
    });
    families.push({
      name: 'tortie_agent_routes',
      help: 'Routes this agent keeps: local endpoint /32s, and remote blocks/addresses wanted.',
      type: 'gauge',
      samples: [
        { labels: { type: 'local' }, value: this.localRoutes.size },
        { labels: { type: 'remote' }, value: this.desired.length },
      ],
    });
    families.push({
      name: 'tortie_agent_reconciles_total',
      help: 'Reconciles by result.',
      type: 'counter',
      samples: [
        { labels: { result: 'ok' }, value: this.okCount },
        { labels: { result: 'failed' }, value: this.failCount },
      ],
    });
    families.push({
      name: 'tortie_agent_route_errors_total',
      help: 'Failures to program remote routes (local policy is not held back by them).',
      type: 'counter',
      samples: [{ value: this.routeErrors }],
    });
    families.push({
      name: 'tortie_agent_nat_errors_total',
      help: 'Failures to write the natOutgoing chain (TORTIE-NAT-OUTGOING) in the node namespace.',
      type: 'counter',
      samples: [{ value: this.natErrors }],
    });
    families.push({
      name: 'tortie_agent_last_reconcile_timestamp_seconds',
      help: 'When the last reconcile finished (Unix time).',
      type: 'gauge',
      samples: [{ value: this.last ? this.last.at.getTime() / 1000 : 0 }],
    });
    families.push({
      name: 'tortie_agent_model_problems',
      help: 'Stored resources left out of the policy model because they do not convert.',
      type: 'gauge',
      samples: [{ value: this.problems.length }],
    });
    families.push({
      name: 'tortie_agent_up',
      help: 'State of the agent: synced with etcd at least once, etcd reachable now, ready.',
      type: 'gauge',
      samples: [
        { labels: { what: 'synced' }, value: this.everSynced ? 1 : 0 },
        { labels: { what: 'etcd' }, value: this.etcdOk && this.watchConnected ? 1 : 0 },
        { labels: { what: 'ready' }, value: this.readyz().ok ? 1 : 0 },
      ],
    });
    return renderMetrics(families, [
      {
        name: 'tortie_agent_reconcile_duration_seconds',
        help: 'Time from the start of a reconcile to the maps written.',
        histogram: this.histogram,
      },
      ...(this.iptables === undefined
        ? []
        : [
            {
              name: 'tortie_iptables_program_duration_seconds',
              help: 'Time to write a policy change with ipset restore and iptables-restore --noflush.',
              histogram: this.iptHistogram,
            },
          ]),
    ]);
  }

  /** BPF mode: map occupancy and conntrack entries. */
  private bpfMapMetrics(families: MetricFamily[]): void {
    const maps = this.dataplane.dp.maps;
    const occupancy: { map: string; entries: number; capacity: number }[] = [];
    const count = (role: 'ifaces' | 'routes' | 'frags') => {
      try {
        return maps[role].count();
      } catch {
        return 0;
      }
    };
    const cap = (role: keyof typeof maps) => {
      try {
        return maps[role].info().maxEntries;
      } catch {
        return 0;
      }
    };
    const ct = this.conntrack();
    for (const role of ['ifaces', 'routes', 'ct', 'frags'] as const) {
      occupancy.push({
        map: maps[role].info().name,
        entries: role === 'ct' ? (ct?.entries ?? 0) : count(role),
        capacity: cap(role),
      });
    }
    const pol = { polIp32: 0, polAddr: 0, polPort: 0, polL4: 0, polDflt: 0 };
    if (this.compiled) {
      for (const e of this.compiled.addr.values()) pol[e.bits === 32 ? 'polIp32' : 'polAddr']++;
      for (const e of this.compiled.l4.values())
        pol[e.bits === 24 ? 'polPort' : e.bits === 0 ? 'polDflt' : 'polL4']++;
    }
    if (this.pinned) {
      for (const role of Object.keys(pol) as (keyof typeof pol)[])
        pol[role] += this.pinned.keys[role].length;
    }
    for (const role of Object.keys(pol) as (keyof typeof pol)[]) {
      occupancy.push({ map: maps[role].info().name, entries: pol[role], capacity: cap(role) });
    }
    families.push({
      name: 'tortie_bpf_map_entries',
      help: 'Entries in each BPF map (policy maps: as compiled).',
      type: 'gauge',
      samples: occupancy.map((o) => ({ labels: { map: o.map }, value: o.entries })),
    });
    families.push({
      name: 'tortie_bpf_map_capacity',
      help: 'max_entries of each BPF map.',
      type: 'gauge',
      samples: occupancy.map((o) => ({ labels: { map: o.map }, value: o.capacity })),
    });
    families.push({
      name: 'tortie_bpf_map_pressure_ratio',
      help: 'Entries over capacity of each BPF map (1 = full: writes fail, policy fails closed).',
      type: 'gauge',
      samples: occupancy.map((o) => ({
        labels: { map: o.map },
        value: o.capacity === 0 ? 0 : o.entries / o.capacity,
      })),
    });
    if (ct !== undefined) families.push(...conntrackFamilies(ct, this.endpointNames()));
  }

  /** tortie_ct's fill and who fills it; undefined without BPF maps (or once closed). */
  private conntrack(): ConntrackPressure | undefined {
    if (this.bpf === undefined) return undefined;
    try {
      return this.dataplane.conntrack();
    } catch {
      return undefined;
    }
  }

  /** Endpoint id → `namespace/name` of the endpoints this agent programs. */
  private endpointNames(): Map<number, string> {
    return new Map(this.locals.map((l) => [l.id, l.endpoint.key]));
  }

  private conntrackField(): { conntrack?: ConntrackSummary } {
    const c = this.conntrackSummary();
    return c === undefined ? {} : { conntrack: c };
  }

  private conntrackSummary(): ConntrackSummary | undefined {
    const ct = this.conntrack();
    return ct === undefined ? undefined : conntrackSummary(ct, this.endpointNames());
  }

  /** iptables mode: chains, sets and write errors. */
  private iptablesMetrics(families: MetricFamily[]): void {
    families.push({
      name: 'tortie_iptables_chains',
      help: 'tortie chains in the filter table of the node namespace.',
      type: 'gauge',
      samples: [{ value: this.iptChains }],
    });
    families.push({
      name: 'tortie_iptables_ipsets',
      help: 'tortie ipsets in the node namespace.',
      type: 'gauge',
      samples: [{ value: this.iptSets }],
    });
    families.push({
      name: 'tortie_iptables_errors_total',
      help: 'Failed ipset/iptables-restore writes (the next reconcile re-reads the kernel).',
      type: 'counter',
      samples: [{ value: this.iptErrors }],
    });
  }
}
