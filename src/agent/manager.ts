/**
 * The contract between the agent and its managers (what Calico's Felix calls dataplane
 * managers): each one owns one concern of the node's dataplane — the policy maps, the
 * local routes, BIRD, the natOutgoing chain… — and is driven the same way.
 *
 *   agent: store ──► Snapshot ──► for m of managers: m.reconcile(pass) ──► statuses
 *          /status = compose(m.status()),  /metrics = compose(m.metrics())
 *
 * The list of managers is chosen once, from the mode (./managers/index.ts): a manager
 * that does not apply to the mode is not in the list, so nothing branches on the mode
 * while the agent runs. Managers run in the list's order within one pass and hand on
 * what later ones need through the Pass (the endpoints whose policy is in, the remote
 * routes wanted, the uplink).
 *
 * A manager's side effects go through a narrow port (netlink, maps, iptables, BIRD), so
 * it can be driven in memory in a unit test (test/helpers/softdataplane.ts).
 */
import type { Logger } from 'pino';
import type { BgpSession } from '../bgp/bird.js';
import type { LocalEndpoint } from '../policy/compile/index.js';
import type { World } from '../policy/model.js';
import type { HostEndpointStatus } from './managers/host-endpoints.js';
import type { ConntrackSummary } from './conntrack.js';
import type { LocalEndpointInfo, UnresolvedEndpoint } from './endpoints.js';
import type { Histogram, Labels, MetricFamily } from './metrics.js';
import type { ClusterModel } from './model.js';
import type { DesiredRoute, KernelRoute, RouteInputs } from './routes.js';

/** What one reconcile works from: read once from the store and the node, then fixed. */
export interface Snapshot {
  /** The policy world (buildWorld). */
  readonly world: World;
  /** The store's resources (for the pools, Nodes and BGP resources). */
  readonly model: ClusterModel;
  /** This node's endpoints that have an interface (not yet programmed). */
  readonly locals: readonly LocalEndpointInfo[];
  /** Interface name → ifindex in the node namespace. */
  readonly links: ReadonlyMap<string, number>;
  /** Nodes, IPAM blocks and pools, for the routes. */
  readonly routes: RouteInputs;
  /** The node's underlay address, `a.b.c.d/n` (undefined: none given or found). */
  readonly address: string | undefined;
  /**
   * The live settings in force for this pass (FelixConfiguration over the local ones,
   * ./felix-config.ts); absent: the defaults.
   */
  readonly settings?: {
    readonly natOutgoingAddress?: string | undefined;
    readonly natPortRange?: string | undefined;
    /** The MTU of the node's IPIP routes (undefined: the uplink's MTU − 20). */
    readonly ipipMtu?: number | undefined;
    /** The MTU of the VXLAN device (undefined: the uplink's MTU − 50). */
    readonly vxlanMtu?: number | undefined;
    /** The deny list in XDP at all (undefined: true). */
    readonly xdpEnabled?: boolean | undefined;
    /** XDP in generic mode where native is not to be had (undefined: false). */
    readonly genericXdpEnabled?: boolean | undefined;
  };
}

/** One reconcile as it goes: the snapshot, and what earlier managers handed on. */
export interface Pass {
  readonly snapshot: Snapshot;
  /** Local endpoints whose policy is in place (the policy manager fills it). */
  programmed: LocalEndpointInfo[];
  /** Local endpoints that could not be programmed, and why. */
  readonly unresolved: UnresolvedEndpoint[];
  /** Remote routes wanted (the remote-routes manager fills it). */
  wanted: DesiredRoute[];
  /** The uplink found this pass (BPF mode's uplink manager). */
  uplink: { readonly ip: string; readonly ifindex: number } | undefined;
  /** Host endpoints to compile beside the pods (BPF mode's host-endpoints manager). */
  hostEndpoints: LocalEndpoint[];
}

export function newPass(snapshot: Snapshot): Pass {
  return {
    snapshot,
    programmed: [],
    unresolved: [],
    wanted: [],
    uplink: undefined,
    hostEndpoints: [],
  };
}

/**
 * What a reconcile did. A manager that throws fails the whole reconcile (the policy
 * managers: nothing is reported programmed). A manager whose failure must not hold back
 * the others (routes, BIRD, NAT) keeps it: shows it in its status, counts it, and asks
 * for another reconcile with `retryMs`.
 */
export interface ManagerResult {
  readonly writes?: number;
  readonly deletes?: number;
  readonly retryMs?: number;
}

