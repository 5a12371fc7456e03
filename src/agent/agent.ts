/**
 * The per-node agent: keeps the node's dataplane equal to the store.
 *
 *   etcd ──watch──► ClusterModel ─┐
 *   ipam blocks ──follow──────────┼─► reconcile (debounced) ─► Snapshot ─► managers, in order
 *   node heartbeats ──follow──────┘                             ─► endpoint status, heartbeat
 *
 * The agent owns the lifecycle, the store sync, the snapshot and the revision waits; what
 * is programmed is the managers' (./manager.ts, ./managers/): BPF policy or iptables
 * policy, local and remote routes, the uplink, BIRD, kernel routes, natOutgoing — chosen
 * once from the mode. /status and /metrics are their parts composed.
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
import {
  ensureClusterInformation,
  findLegacyLayout,
  migrateHint,
  type KindName,
  type ResourceWatcher,
  type WatchEvent,
} from '../datastore/index.js';
import { NodeDataplane } from '../dataplane/node-dataplane.js';
import { IptablesDataplane } from '../iptables/index.js';
import { IpamKeys } from '../ipam/keys.js';
import { affinityNode, allocationNode, ordinalAddress, parseBlock } from '../ipam/records.js';
import { loadXdp, type DataplaneConfig, type XdpDataplane } from '../loader/index.js';
import { xdpPort } from './managers/xdp.js';
import type { AgentConfig, LogLevel } from './config.js';
import {
  capabilitiesOf,
  connectDatastore,
  describeDatastore,
  type AgentStore,
  type DatastoreCapabilities,
} from './datastore.js';
import type { ConntrackSummary } from './conntrack.js';
import { Debouncer } from './debounce.js';
import {
  liveSettings,
  orderLayers,
  readConfigLayers,
  startingConfig,
  storeSettings,
  type ConfigLayer,
  type ConfigReport,
  type StoreSettings,
} from './felix-config.js';
import {
  EndpointIds,
  resolveLocalEndpoints,
  type LocalEndpointInfo,
  type UnresolvedEndpoint,
} from './endpoints.js';
import { PrefixFollower } from './follow.js';
import { startOpsServer, type OpsServer, type Probe } from './http.js';
import { StatusReporter } from './reporter.js';
import { nodeAddress, nodeNetns, type NodeNetns } from './links.js';
import { createLogger } from './log.js';
import {
  newPass,
  type BgpStatus,
  type Manager,
  type ManagerContext,
  type Snapshot,
  type StatusPart,
  type Tally,
  type XdpStatus,
} from './manager.js';
import type { HostEndpointStatus } from './managers/host-endpoints.js';
import { collectMetrics, mergeStatus, metricsErrorsFamily } from './compose.js';
import { chooseManagers, type Dataplane, type ManagerSet } from './managers/index.js';
import { Histogram, RECONCILE_BUCKETS, renderMetrics, type MetricFamily } from './metrics.js';
import { buildWorld, ClusterModel, WATCHED_KINDS, type ModelProblem } from './model.js';
import { RevisionWaits } from './revision-waits.js';
import type { DesiredRoute, RouteBlock, RouteInputs } from './routes.js';
import {
  endpointStatusKey,
  heartbeatFresh,
  nodeStatusPrefix,
  type EndpointStatus,
  type NodeStatus,
} from './status.js';
import { VXLAN_PORT } from './vxlan.js';
import { packageVersion } from '../util/package-root.js';

export type { BgpStatus } from './manager.js';

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
  /**
   * Per kind, the highest revision of it the last successful reconciles programmed. On the
   * Kubernetes datastore revisions are not ordered across kinds: compare these, by kind.
   */
  readonly programmedRevisions: Readonly<Record<string, string>>;
  /**
   * 'global' (etcd): programmedRevision covers every kind. 'per-kind' (Kubernetes): only
   * programmedRevisions[kind] says whether a change of that kind is programmed.
   */
  readonly revisionOrder: 'global' | 'per-kind';
  /** etcd or kubernetes. */
  readonly datastoreType: string;
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
  /** BPF mode: the host endpoint judging the uplink and the failsafe ports in force. */
  readonly hostEndpoint?: HostEndpointStatus;
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
  /** The uplink's XDP deny list (BPF dataplane only). */
  readonly xdp?: XdpStatus;
  /** Only when a part of this status could not be read: part → why (docs/agent.md). */
  readonly errors?: Readonly<Record<string, string>>;
  /**
   * FelixConfiguration and AgentConfiguration as this agent takes them: applied, waiting
   * for a restart, overridden locally, not implemented, unusable (./felix-config.ts).
   */
  readonly config: ConfigReport;
}

/** Read deadline of the configuration objects at start (etcd down: start without them). */
const START_CONFIG_READ_MS = 2000;