/** The managers' parts of /status (the agent lays them out as AgentStatus). */
export interface StatusPart {
  readonly routes?: readonly DesiredRoute[];
  readonly remoteRoutesProgrammed?: boolean;
  readonly knownNodes?: readonly string[];
  /** The last pass's failure to program remote routes (the BPF routes map). */
  readonly remoteRouteError?: string;
  /** The last pass's failure to program kernel routes. */
  readonly kernelRouteError?: string;
  /** A route encapsulation the dataplane refuses (iptables: IPIP). */
  readonly encapError?: string;
  readonly uplink?: { ip: string; ifindex: number } | { error: string };
  readonly nat?: { readonly rules: number; readonly error: string | undefined };
  readonly drops?: Record<string, number>;
  readonly conntrack?: ConntrackSummary;
  readonly bgp?: BgpStatus;
  /** The uplink's XDP deny list (BPF mode). */
  readonly xdp?: XdpStatus;
  /** The host endpoint judging the uplink and the failsafe ports (BPF mode). */
  readonly hostEndpoint?: HostEndpointStatus;
  /** Parts of this status that could not be read, by part: the message. */
  readonly errors?: Readonly<Record<string, string>>;
}

/** The uplink's XDP deny list as the agent programmed it (./managers/xdp.ts). */
export interface XdpStatus {
  /** How its program runs on the uplink: native (driver), generic (skb), none (not attached). */
  readonly mode: 'native' | 'generic' | 'none';
  /** The uplink's name, while attached. */
  readonly interface?: string;
  /** The host endpoint whose doNotTrack policy the list comes from. */
  readonly hostEndpoint?: string;
  /** Source prefixes in tortie_xdp_deny. */
  readonly entries: number;
  /** Deny rules accelerated. */
  readonly rules: number;
  /** The first doNotTrack ingress rule not dropped in XDP (it and those after it are not). */
  readonly notAccelerated?: { readonly rule: string; readonly reason: string };
  /**
   * Why a non-empty list is not dropped in XDP (xdpEnabled false, or no native XDP and
   * genericXDPEnabled false), and what that leaves enforced.
   */
  readonly notInXdp?: string;
  readonly error?: string;
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
  /** What BIRD runs differently from the store (peers, filter rules left out), and why. */
  readonly problems: readonly string[];
  /** BGP fields stored and not acted on. */
  readonly notImplemented?: readonly string[];
}

export interface HistogramFamily {
  readonly name: string;
  readonly help: string;
  readonly histogram: Histogram;
  readonly labels?: Labels;
}

/**
 * Where a manager writes its metric families. `part` runs one reading on its own: when
 * it throws, its families are left out, the rest of /metrics is served, and the failure
 * shows as `tortie_agent_metrics_errors{part=…} 1` (docs/agent.md).
 */
export interface MetricsOut {
  readonly families: MetricFamily[];
  readonly histograms: HistogramFamily[];
  part(name: string, read: () => void): void;
}

/** Counters shared by several managers (one metric family each). */
export interface Tally {
  /** Failures to program remote routes, kernel routes or BIRD's configuration. */
  routeErrors: number;
}

/** What every manager is given: the node, a logger, and a way to ask for a reconcile. */
export interface ManagerContext {
  readonly node: string;
  readonly log: Logger;
  readonly tally: Tally;
  /** Asks for a reconcile soon (debounced with the store's changes). */
  trigger(): void;
  /** Whether a reconcile has programmed the dataplane at least once. */
  programmed(): boolean;
}

export interface Manager {
  /** Short and stable: the part name in logs and metrics (`bpf-policy`, `nat-outgoing`). */
  readonly name: string;
  /** Starts its own timers or children, once the agent follows the store (optional). */
  start?(): void;
  /**
   * It reads only the endpoints of the snapshot (the world, the locals, their links):
   * a pass after a change of endpoints alone runs just these managers.
   */
  readonly endpointScoped?: boolean;
  /** Brings its concern to the snapshot; reads and adds to the pass. */
  reconcile(pass: Pass): Promise<ManagerResult> | ManagerResult;
  /** Its part of /status. */
  status(): StatusPart;
  /** Its metric families. */
  metrics(out: MetricsOut): void;
  /** Stops its timers and children. What it programmed stays (a new agent adopts it). */
  stop(): Promise<void> | void;
}

/** The manager that programs endpoints' policy (BPF maps, or iptables chains). */
export interface PolicyManager extends Manager {
  /** The policyRev an endpoint is programmed at (undefined: not programmed). */
  endpointRev(l: LocalEndpointInfo): number | undefined;
  /** Rule id → rule ref, as this agent numbered them. */
  rules(): ReadonlyMap<number, string>;
  /** What it adopted from a previous agent, for the start line. */
  adopted(): Record<string, number>;
}