export class Agent {
  readonly log: Logger;
  private readonly model = new ClusterModel();
  private readonly endpointIds: EndpointIds;
  private readonly debouncer: Debouncer;
  private readonly histogram = new Histogram(RECONCILE_BUCKETS);
  private readonly startedAt = new Date();
  private readonly netns: NodeNetns;
  private readonly set: ManagerSet;
  private readonly managers: readonly Manager[];
  private readonly tally: Tally = { routeErrors: 0 };
  private readonly revisions: RevisionWaits;
  private ds: AgentStore | undefined;
  private readonly caps: DatastoreCapabilities;
  /** How the store is named in logs: "etcd" or "the API server". */
  private readonly storeName: string;
  private watcher: ResourceWatcher | undefined;
  private blocks: PrefixFollower | undefined;
  private heartbeats: PrefixFollower | undefined;
  private reporter: StatusReporter | undefined;
  private ops: OpsServer | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private retryTimers = new Set<NodeJS.Timeout>();
  private resourcesSynced = false;
  private everSynced = false;
  private programmedOnce = false;
  private watchConnected = false;
  private etcdOk = false;
  private stopped = false;
  private address: string | undefined;
  /** Why the node address could not be detected (undefined: given, found, or none there). */
  private addressProblem: string | undefined;
  private locals: LocalEndpointInfo[] = [];
  /** The blocks as the routes last saw them (routeBlocks), to reconcile on their changes only. */
  private routeBlocksSeen: string | undefined;
  /** The next reconcile runs every manager, not only the endpoints' (see reconcile). */
  private fullPassDue = true;
  /** The route inputs of the last pass (an endpoint pass reuses them). */
  private lastRoutes: RouteInputs | undefined;
  /** CNI ADDs waiting for their endpoint (waitForEndpoint): told after every reconcile. */
  private readonly endpointWaits = new Set<() => void>();
  private unresolved: UnresolvedEndpoint[] = [];
  private problems: ModelProblem[] = [];
  private aliveNodes = '';
  private reconcileStarted: number | undefined;
  private last: ReconcileRecord | undefined;
  private okCount = 0;
  private failCount = 0;
  private unresolvedShown = '';
  /** Parts of /metrics or the heartbeat that failed, as last logged (part → message). */
  private readonly partErrors = new Map<string, string>();
  /** The local settings (flags, env, file; defaults) the datastore's are weighed against. */
  private baseline: AgentConfig;
  /** What the datastore's configuration means for this agent now. */
  private configReport: ConfigReport;
  private configShown = '';

  private constructor(
    readonly config: AgentConfig,
    dataplane: Dataplane,
    log: Logger,
  ) {
    this.log = log;
    this.baseline = config;
    this.configReport = liveSettings(config, config, storeSettings([])).report;
    this.bpf = dataplane.kind === 'bpf' ? dataplane.dp : undefined;
    this.iptables = dataplane.kind === 'iptables' ? dataplane.ipt : undefined;
    this.caps = capabilitiesOf(config.datastoreType);
    this.storeName = config.datastoreType === 'kubernetes' ? 'the API server' : 'etcd';
    this.revisions = new RevisionWaits(config.nodeName, this.caps.globalRevisions);
    this.netns = nodeNetns(config.nodeNetns);
    const ctx: ManagerContext = {
      node: config.nodeName,
      log,
      tally: this.tally,
      trigger: () => this.triggerFull(),
      programmed: () => this.programmedOnce,
    };
    this.set = chooseManagers(config, dataplane, ctx, this.netns);
    this.managers = this.set.managers;
    this.endpointIds = new EndpointIds(new Map(this.set.endpointIdSeed));
    this.debouncer = new Debouncer(() => this.reconcile(), {
      quietMs: config.debounceMs,
      maxDelayMs: config.maxDelayMs,
      // A change that finds the agent idle is reconciled at once; a whole etcd
      // transaction is delivered before that run starts (./debounce.ts says why).
      leading: true,
      onError: (e) => this.log.error({ err: (e as Error).message }, 'reconcile crashed'),
    });
  }

  private readonly bpf: NodeDataplane | undefined;
  /** The iptables dataplane (`dataplane: iptables`); undefined in BPF mode. */
  readonly iptables: IptablesDataplane | undefined;

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
  static async start(local: AgentConfig, options: AgentOptions = {}): Promise<Agent> {
    const log = options.log ?? createLogger(local.nodeName, local.logLevel);
    // A caller's logger keeps its own level unless the level was given locally.
    const baseline: AgentConfig =
      options.log !== undefined && local.localSettings.logLevel === undefined
        ? { ...local, logLevel: options.log.level as LogLevel }
        : local;
    const stored = await readStartConfig(baseline, log);
    const config = stored === undefined ? baseline : startingConfig(baseline, stored);
    if (log.level !== config.logLevel) log.level = config.logLevel;
    const made = await Agent.open(config, options, log);
    made.baseline = baseline;
    return made;
  }

  private static async open(
    config: AgentConfig,
    options: AgentOptions,
    log: Logger,
  ): Promise<Agent> {
    if (config.dataplane === 'iptables') {
      // No BPF object: chains and ipsets in the node's namespace, a previous run's adopted.
      const ipt = await IptablesDataplane.open({
        ...(config.nodeNetns === undefined ? {} : { netns: config.nodeNetns }),
        allowIPIPPacketsFromWorkloads: config.allowIPIPPacketsFromWorkloads,
        allowVXLANPacketsFromWorkloads: config.allowVXLANPacketsFromWorkloads,
        vxlanPort: VXLAN_PORT,
        endpointToHost: config.defaultEndpointToHostAction,
      });
      const agent = new Agent(config, { kind: 'iptables', ipt }, log);
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
        ...(config.traceVerdicts ? { traceVerdicts: true } : {}),
        ...options.dataplane,
        endpointToHostAction: config.defaultEndpointToHostAction,
      },
    });
    let xdp: XdpDataplane;
    try {
      // On the same pins as the tc programs: a restart adopts the deny list they left.
      xdp = loadXdp({
        pinRoot: config.pinRoot,
        config: { dropEvents: options.dataplane?.dropEvents !== false },
      });
    } catch (e) {
      dataplane.close();
      throw e;
    }
    const release = (): void => {
      xdp.close();
      dataplane.close();
    };
    let agent: Agent | undefined;
    try {
      agent = new Agent(
        config,
        {
          kind: 'bpf',
          dp: dataplane,
          xdp: { port: xdpPort(xdp, config.nodeNetns), close: () => xdp.close() },
        },
        log,
      );
      await agent.begin();
      return agent;
    } catch (e) {
      if (agent === undefined) release();
      else await agent.stop().catch(() => release());
      throw e;
    }
  }

  // --- lifecycle ----------------------------------------------------------------------

  private async begin(): Promise<void> {
    const c = this.config;
    this.log.info(
      {
        ...this.set.lines.startFields,
        nodeNetns: c.nodeNetns,
        datastore: describeDatastore(c),
        adopted: this.set.adopted,
        managers: this.managers.map((m) => m.name),
      },
      this.set.lines.starting,
    );
    this.ops = await startOpsServer(c.healthHost, c.healthPort, {
      healthz: () => this.healthz(),
      readyz: () => this.readyz(),
      metrics: () => this.metrics(),
      status: () => this.status(),
      rules: () => this.ruleTable(),
    });
    this.log.info({ url: this.ops.url }, 'serving /healthz, /readyz, /metrics, /status, /rules');
    const found = await nodeAddress(c.ipv4Address, () => this.netns.detectNodeAddress());
    this.address = found.address;
    if (found.problem !== undefined) this.log.warn({ err: found.cause }, found.problem);
    // A detection that failed stays visible in /status (errors.address), with its cause.
    if (found.cause !== undefined) this.addressProblem = found.problem;
    this.ds = await connectDatastore(c, undefined, { checkCrds: false });
    const prefix = this.ds.prefix;
    this.reporter = new StatusReporter({
      etcd: this.ds.etcd,
      leases: this.caps.leases,
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
      // Every ADD and DEL changes its block (an allocation): only what the routes are
      // made of — a block's CIDR and affinity, its borrowed addresses — calls for a
      // reconcile; an allocation of the block's own node changes no route.
      onChange: () => {
        const blocks = JSON.stringify(this.routeBlocks(false));
        if (blocks === this.routeBlocksSeen) return;
        this.routeBlocksSeen = blocks;
        this.triggerFull();
      },
    });
    this.heartbeats = new PrefixFollower({
      etcd: this.ds.etcd,
      prefix: nodeStatusPrefix(prefix),
      // Lease-bound heartbeats are alive while they exist; renewed ones are read.
      keysOnly: this.caps.leases,
      log: this.log,
      onChange: (snap) => {
        const alive = [...snap.keys()].sort().join(',');
        if (alive !== this.aliveNodes) {
          this.aliveNodes = alive;
          this.triggerFull();
        }
      },
    });
    this.blocks.start();
    this.heartbeats.start();
    void this.register(0);
    void this.startWatch(0);
    this.resyncTimer = setInterval(() => this.triggerFull(), c.resyncIntervalMs);
    for (const m of this.managers) m.start?.();
  }

  /**
   * Stops following the store and releases the dataplane object. Attachments, pins and
   * the lease stay: a new agent adopts the first two, and the heartbeat lives until its
   * TTL, so a restart is invisible to other nodes. Pending revision waits reject.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.revisions.stop();
    for (const w of [...this.endpointWaits]) w();
    clearInterval(this.resyncTimer);
    for (const t of this.retryTimers) clearTimeout(t);
    await this.debouncer.stop();
    for (const m of this.managers) {
      try {
        await m.stop();
      } catch (e) {
        this.log.error({ manager: m.name, err: (e as Error).message }, 'stopping a manager failed');
      }
    }
    await Promise.all([
      this.watcher?.cancel(),
      this.blocks?.stop(),
      this.heartbeats?.stop(),
      this.reporter?.stop(),
      this.ops?.close(),
    ]);
    await this.ds?.close();
    this.set.close();
    this.log.info(this.set.lines.stopped);
  }

  /** Runs a reconcile now (after one in progress) and waits for it. */
  reconcileNow(): Promise<void> {
    this.fullPassDue = true;
    return this.debouncer.flush();
  }

  /** Resolves when no reconcile is scheduled or running. */
  idle(): Promise<void> {
    return this.debouncer.idle();
  }

  /** The store revision whose model the last successful reconcile programmed (0: none yet). */
  get programmedRevision(): bigint {
    return this.revisions.revision;
  }

  /** The revision of `kind` the last successful reconciles programmed (0: none yet). */
  programmedRevisionOf(kind: KindName): bigint {
    return this.revisions.revisionOf(kind);
  }

  /**
   * Resolves once a reconcile of a model holding every change up to store revision
   * `revision` (of the kinds the agent watches) has completed; rejects after `timeoutMs`,
   * and at once when the agent is stopped (or stops while waiting).
   *
   * With `kind`: a change of that kind at `revision` (its object's resourceVersion) is
   * programmed. On the Kubernetes datastore, where revisions are not ordered across kinds,
   * only such a wait is exact; on etcd both are.
   */
  waitForRevision(revision: string | bigint, timeoutMs = 30_000, kind?: KindName): Promise<void> {
    const want = BigInt(revision);
    // The model has it already but nothing is scheduled (a change that changed nothing).
    const inModel =
      kind === undefined || this.caps.globalRevisions
        ? BigInt(this.model.revision) >= want ||
          (kind !== undefined && (this.model.kindRevisions.get(kind) ?? 0n) >= want)
        : (this.model.kindRevisions.get(kind) ?? 0n) >= want;
    if (!this.stopped && !this.revisions.has(want, kind) && inModel) this.triggerFull();
    const what = kind === undefined ? 'store revision' : `${kind} revision`;
    return this.revisions.wait(
      want,
      timeoutMs,
      () =>
        `${this.config.nodeName}: ${what} ${want} not programmed within ${timeoutMs} ms ` +
        `(model at ${kind === undefined ? this.model.revision : String(this.model.kindRevisions.get(kind) ?? 0n)}, ` +
        `programmed ${kind === undefined ? this.revisions.revision : this.revisions.revisionOf(kind)}` +
        `${this.last?.error === undefined ? '' : `, last reconcile failed: ${this.last.error}`})`,
      kind,
    );
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
    if (ruleId === 0) return undefined;
    return this.set.policy.rules().get(ruleId) ?? this.set.xdp?.rules().get(ruleId);
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
      if (ok) this.log.info(`${this.storeName} reachable`);
      else this.log.warn(`${this.storeName} unreachable: the dataplane keeps its last state`);
    }
  }

  // --- registration -------------------------------------------------------------------

  /**
   * Writes this node's Node (address, AS number, labels), merged into what is stored;
   * first the store's ClusterInformation, if it has none (as Calico's node agent does).
   */
  private async register(attempt: number): Promise<void> {
    if (this.stopped) return;
    const ds = this.ds!;
    const c = this.config;
    const kube = c.datastoreType === 'kubernetes';
    try {
      if (await ensureClusterInformation(ds))
        this.log.info('store initialised (ClusterInformation default)');
      const existing = await ds.get('Node', c.nodeName);
      if (kube && existing === undefined) {
        // The kubelet registers the Node; the agent only annotates it (as Calico's node).
        const delay = Math.min(250 * 2 ** attempt, 5000);
        this.log.warn(
          { retryInMs: delay },
          `Node ${c.nodeName} is not in the API yet (the kubelet registers it; the agent annotates it)`,
        );
        this.later(delay, () => void this.register(attempt + 1));
        return;
      }
      const bgp = {
        ...(existing?.spec.bgp ?? {}),
        ...(this.address === undefined ? {} : { ipv4Address: this.address }),
        ...(c.asNumber === undefined ? {} : { asNumber: c.asNumber }),
      };
      const spec = {
        ...(existing?.spec ?? {}),
        ...(bgp.ipv4Address === undefined ? {} : { bgp }),
      };
      // On Kubernetes the Node's labels are the kubelet's and the cluster admin's.
      const labels = { ...(existing?.metadata.labels ?? {}), ...(kube ? {} : c.labels) };
      if (kube && Object.keys(c.labels).length > 0 && attempt === 0)
        this.log.warn(
          { labels: c.labels },
          'node labels are not written on the Kubernetes datastore: label the Node with kubectl',
        );
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
      if (!kube) void this.noteLegacyLayout();
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

  /** Says which command moves a store left in tortie's old layout (the agent would see nothing of it). */
  /**
   * CNI ADD's wait (src/cni/server.ts serves the plugin beside the agent: `tortie node
   * run` and the lab wire them), answered from this agent's own state instead of
   * its status record in the store: resolves once a reconcile has programmed the endpoint
   * (policy, attachment, route) at `revision` or later; rejects after `timeoutMs`, or when
   * the agent stops.
   */
  waitForEndpoint(request: {
    namespace: string;
    name: string;
    revision: string | undefined;
    timeoutMs: number;
  }): Promise<void> {
    const done = () => this.endpointProgrammed(request.namespace, request.name, request.revision);
    if (done()) return Promise.resolve();
    const who = `endpoint ${request.namespace}/${request.name}`;
    if (this.stopped) return Promise.reject(new Error(`${who}: the agent is stopping`));
    return new Promise((resolve, reject) => {
      const check = () => {
        const ok = done();
        if (!ok && !this.stopped) return;
        clearTimeout(timer);
        this.endpointWaits.delete(check);
        if (ok) resolve();
        else reject(new Error(`${who}: the agent of node ${this.config.nodeName} is stopping`));
      };
      const timer = setTimeout(() => {
        this.endpointWaits.delete(check);
        const l = this.localEndpoint(request.namespace, request.name);
        reject(
          new Error(
            `${who} was not programmed by the agent of node ${this.config.nodeName} within ${request.timeoutMs} ms: ` +
              (l === undefined
                ? `the agent has not programmed it (last reconcile: ${this.last?.ok === false ? `failed, ${this.last.error ?? ''}` : 'ok'})`
                : `the agent has it at revision ${l.wep.metadata.resourceVersion ?? '?'}, not yet ${request.revision ?? '?'}`),
          ),
        );
      }, request.timeoutMs);
      this.endpointWaits.add(check);
      // The watch may have brought the endpoint before this wait began (the write's answer
      // and the watch event race): its reconcile then waits out the quiet time, ~10 ms of
      // an ADD's latency. The model holding that revision already: program it now.
      if (this.modelHas(request.revision)) void this.debouncer.flush();
    });
  }

  /**
   * CNI ADD's guard in the BPF dataplane (src/cni/guard.ts): this agent's tortie_from_pod
   * and tortie_to_pod, which ADD attaches to a pod's host veth before it is up. With no
   * endpoint entry yet they drop every IP packet either way; the reconcile that programs
   * the endpoint writes the entry, and its own attach replaces them with themselves (same
   * programs, same tc slot: nothing doubled, nothing detached). Undefined in iptables mode,
   * once stopping, and for a veth in another namespace than this agent's node namespace
   * (as given: paths are compared as written): ADD then guards with the rules.
   */
  endpointPrograms(
    hostNetns: string | undefined,
  ): { fromPodFd: number; toPodFd: number } | undefined {
    if (this.bpf === undefined || this.stopped) return undefined;
    if (hostNetns !== this.config.nodeNetns) return undefined;
    const p = this.bpf.dp.programs;
    return { fromPodFd: p.fromPod.fd, toPodFd: p.toPod.fd };
  }

  /** Something beyond endpoints changed (or may have): a full pass soon. */
  private triggerFull(): void {
    this.fullPassDue = true;
    this.debouncer.trigger();
  }

  /** Whether the model has seen the store at `revision` (a resourceVersion) or later. */
  private modelHas(revision: string | undefined): boolean {
    if (revision === undefined) return false;
    try {
      return BigInt(this.model.revision) >= BigInt(revision);
    } catch {
      return false;
    }
  }

  private localEndpoint(namespace: string, name: string): LocalEndpointInfo | undefined {
    return this.locals.find((l) => l.endpoint.namespace === namespace && l.endpoint.name === name);
  }

  private endpointProgrammed(namespace: string, name: string, revision: string | undefined) {
    const l = this.localEndpoint(namespace, name);
    if (l === undefined || this.set.policy.endpointRev(l) === undefined) return false;
    if (revision === undefined) return true;
    try {
      return BigInt(l.wep.metadata.resourceVersion ?? '0') >= BigInt(revision);
    } catch {
      return false;
    }
  }

  private async noteLegacyLayout(): Promise<void> {
    try {
      const ds = this.ds!;
      const found = await findLegacyLayout(ds.etcd, ds.prefix, {
        deadline: Date.now() + ds.timeoutMs,
      });
      if (found !== undefined) this.log.warn({ kinds: found.kinds }, migrateHint(found, ds.prefix));
    } catch (e) {
      this.log.debug({ err: (e as Error).message }, 'could not look for an old-layout store');
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
          if (connected) this.triggerFull();
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
      this.triggerFull();
      return;
    }
    if (!changed || !this.resourcesSynced) return;
    // An endpoint's change is programmed by an endpoint pass (see reconcile); anything
    // else may concern every manager.
    if (ev.kind !== 'WorkloadEndpoint') this.fullPassDue = true;
    // A CNI ADD is waiting for its endpoint: program now, not after the quiet time.
    if (this.endpointWaits.size > 0) void this.debouncer.flush();
    else this.debouncer.trigger();
  }

  // --- reconcile ----------------------------------------------------------------------

  private fullySynced(): boolean {
    return this.resourcesSynced && this.blocks?.synced === true && this.heartbeats?.synced === true;
  }

  /** What one reconcile works from: the model, the node's links, the route inputs. */
  private async snapshot(
    settings: Snapshot['settings'],
    full: boolean,
  ): Promise<{ snapshot: Snapshot; unresolved: UnresolvedEndpoint[] }> {
    const built = buildWorld(this.model);
    this.reportProblems(built.problems);
    const links = await this.netns.listLinks();
    const { locals, unresolved } = resolveLocalEndpoints(
      this.config.nodeName,
      built.endpoints.values(),
      links,
      this.endpointIds,
    );
    const snapshot: Snapshot = {
      world: built.world,
      model: this.model,
      locals,
      links,
      // Made of Nodes, IPPools and blocks, whose changes all make a pass full: an endpoint
      // pass takes the last full pass's (parsing every block is the costly part).
      routes: full || this.lastRoutes === undefined ? this.routeInputs() : this.lastRoutes,
      address: this.address,
      settings,
    };
    return { snapshot, unresolved };
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
    // Only endpoints changed since the last full pass (a CNI ADD or DEL, a label): the
    // managers of endpoints (policy, local routes) are all that can have work, and a CNI
    // ADD waits on this pass. The others (remote and kernel routes, uplink, BGP, NAT) keep
    // what the last full pass gave them; any other change, a retry, the resync timer and
    // a failed pass make the next pass full.
    const full = this.fullPassDue || !this.programmedOnce;
    this.fullPassDue = false;
    const t0 = performance.now();
    this.reconcileStarted = Date.now();
    let writes = 0;
    let deletes = 0;
    try {
      const modelRev = BigInt(this.model.revision);
      const kindRevs = new Map(this.model.kindRevisions);
      const settings = this.applyStoredConfig();
      const { snapshot, unresolved } = await this.snapshot(settings, full);
      this.lastRoutes = snapshot.routes;
      if (this.stopped) return;
      const pass = newPass(snapshot);
      pass.unresolved.push(...unresolved);
      let retryMs: number | undefined;
      for (const m of this.managers) {
        if (!full && m.endpointScoped !== true) continue;
        const r = await m.reconcile(pass);
        writes += r.writes ?? 0;
        deletes += r.deletes ?? 0;
        if (r.retryMs !== undefined) retryMs = Math.min(retryMs ?? r.retryMs, r.retryMs);
        if (this.stopped) return;
      }
      if (retryMs !== undefined) this.later(retryMs, () => this.triggerFull());

      this.locals = pass.programmed;
      this.unresolved = pass.unresolved;
      this.endpointIds.retain(new Set(snapshot.locals.map((l) => l.endpoint.key)));
      if (pass.unresolved.length > 0) {
        const shown = JSON.stringify(pass.unresolved);
        if (shown !== this.unresolvedShown) {
          this.log.warn(
            { unresolved: pass.unresolved },
            'local endpoints without a usable interface (not programmed; retried every second)',
          );
        }
        this.unresolvedShown = shown;
        this.later(1000, () => this.triggerFull());
      } else {
        this.unresolvedShown = '';
      }
      if (!this.programmedOnce) {
        // Labs and scripts wait for this line: the dataplane equals the store once.
        this.log.info({ endpoints: snapshot.locals.length }, 'first sync programmed');
      }
      this.programmedOnce = true;
      this.reporter?.setEndpoints(this.endpointStatuses());
      this.record(t0, true, undefined, writes, deletes);
      this.revisions.reached(modelRev, kindRevs);
      for (const w of [...this.endpointWaits]) w();
    } catch (e) {
      this.fullPassDue = true;
      this.record(t0, false, (e as Error).message, writes, deletes);
      this.later(2000, () => this.triggerFull());
    } finally {
      this.reconcileStarted = undefined;
    }
  }

  /**
   * FelixConfiguration and AgentConfiguration as the model holds them: the live settings
   * applied now (so a revision wait covers them), the rest reported.
   */
  private applyStoredConfig(): Snapshot['settings'] {
    const layers: ConfigLayer[] = [
      ...this.model.list('FelixConfiguration').map((r) => ({
        kind: 'FelixConfiguration' as const,
        name: r.metadata.name,
        spec: (r.spec ?? {}) as Record<string, unknown>,
      })),
      ...this.model.list('AgentConfiguration').map((r) => ({
        kind: 'AgentConfiguration' as const,
        name: r.metadata.name,
        spec: (r.spec ?? {}) as Record<string, unknown>,
      })),
    ];
    const store = storeSettings(orderLayers(this.config.nodeName, layers));
    const { live, report } = liveSettings(this.baseline, this.config, store);
    if (live.logLevel !== undefined && live.logLevel !== this.log.level)
      this.log.level = live.logLevel;
    if (live.reportIntervalSeconds !== undefined)
      this.reporter?.setReportInterval(live.reportIntervalSeconds);
    this.configReport = report;
    const settings = {
      natOutgoingAddress: live.natOutgoingAddress,
      natPortRange: live.natPortRange,
      ipipMtu: live.ipipMtu,
      vxlanMtu: live.vxlanMtu,
      xdpEnabled: live.xdpEnabled,
      genericXdpEnabled: live.genericXdpEnabled,
    };
    const shown = JSON.stringify(report);
    if (shown !== this.configShown) {
      this.configShown = shown;
      this.reporter?.reportNow(); // the heartbeat carries the report (tortie node status)
      this.log.info(
        {
          sources: report.sources,
          applied: report.applied,
          restartNeeded: report.restartNeeded,
          notImplemented: report.notImplemented,
          invalid: report.invalid,
        },
        report.restartNeeded.length > 0
          ? 'configuration from the datastore (some settings take effect at the next start)'
          : 'configuration from the datastore',
      );
    }
    return settings;
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

  private endpointStatuses(): Map<string, EndpointStatus> {
    const out = new Map<string, EndpointStatus>();
    const prefix = this.ds!.prefix;
    const now = new Date().toISOString();
    for (const l of this.locals) {
      const rev = this.set.policy.endpointRev(l);
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
    // A node's routes follow its Node resource, not its agent's heartbeat: an agent that
    // is restarting, upgrading or cut off from etcd leaves a dataplane that still forwards
    // (its pins stay), so the other nodes keep routing to it. Deleting the Node (what a
    // decommission or Kubernetes' node controller does) withdraws them, as in Calico.
    const nodes = this.model.list('Node').map((n) => ({
      name: n.metadata.name,
      address: n.spec.bgp?.ipv4Address,
      alive: true,
    }));
    const blocks = this.routeBlocks(true);
    const pools = this.model.list('IPPool').map((p) => ({
      cidr: p.spec.cidr,
      ipipMode: p.spec.ipipMode,
      vxlanMode: p.spec.vxlanMode,
    }));
    return { self: this.config.nodeName, nodes, blocks, pools };
  }

  /**
   * The IPAM blocks as routes see them: CIDR, affinity and the borrowed addresses (an
   * allocation of another node than the block's). The routes (../routes.ts) and BIRD's
   * configuration (src/bgp/render.ts) skip allocations of the block's own node, so they
   * are left out here: an ADD or DEL on a node's own block leaves this unchanged.
   */
  private routeBlocks(warn: boolean): RouteBlock[] {
    const keys = new IpamKeys(this.ds!.prefix);
    const blocks: RouteBlock[] = [];
    for (const [key, value] of this.blocks?.snapshot ?? []) {
      const cidr = keys.blockCidr(key);
      if (cidr === undefined) continue;
      try {
        const b = parseBlock(key, value.toString(), cidr);
        const affinity = affinityNode(b);
        blocks.push({
          cidr: b.cidr,
          affinity,
          allocations: b.allocations.flatMap((a) => {
            const node = allocationNode(b, a) ?? '';
            return node === affinity ? [] : [{ ip: ordinalAddress(cidr, a.ordinal), node }];
          }),
        });
      } catch (e) {
        // Unreadable: its raw text stands in, so that a change of it still reconciles.
        if (warn)
          this.log.warn({ key, err: (e as Error).message }, 'IPAM block left out of the routes');
        else blocks.push({ cidr: key, affinity: value.toString(), allocations: [] });
      }
    }
    return blocks;
  }

  /** Nodes whose heartbeat is alive: present (leases), or renewed within its TTL. */
  private liveNodes(): string[] {
    const base = nodeStatusPrefix(this.ds?.prefix ?? '').length;
    const now = Date.now();
    const out: string[] = [];
    for (const [key, value] of this.heartbeats?.snapshot ?? []) {
      if (!this.caps.leases) {
        try {
          if (!heartbeatFresh(JSON.parse(value.toString()) as NodeStatus, now)) continue;
        } catch {
          continue;
        }
      }
      out.push(key.slice(base));
    }
    return out.sort();
  }

  /**
   * The rule table for `tortie monitor` (GET /rules): every rule id this agent's compiler
   * has handed out → its rule ref. Ids are this agent's: a restarted agent numbers anew,
   * so a reader keys its cache by pid and startedAt.
   */
  ruleTable(): { node: string; pid: number; startedAt: string; rules: Record<string, string> } {
    const rules: Record<string, string> = {};
    for (const [id, ref] of this.set.policy.rules()) rules[String(id)] = ref;
    for (const [id, ref] of this.set.xdp?.rules() ?? []) rules[String(id)] = ref;
    return {
      node: this.config.nodeName,
      pid: process.pid,
      startedAt: this.startedAt.toISOString(),
      rules,
    };
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

  /** The managers' parts; a part that could not be read is logged once per message. */
  private parts(): StatusPart {
    const parts = mergeStatus(this.managers);
    for (const [part, message] of Object.entries(parts.errors ?? {}))
      this.notePartError(part, message);
    return parts;
  }

  /** Logs a part of /status, /metrics or the heartbeat that failed (once per message). */
  private notePartError(part: string, message: string | undefined): void {
    if (message === undefined) {
      if (this.partErrors.delete(part)) this.log.info({ part }, 'status part readable again');
      return;
    }
    if (this.partErrors.get(part) === message) return;
    this.partErrors.set(part, message);
    this.log.warn({ part, err: message }, 'status part cannot be read (left out, retried)');
  }

  private nodeStatus(): NodeStatus {
    const last = this.last;
    const parts = this.parts();
    const sessions = this.set.bgp?.bgpSessions();
    return {
      node: this.config.nodeName,
      version: packageVersion(),
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
        programmed: this.locals.filter((l) => this.set.policy.endpointRev(l) !== undefined).length,
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
      routes: parts.routes?.length ?? 0,
      drops: parts.drops ?? {},
      ...(parts.conntrack === undefined ? {} : { conntrack: parts.conntrack }),
      ...(parts.hostEndpoint === undefined ? {} : { hostEndpoint: parts.hostEndpoint }),
      ...(sessions === undefined ? {} : { bgp: { sessions } }),
      ...(parts.xdp === undefined ? {} : { xdp: parts.xdp }),
      config: this.configReport,
    };
  }

  status(): AgentStatus {
    const parts = this.parts();
    return {
      node: this.config.nodeName,
      ipv4Address: this.address,
      synced: this.everSynced,
      ready: this.readyz().ok,
      etcdConnected: this.etcdOk && this.watchConnected,
      healthUrl: this.ops?.url,
      lease: this.reporter?.connectedLease,
      programmedRevision: String(this.revisions.revision),
      programmedRevisions: this.revisions.kinds,
      revisionOrder: this.caps.globalRevisions ? 'global' : 'per-kind',
      datastoreType: this.config.datastoreType,
      endpoints: this.locals.map((l) => {
        return {
          key: l.endpoint.key,
          interfaceName: l.interfaceName,
          ifindex: l.ifindex,
          id: l.id,
          ip: l.endpoint.ip,
          policyRev: this.set.policy.endpointRev(l) ?? 0,
          revision: l.wep.metadata.resourceVersion ?? '0',
        };
      }),
      unresolved: this.unresolved,
      routes: parts.routes ?? [],
      remoteRoutesProgrammed: parts.remoteRoutesProgrammed ?? false,
      routeError: parts.kernelRouteError ?? parts.remoteRouteError ?? parts.encapError,
      uplink: parts.uplink,
      knownNodes: parts.knownNodes ?? [],
      liveNodes: this.liveNodes(),
      nat: parts.nat ?? { rules: 0, error: undefined },
      lastReconcile: this.last,
      reconciles: { ok: this.okCount, failed: this.failCount },
      problems: this.problems,
      drops: parts.drops ?? {},
      ...(parts.conntrack === undefined ? {} : { conntrack: parts.conntrack }),
      ...(parts.bgp === undefined ? {} : { bgp: parts.bgp }),
      ...(parts.xdp === undefined ? {} : { xdp: parts.xdp }),
      ...(parts.errors === undefined && this.addressProblem === undefined
        ? {}
        : {
            errors: {
              ...parts.errors,
              ...(this.addressProblem === undefined ? {} : { address: this.addressProblem }),
            },
          }),
      config: this.configReport,
    };
  }

  /**
   * /metrics: the managers' families, then the agent's. Each part is read on its own: one
   * that throws is left out, logged, and shown as tortie_agent_metrics_errors{part}.
   */
  metrics(): string {
    const out = collectMetrics(this.managers);
    const failed = out.failed;
    for (const [part, message] of failed) this.notePartError(`metrics ${part}`, message);
    for (const part of this.partErrors.keys())
      if (part.startsWith('metrics ') && !failed.has(part.slice(8)))
        this.notePartError(part, undefined);
    const routes = this.set.routeCounts();
    const families: MetricFamily[] = [
      ...out.families,
      {
        name: 'tortie_agent_endpoints',
        help: 'Workload endpoints: local to this node and programmed, local without a usable interface, and in the whole cluster.',
        type: 'gauge',
        samples: [
          { labels: { state: 'programmed' }, value: this.locals.length },
          { labels: { state: 'unresolved' }, value: this.unresolved.length },
          { labels: { state: 'cluster' }, value: this.model.list('WorkloadEndpoint').length },
        ],
      },
      {
        name: 'tortie_agent_routes',
        help: 'Routes this agent keeps: local endpoint /32s, and remote blocks/addresses wanted.',
        type: 'gauge',
        samples: [
          { labels: { type: 'local' }, value: routes.local },
          { labels: { type: 'remote' }, value: routes.remote },
        ],
      },
      {
        name: 'tortie_agent_reconciles_total',
        help: 'Reconciles by result.',
        type: 'counter',
        samples: [
          { labels: { result: 'ok' }, value: this.okCount },
          { labels: { result: 'failed' }, value: this.failCount },
        ],
      },
      {
        name: 'tortie_agent_route_errors_total',
        help: 'Failures to program remote routes (local policy is not held back by them).',
        type: 'counter',
        samples: [{ value: this.tally.routeErrors }],
      },
      {
        name: 'tortie_agent_last_reconcile_timestamp_seconds',
        help: 'When the last reconcile finished (Unix time).',
        type: 'gauge',
        samples: [{ value: this.last ? this.last.at.getTime() / 1000 : 0 }],
      },
      {
        name: 'tortie_agent_model_problems',
        help: 'Stored resources left out of the policy model because they do not convert.',
        type: 'gauge',
        samples: [{ value: this.problems.length }],
      },
      {
        name: 'tortie_agent_up',
        help: 'State of the agent: synced with etcd at least once, etcd reachable now, ready.',
        type: 'gauge',
        samples: [
          { labels: { what: 'synced' }, value: this.everSynced ? 1 : 0 },
          { labels: { what: 'etcd' }, value: this.etcdOk && this.watchConnected ? 1 : 0 },
          { labels: { what: 'ready' }, value: this.readyz().ok ? 1 : 0 },
        ],
      },
      metricsErrorsFamily(failed),
    ];
    return renderMetrics(families, [
      {
        name: 'tortie_agent_reconcile_duration_seconds',
        help: 'Time from the start of a reconcile to the maps written.',
        histogram: this.histogram,
      },
      ...out.histograms,
    ]);
  }
}

/**
 * The node's configuration objects, read once before the dataplane is chosen, so the
 * settings that take a restart are the datastore's from the first start. etcd not
 * answering within START_CONFIG_READ_MS: start on the local settings (the watch reports
 * later what would need a restart).
 */
async function readStartConfig(
  config: AgentConfig,
  log: Logger,
): Promise<StoreSettings | undefined> {
  let ds: AgentStore | undefined;
  try {
    ds = await connectDatastore(
      config,
      Math.min(config.etcd.timeoutMs ?? START_CONFIG_READ_MS, START_CONFIG_READ_MS),
      { checkCrds: false },
    );
    const store = ds;
    let timer: NodeJS.Timeout | undefined;
    // A hard bound too: a client still dialling must not hold the start back.
    const layers = await Promise.race([
      readConfigLayers(store, config.nodeName),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer within ${START_CONFIG_READ_MS} ms`)),
          START_CONFIG_READ_MS,
        );
      }),
    ]).finally(() => clearTimeout(timer));
    return storeSettings(layers);
  } catch (e) {
    log.warn(
      { err: (e as Error).message },
      'cannot read FelixConfiguration/AgentConfiguration at start: starting on the local settings',
    );
    return undefined;
  } finally {
    await ds?.close().catch(() => undefined);
  }
}
