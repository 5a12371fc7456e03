/**
 * The agent's configuration: flags over environment (`TORTIE_*`) over a YAML file over
 * built-in defaults, setting by setting. The datastore's FelixConfiguration and
 * AgentConfiguration fit between the file and the defaults for CLUSTER_SETTINGS
 * (./felix-config.ts; localSettings says which were given here). `resolveAgentConfig` is pure (the CLI reads the
 * file and hands over process.env), so the precedence is unit-tested.
 *
 *   flag                  env                          file key
 *   --node-name           TORTIE_NODE_NAME             nodeName        (default: hostname)
 *   --ip                  TORTIE_NODE_IP               ipv4Address     (a.b.c.d/n; default: detected)
 *   --as-number           TORTIE_NODE_AS               asNumber
 *   --labels              TORTIE_NODE_LABELS           labels          (k=v,k2=v2 / a map)
 *   --pin-root            TORTIE_PIN_ROOT              pinRoot         (/sys/fs/bpf/tortie)
 *   --node-netns          TORTIE_NODE_NETNS            nodeNetns       (path; default: own)
 *   --health-host         TORTIE_HEALTH_HOST           healthHost      (127.0.0.1)
 *   --health-port         TORTIE_HEALTH_PORT           healthPort      (9099; 0 = any free)
 *   --etcd-endpoints      TORTIE_ETCD_ENDPOINTS        etcdEndpoints   (http://127.0.0.1:2379)
 *   --etcd-prefix         TORTIE_ETCD_PREFIX           etcdPrefix      (/calico)
 *   --etcd-ca-cert/...    TORTIE_ETCD_CA_CERT/...      etcdCACert, etcdCert, etcdKey
 *   --datastore           DATASTORE_TYPE               datastoreType   (etcd | kubernetes; default etcd)
 *   --kubeconfig          KUBECONFIG                   kubeconfig      (kubernetes; default: in-cluster)
 *   --log-level           TORTIE_LOG_LEVEL             logLevel        (info)
 *   --heartbeat-ttl       TORTIE_HEARTBEAT_TTL         heartbeatTtlSeconds (10)
 *   --report-interval     TORTIE_REPORT_INTERVAL       reportIntervalSeconds (10)
 *   --debounce-ms         TORTIE_DEBOUNCE_MS           debounceMs      (20)
 *   --routing             TORTIE_ROUTING               routing         (static | bgp; default static)
 *   --bgp-run-dir         TORTIE_BGP_RUN_DIR           bgpRunDir       (/run/tortie/bird)
 *   --cni-socket          TORTIE_CNI_SOCKET            cniSocket       (/var/run/tortie/cni.sock; "none": no CNI)
 *   --bgp-hold-time       TORTIE_BGP_HOLD_TIME         bgpHoldTimeSeconds (BIRD's default)
 *   --bgp-secrets-dir     TORTIE_BGP_SECRETS_DIR       bgpSecretsDir   (/etc/tortie/secrets)
 *   --dataplane           TORTIE_DATAPLANE             dataplane       (bpf | iptables; default bpf)
 *   --allow-ipip-packets-from-workloads   TORTIE_ALLOW_IPIP_PACKETS_FROM_WORKLOADS
 *                                                      allowIPIPPacketsFromWorkloads  (false)
 *   --allow-vxlan-packets-from-workloads  TORTIE_ALLOW_VXLAN_PACKETS_FROM_WORKLOADS
 *                                                      allowVXLANPacketsFromWorkloads (false)
 *   --default-endpoint-to-host-action  TORTIE_DEFAULT_ENDPOINT_TO_HOST_ACTION
 *                                                      defaultEndpointToHostAction (Drop | Accept | Return; Drop)
 *   --ct-new-flows-per-second  TORTIE_CT_NEW_FLOWS_PER_SECOND
 *                                                      ctNewFlowsPerSecond (a pod's new-flow budget; none)
 *   --ct-new-flow-burst   TORTIE_CT_NEW_FLOW_BURST     ctNewFlowBurst  (the rate rounded up)
 *   --agent-config        TORTIE_AGENT_CONFIG          (the file itself: /etc/tortie/agent.yaml)
 */
import { hostname } from 'node:os';
import { z } from 'zod';
import type { ConnectOptions } from '../datastore/index.js';

export const DEFAULT_AGENT_CONFIG_FILE = '/etc/tortie/agent.yaml';
export const DEFAULT_PIN_ROOT = '/sys/fs/bpf/tortie';
export const DEFAULT_HEALTH_PORT = 9099;
export const DEFAULT_ETCD_ENDPOINTS = ['http://127.0.0.1:2379'];

export const DEFAULT_BGP_RUN_DIR = '/run/tortie/bird';
/** The compiled CNI plugin's default `agent_socket` (src/cni/config.ts) — the two must agree. */
export const DEFAULT_CNI_SOCKET = '/var/run/tortie/cni.sock';
/** BGPPeer password.secretKeyRef {name, key} → <dir>/<name>/<key> (src/bgp/secrets.ts). */
export const DEFAULT_BGP_SECRETS_DIR = '/etc/tortie/secrets';
export const ROUTING_MODES = ['static', 'bgp'] as const;
export type RoutingMode = (typeof ROUTING_MODES)[number];

export const DATAPLANE_MODES = ['bpf', 'iptables'] as const;

/**
 * Where the resources live: etcd v3 (tortie's own etcd), or the Kubernetes API (Calico's
 * "kubernetes" datastore: CRDs and Kubernetes' own objects; src/datastore/kubernetes).
 * The environment names are Calico's (DATASTORE_TYPE, KUBECONFIG).
 */
export const DATASTORE_TYPES = ['etcd', 'kubernetes'] as const;
export type DatastoreType = (typeof DATASTORE_TYPES)[number];
export type DataplaneMode = (typeof DATAPLANE_MODES)[number];

/** Felix's DefaultEndpointToHostAction values (the loader's, repeated to keep this module pure). */
export const ENDPOINT_TO_HOST_ACTIONS = ['Drop', 'Accept', 'Return'] as const;
export type EndpointToHostAction = (typeof ENDPOINT_TO_HOST_ACTIONS)[number];

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * The settings the datastore may also give (FelixConfiguration, AgentConfiguration;
 * ./felix-config.ts maps their fields onto these). A setting given here, by flag,
 * environment, file or the caller of agentConfig(), wins over the datastore (as Felix's
 * environment and config file win over its datastore configuration).
 */
export const CLUSTER_SETTINGS = [
  'logLevel',
  'reportIntervalSeconds',
  'heartbeatTtlSeconds',
  'dataplane',
  'healthHost',
  'healthPort',
  'defaultEndpointToHostAction',
  'allowIPIPPacketsFromWorkloads',
  'allowVXLANPacketsFromWorkloads',
  'traceVerdicts',
  'natOutgoingAddress',
  'natPortRange',
  'ipipMtu',
  'vxlanMtu',
  'xdpEnabled',
  'genericXdpEnabled',
] as const;
export type ClusterSetting = (typeof CLUSTER_SETTINGS)[number];

/** Which flag gives each cluster setting (traceVerdicts has none: the datastore's only). */
const SETTING_OF_FLAG: Partial<Record<keyof AgentFlags, ClusterSetting>> = {
  logLevel: 'logLevel',
  reportInterval: 'reportIntervalSeconds',
  heartbeatTtl: 'heartbeatTtlSeconds',
  dataplane: 'dataplane',
  healthHost: 'healthHost',
  healthPort: 'healthPort',
  defaultEndpointToHostAction: 'defaultEndpointToHostAction',
  allowIpipPacketsFromWorkloads: 'allowIPIPPacketsFromWorkloads',
  allowVxlanPacketsFromWorkloads: 'allowVXLANPacketsFromWorkloads',
};

export interface AgentConfig {
  readonly nodeName: string;
  /** The node's underlay address with its prefix length (Node.spec.bgp.ipv4Address); undefined: detect it. */
  readonly ipv4Address: string | undefined;
  readonly asNumber: number | undefined;
  readonly labels: Readonly<Record<string, string>>;
  readonly pinRoot: string;
  /** Namespace holding the pod veths' host ends; undefined: the agent's own. */
  readonly nodeNetns: string | undefined;
  readonly healthHost: string;
  /** 0 picks a free port (several agents on one machine, as in the lab). */
  readonly healthPort: number;
  /** etcd's connection (datastoreType etcd); its prefix is the key layout's on both. */
  readonly etcd: ConnectOptions;
  /** etcd (default) or kubernetes. */
  readonly datastoreType: DatastoreType;
  /**
   * The kubeconfig file of the API server (datastoreType kubernetes); undefined: the
   * in-cluster service account, as client-go finds it.
   */
  readonly kubeconfig: string | undefined;
  readonly logLevel: LogLevel;
  readonly heartbeatTtlSeconds: number;
  readonly reportIntervalSeconds: number;
  /** Quiet time before a reconcile runs; a burst of changes makes one reconcile. */
  readonly debounceMs: number;
  /** A reconcile runs at the latest this long after the first change of a burst. */
  readonly maxDelayMs: number;
  /** Full reconcile at least this often (interfaces that changed under the agent). */
  readonly resyncIntervalMs: number;
  /**
   * How remote routes are found: 'static' computes them from IPAM block affinity and
   * writes kernel routes itself; 'bgp' runs BIRD (src/bgp) and follows what it learns.
   */
  readonly routing: RoutingMode;
  /** BIRD's configuration, control socket, pid file and log (named with the node). */
  readonly bgpRunDir: string;
  /**
   * Where the agent serves the compiled CNI plugin's requests (src/cni/server.ts);
   * undefined: it serves none (`--cni-socket none`), and pods cannot be added on this node.
   */
  readonly cniSocket: string | undefined;
  /** BGP hold time in seconds (short in labs); undefined: BIRD's default. */
  readonly bgpHoldTimeSeconds: number | undefined;
  /** Where BGP passwords given as secretKeyRef are read (src/bgp/secrets.ts). */
  readonly bgpSecretsDir: string;
  /**
   * 'bpf' (default): the tc programs and policy maps. 'iptables': Felix-style chains and
   * ipsets (src/iptables) in the node's namespace; no BPF object is loaded.
   */
  readonly dataplane: DataplaneMode;
  /**
   * Calico's FelixConfiguration fields of the same names (read from here until tortie
   * has FelixConfiguration): whether pods may send IPIP (protocol 4) / UDP to the
   * VXLAN port themselves. Default false in both dataplanes: such a packet is dropped
   * where the pod sends it (BPF: DROP_WORKLOAD_ENCAP; iptables: the from-workload
   * chain).
   */
  readonly allowIPIPPacketsFromWorkloads: boolean;
  readonly allowVXLANPacketsFromWorkloads: boolean;
  /**
   * A pod's new flow to an address of this node, once its egress policy allowed it
   * (Felix's defaultEndpointToHostAction): Drop (default, as Calico), Accept, or Return
   * (to the host's own rules; tortie has no host endpoint policy yet, so as Accept).
   */
  readonly defaultEndpointToHostAction: EndpointToHostAction;
  /**
   * New-flow budget per sending pod (docs/dataplane.md, "Conntrack capacity and
   * fairness"): undefined (the default) = none.
   */
  readonly ctNewFlowBudget?: { readonly perSecond: number; readonly burst?: number };
  /**
   * Verdict events on the ring buffer (`tortie monitor`): Felix's `bpfLogLevel: Debug`.
   * No flag: only the datastore sets it (a load-time constant, so at the next start).
   */
  readonly traceVerdicts: boolean;
  /**
   * natOutgoing SNATs to this address instead of MASQUERADE (Felix's natOutgoingAddress);
   * undefined: MASQUERADE. No flag: the datastore's only, applied live.
   */
  readonly natOutgoingAddress: string | undefined;
  /** natOutgoing's source ports, `min-max` (Felix's natPortRange); undefined: the kernel's. */
  readonly natPortRange: string | undefined;
  /**
   * The MTU of the node's own routes to IPIP-encapsulated blocks (Felix's ipipMTU: tortie
   * has no tunl0 device, the encapsulation is BPF's); undefined: the uplink's MTU less
   * 20. Live.
   */
  readonly ipipMtu: number | undefined;
  /**
   * The MTU of the VXLAN device (Felix's vxlanMTU); undefined: the uplink's MTU less 50.
   * Live.
   */
  readonly vxlanMtu: number | undefined;
  /**
   * Whether the uplink's deny list (doNotTrack source denies) runs in XDP (Felix's
   * xdpEnabled; default true). False: no XDP program, and the same denies are enforced
   * by tc ingress on the uplink instead. Live.
   */
  readonly xdpEnabled: boolean;
  /**
   * Whether XDP may run in the kernel's generic mode where the uplink's driver has no
   * native XDP (Felix's genericXDPEnabled; default false: native only, and without it
   * the deny list stays in tc). Live.
   */
  readonly genericXdpEnabled: boolean;
  /**
   * The cluster settings given here rather than taken from a default, and where (e.g.
   * `--log-level`, `TORTIE_LOG_LEVEL`, `/etc/tortie/agent.yaml: logLevel`): these win over
   * the datastore's FelixConfiguration and AgentConfiguration.
   */
  readonly localSettings: Readonly<Partial<Record<ClusterSetting, string>>>;
}

/** Settings as the command line gives them (strings, or undefined when not given). */
export interface AgentFlags {
  nodeName?: string;
  ip?: string;
  asNumber?: string;
  labels?: string;
  pinRoot?: string;
  nodeNetns?: string;
  healthHost?: string;
  healthPort?: string;
  etcdEndpoints?: string;
  etcdPrefix?: string;
  etcdCaCert?: string;
  etcdCert?: string;
  etcdKey?: string;
  datastore?: string;
  kubeconfig?: string;
  logLevel?: string;
  heartbeatTtl?: string;
  reportInterval?: string;
  debounceMs?: string;
  routing?: string;
  bgpRunDir?: string;
  cniSocket?: string;
  bgpHoldTime?: string;
  bgpSecretsDir?: string;
  dataplane?: string;
  allowIpipPacketsFromWorkloads?: string;
  allowVxlanPacketsFromWorkloads?: string;
  defaultEndpointToHostAction?: string;
  ctNewFlowsPerSecond?: string;
  ctNewFlowBurst?: string;
}

export const ENV_NAMES: Readonly<Record<keyof AgentFlags, string>> = {
  nodeName: 'TORTIE_NODE_NAME',
  ip: 'TORTIE_NODE_IP',
  asNumber: 'TORTIE_NODE_AS',
  labels: 'TORTIE_NODE_LABELS',
  pinRoot: 'TORTIE_PIN_ROOT',
  nodeNetns: 'TORTIE_NODE_NETNS',
  healthHost: 'TORTIE_HEALTH_HOST',
  healthPort: 'TORTIE_HEALTH_PORT',
  etcdEndpoints: 'TORTIE_ETCD_ENDPOINTS',
  etcdPrefix: 'TORTIE_ETCD_PREFIX',
  etcdCaCert: 'TORTIE_ETCD_CA_CERT',
  etcdCert: 'TORTIE_ETCD_CERT',
  etcdKey: 'TORTIE_ETCD_KEY',
  datastore: 'DATASTORE_TYPE',
  kubeconfig: 'KUBECONFIG',
  logLevel: 'TORTIE_LOG_LEVEL',
  heartbeatTtl: 'TORTIE_HEARTBEAT_TTL',
  reportInterval: 'TORTIE_REPORT_INTERVAL',
  debounceMs: 'TORTIE_DEBOUNCE_MS',
  routing: 'TORTIE_ROUTING',
  bgpRunDir: 'TORTIE_BGP_RUN_DIR',
  cniSocket: 'TORTIE_CNI_SOCKET',
  bgpHoldTime: 'TORTIE_BGP_HOLD_TIME',
  bgpSecretsDir: 'TORTIE_BGP_SECRETS_DIR',
  dataplane: 'TORTIE_DATAPLANE',
  allowIpipPacketsFromWorkloads: 'TORTIE_ALLOW_IPIP_PACKETS_FROM_WORKLOADS',
  allowVxlanPacketsFromWorkloads: 'TORTIE_ALLOW_VXLAN_PACKETS_FROM_WORKLOADS',
  defaultEndpointToHostAction: 'TORTIE_DEFAULT_ENDPOINT_TO_HOST_ACTION',
  ctNewFlowsPerSecond: 'TORTIE_CT_NEW_FLOWS_PER_SECOND',
  ctNewFlowBurst: 'TORTIE_CT_NEW_FLOW_BURST',
};

export const CONFIG_FILE_ENV = 'TORTIE_AGENT_CONFIG';

/** The YAML file: every key optional, unknown keys refused (a typo must not go unnoticed). */
export const agentConfigFileSchema = z
  .object({
    nodeName: z.string().optional(),
    ipv4Address: z.string().optional(),
    asNumber: z.number().int().optional(),
    labels: z.record(z.string(), z.string()).optional(),
    pinRoot: z.string().optional(),
    nodeNetns: z.string().optional(),
    healthHost: z.string().optional(),
    healthPort: z.number().int().optional(),
    etcdEndpoints: z.union([z.string(), z.array(z.string())]).optional(),
    etcdPrefix: z.string().optional(),
    etcdCACert: z.string().optional(),
    etcdCert: z.string().optional(),
    etcdKey: z.string().optional(),
    datastoreType: z.string().optional(),
    kubeconfig: z.string().optional(),
    logLevel: z.string().optional(),
    heartbeatTtlSeconds: z.number().int().optional(),
    reportIntervalSeconds: z.number().int().optional(),
    debounceMs: z.number().int().optional(),
    routing: z.string().optional(),
    bgpRunDir: z.string().optional(),
    cniSocket: z.string().optional(),
    bgpHoldTimeSeconds: z.number().int().optional(),
    bgpSecretsDir: z.string().optional(),
    dataplane: z.string().optional(),
    allowIPIPPacketsFromWorkloads: z.boolean().optional(),
    allowVXLANPacketsFromWorkloads: z.boolean().optional(),
    defaultEndpointToHostAction: z.string().optional(),
    ctNewFlowsPerSecond: z.number().optional(),
    ctNewFlowBurst: z.number().int().optional(),
  })
  .strict();

export type AgentConfigFile = z.infer<typeof agentConfigFileSchema>;

/** A configuration mistake; the message names every bad setting and where it came from. */
export class AgentConfigError extends Error {
  override readonly name = 'AgentConfigError';
  constructor(readonly problems: readonly string[]) {
    super(problems.join('\n'));
  }
}

export interface ConfigSources {
  readonly flags?: AgentFlags;
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly file?: AgentConfigFile;
  /** Where the file came from, for messages. */
  readonly fileName?: string;
  /** Default node name (the CLI passes os.hostname()). */
  readonly hostname?: string;
}

type Origin = 'flag' | 'env' | 'file' | 'default';

const NODE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_KEY =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

function isIPv4(text: string): boolean {
  const parts = text.split('.');
  return parts.length === 4 && parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) <= 255);
}

/** "k=v,k2=v2" → a record; undefined when malformed. */
export function parseLabelList(text: string): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  for (const part of text.split(',').map((s) => s.trim())) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    if (eq <= 0) return undefined;
    out[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
  return out;
}

function splitList(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/**
 * The configuration from its sources. Every problem is collected and thrown together
 * (AgentConfigError), each naming the setting and its source.
 */
export function resolveAgentConfig(sources: ConfigSources): AgentConfig {
  const flags = sources.flags ?? {};
  const env = sources.env ?? {};
  const file = sources.file ?? {};
  const fileName = sources.fileName ?? 'the config file';
  const problems: string[] = [];
  const localSettings: Partial<Record<ClusterSetting, string>> = {};

  /** The winning raw value of a setting and where it came from. */
  function pick<T>(
    flag: keyof AgentFlags,
    fileValue: T | undefined,
  ): { value: string | T; origin: Origin; where: string } | undefined {
    const found = ((): { value: string | T; origin: Origin; where: string } | undefined => {
      const f = flags[flag];
      if (f !== undefined) return { value: f, origin: 'flag', where: `--${kebab(flag)}` };
      const e = env[ENV_NAMES[flag]];
      if (e !== undefined && e !== '') return { value: e, origin: 'env', where: ENV_NAMES[flag] };
      if (fileValue !== undefined)
        return { value: fileValue, origin: 'file', where: `${fileName}: ${fileKey(flag)}` };
      return undefined;
    })();
    const setting = SETTING_OF_FLAG[flag];
    if (found !== undefined && setting !== undefined) localSettings[setting] = found.where;
    return found;
  }

  function str(flag: keyof AgentFlags, fileValue: string | undefined): string | undefined {
    const p = pick(flag, fileValue);
    return p === undefined ? undefined : String(p.value);
  }

  function int(
    flag: keyof AgentFlags,
    fileValue: number | undefined,
    fallback: number,
    min: number,
    max: number,
  ): number {
    const p = pick(flag, fileValue);
    if (p === undefined) return fallback;
    const n = typeof p.value === 'number' ? p.value : Number(p.value);
    if (!Number.isInteger(n) || n < min || n > max) {
      problems.push(`${p.where}: ${JSON.stringify(p.value)} is not an integer in ${min}..${max}`);
      return fallback;
    }
    return n;
  }

  // node identity
  const nodeName = (str('nodeName', file.nodeName) ?? sources.hostname ?? hostname()).toLowerCase();
  if (!NODE_NAME.test(nodeName) || nodeName.length > 253) {
    problems.push(
      `node name ${JSON.stringify(nodeName)} is not a DNS subdomain (lower-case letters, digits, '-' and '.')`,
    );
  }

  let ipv4Address: string | undefined;
  const ip = pick('ip', file.ipv4Address);
  if (ip !== undefined) {
    const text = String(ip.value);
    const [addr = '', prefix, ...rest] = text.split('/');
    if (
      !isIPv4(addr) ||
      rest.length > 0 ||
      (prefix !== undefined && !/^(0|[1-9]\d?)$/.test(prefix)) ||
      Number(prefix ?? 32) > 32
    ) {
      problems.push(
        `${ip.where}: ${JSON.stringify(text)} is not an IPv4 address (a.b.c.d or a.b.c.d/n)`,
      );
    } else {
      ipv4Address = `${addr}/${prefix ?? '32'}`;
    }
  }

  const asNumber = (() => {
    const p = pick('asNumber', file.asNumber);
    if (p === undefined) return undefined;
    const n = typeof p.value === 'number' ? p.value : Number(p.value);
    if (!Number.isInteger(n) || n < 1 || n > 4294967295) {
      problems.push(`${p.where}: ${JSON.stringify(p.value)} is not an AS number (1..4294967295)`);
      return undefined;
    }
    return n;
  })();

  let labels: Record<string, string> = {};
  const lp = pick('labels', file.labels);
  if (lp !== undefined) {
    const parsed = typeof lp.value === 'string' ? parseLabelList(lp.value) : lp.value;
    if (parsed === undefined) {
      problems.push(`${lp.where}: ${JSON.stringify(lp.value)} is not a list of key=value`);
    } else {
      for (const [k, v] of Object.entries(parsed)) {
        if (!LABEL_KEY.test(k))
          problems.push(`${lp.where}: ${JSON.stringify(k)} is not a label key`);
        else if (!LABEL_VALUE.test(v))
          problems.push(`${lp.where}: ${JSON.stringify(v)} is not a label value (label ${k})`);
      }
      labels = parsed;
    }
  }

  // dataplane
  const pinRoot = str('pinRoot', file.pinRoot) ?? DEFAULT_PIN_ROOT;
  if (!pinRoot.startsWith('/'))
    problems.push(`pin root ${JSON.stringify(pinRoot)} must be an absolute path`);
  const nodeNetns = str('nodeNetns', file.nodeNetns);
  if (nodeNetns !== undefined && !nodeNetns.startsWith('/')) {
    problems.push(
      `node netns ${JSON.stringify(nodeNetns)} must be a path such as /run/netns/node-1`,
    );
  }

  // operations
  const healthHost = str('healthHost', file.healthHost) ?? '127.0.0.1';
  const healthPort = int('healthPort', file.healthPort, DEFAULT_HEALTH_PORT, 0, 65535);
  const logLevelText = (str('logLevel', file.logLevel) ?? 'info').toLowerCase();
  const logLevel = (LOG_LEVELS as readonly string[]).includes(logLevelText)
    ? (logLevelText as LogLevel)
    : (problems.push(
        `log level ${JSON.stringify(logLevelText)} is not one of ${LOG_LEVELS.join(', ')}`,
      ),
      'info' as const);
  const heartbeatTtlSeconds = int('heartbeatTtl', file.heartbeatTtlSeconds, 10, 2, 3600);
  const reportIntervalSeconds = int('reportInterval', file.reportIntervalSeconds, 10, 1, 86400);
  const ctNewFlowBudget = (() => {
    const rate = pick('ctNewFlowsPerSecond', file.ctNewFlowsPerSecond);
    const burst = pick('ctNewFlowBurst', file.ctNewFlowBurst);
    if (rate === undefined) {
      if (burst !== undefined)
        problems.push(`${burst.where}: a burst needs a rate (ctNewFlowsPerSecond)`);
      return undefined;
    }
    const perSecond = typeof rate.value === 'number' ? rate.value : Number(rate.value);
    if (!Number.isFinite(perSecond) || perSecond <= 0 || perSecond > 1e9) {
      problems.push(
        `${rate.where}: ${JSON.stringify(rate.value)} is not a number of new flows per second (above 0, at most 1e9)`,
      );
      return undefined;
    }
    if (burst === undefined) return { perSecond };
    const b = typeof burst.value === 'number' ? burst.value : Number(burst.value);
    if (!Number.isInteger(b) || b < 1 || b > 4294967295) {
      problems.push(
        `${burst.where}: ${JSON.stringify(burst.value)} is not a number of flows (1 or more)`,
      );
      return undefined;
    }
    return { perSecond, burst: b };
  })();
  const debounceMs = int('debounceMs', file.debounceMs, 20, 0, 60_000);

  // routing
  const routingText = (str('routing', file.routing) ?? 'static').toLowerCase();
  const routing = (ROUTING_MODES as readonly string[]).includes(routingText)
    ? (routingText as RoutingMode)
    : (problems.push(
        `routing ${JSON.stringify(routingText)} is not one of ${ROUTING_MODES.join(', ')}`,
      ),
      'static' as const);
  const cniSocketText = str('cniSocket', file.cniSocket) ?? DEFAULT_CNI_SOCKET;
  const cniSocket = cniSocketText === 'none' ? undefined : cniSocketText;
  if (cniSocket !== undefined && !/^\/[^\s"'#\\]{1,100}$/.test(cniSocket))
    problems.push(
      `CNI socket ${JSON.stringify(cniSocket)} must be an absolute path of at most 100 characters without spaces or quotes, or "none"`,
    );
  const bgpRunDir = str('bgpRunDir', file.bgpRunDir) ?? DEFAULT_BGP_RUN_DIR;
  if (!bgpRunDir.startsWith('/'))
    problems.push(`BGP run dir ${JSON.stringify(bgpRunDir)} must be an absolute path`);
  const bgpSecretsDir = str('bgpSecretsDir', file.bgpSecretsDir) ?? DEFAULT_BGP_SECRETS_DIR;
  if (!bgpSecretsDir.startsWith('/'))
    problems.push(`BGP secrets dir ${JSON.stringify(bgpSecretsDir)} must be an absolute path`);
  const bgpHoldTimeSeconds =
    pick('bgpHoldTime', file.bgpHoldTimeSeconds) === undefined
      ? undefined
      : int('bgpHoldTime', file.bgpHoldTimeSeconds, 240, 3, 65535);

  const dataplaneText = (str('dataplane', file.dataplane) ?? 'bpf').toLowerCase();
  const dataplane = (DATAPLANE_MODES as readonly string[]).includes(dataplaneText)
    ? (dataplaneText as DataplaneMode)
    : (problems.push(
        `dataplane ${JSON.stringify(dataplaneText)} is not one of ${DATAPLANE_MODES.join(', ')}`,
      ),
      'bpf' as const);

  function bool(flag: keyof AgentFlags, fileValue: boolean | undefined): boolean {
    const p = pick(flag, fileValue);
    if (p === undefined) return false;
    if (typeof p.value === 'boolean') return p.value;
    const text = String(p.value).toLowerCase();
    if (text === 'true') return true;
    if (text !== 'false')
      problems.push(`${p.where}: ${JSON.stringify(p.value)} is not true or false`);
    return false;
  }
  const allowIPIPPacketsFromWorkloads = bool(
    'allowIpipPacketsFromWorkloads',
    file.allowIPIPPacketsFromWorkloads,
  );
  const allowVXLANPacketsFromWorkloads = bool(
    'allowVxlanPacketsFromWorkloads',
    file.allowVXLANPacketsFromWorkloads,
  );
  const hostActionText = str('defaultEndpointToHostAction', file.defaultEndpointToHostAction);
  const defaultEndpointToHostAction =
    hostActionText === undefined
      ? ('Drop' as const)
      : (ENDPOINT_TO_HOST_ACTIONS.find((a) => a.toLowerCase() === hostActionText.toLowerCase()) ??
        (problems.push(
          `defaultEndpointToHostAction ${JSON.stringify(hostActionText)} is not one of ${ENDPOINT_TO_HOST_ACTIONS.join(', ')}`,
        ),
        'Drop' as const));

  // etcd
  const ep = pick('etcdEndpoints', file.etcdEndpoints);
  const endpoints =
    ep === undefined
      ? DEFAULT_ETCD_ENDPOINTS
      : Array.isArray(ep.value)
        ? ep.value
        : splitList(String(ep.value));
  if (endpoints.length === 0) problems.push('etcd endpoints: the list is empty');
  const etcdPrefix = str('etcdPrefix', file.etcdPrefix);
  if (etcdPrefix !== undefined && !etcdPrefix.startsWith('/')) {
    problems.push(`etcd prefix ${JSON.stringify(etcdPrefix)} must start with "/"`);
  }
  const ca = str('etcdCaCert', file.etcdCACert);
  const cert = str('etcdCert', file.etcdCert);
  const key = str('etcdKey', file.etcdKey);
  if ((cert === undefined) !== (key === undefined)) {
    problems.push('an etcd client certificate needs its key, and a key its certificate');
  }

  // the datastore
  const typeText = (str('datastore', file.datastoreType) ?? 'etcd').toLowerCase();
  const datastoreType = (DATASTORE_TYPES as readonly string[]).includes(typeText)
    ? (typeText as DatastoreType)
    : (problems.push(
        `datastore type ${JSON.stringify(typeText)} is not one of ${DATASTORE_TYPES.join(', ')}`,
      ),
      'etcd' as const);
  const kp = pick('kubeconfig', file.kubeconfig);
  const kubeconfig = kubeconfigPath(kp === undefined ? undefined : String(kp.value));
  // KUBECONFIG in the environment is kubectl's too: only a kubeconfig given to tortie
  // itself says the user meant the Kubernetes datastore.
  if (kp !== undefined && kp.origin !== 'env' && datastoreType !== 'kubernetes')
    problems.push(
      `${kp.where}: a kubeconfig is for the Kubernetes datastore: give --datastore kubernetes (DATASTORE_TYPE=kubernetes) too, or no kubeconfig`,
    );

  if (problems.length > 0) throw new AgentConfigError(problems);
  const tls = ca !== undefined || cert !== undefined;
  return {
    nodeName,
    ipv4Address,
    asNumber,
    labels,
    pinRoot,
    nodeNetns,
    healthHost,
    healthPort,
    etcd: {
      endpoints,
      ...(etcdPrefix === undefined ? {} : { prefix: etcdPrefix }),
      ...(tls
        ? { tls: { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) } }
        : {}),
      timeoutMs: 3000,
    },
    datastoreType,
    kubeconfig: datastoreType === 'kubernetes' ? kubeconfig : undefined,
    logLevel,
    heartbeatTtlSeconds,
    reportIntervalSeconds,
    debounceMs,
    maxDelayMs: Math.max(debounceMs * 10, 200),
    resyncIntervalMs: 10_000,
    routing,
    bgpRunDir,
    cniSocket,
    bgpHoldTimeSeconds,
    bgpSecretsDir,
    dataplane,
    allowIPIPPacketsFromWorkloads,
    allowVXLANPacketsFromWorkloads,
    defaultEndpointToHostAction,
    ...(ctNewFlowBudget === undefined ? {} : { ctNewFlowBudget }),
    traceVerdicts: false,
    natOutgoingAddress: undefined,
    natPortRange: undefined,
    ipipMtu: undefined,
    vxlanMtu: undefined,
    xdpEnabled: true,
    genericXdpEnabled: false,
    localSettings,
  };
}

/**
 * The kubeconfig file a setting names: KUBECONFIG may be a list (kubectl merges it); the
 * first entry is the file read (tortie does not merge kubeconfigs). undefined: none given.
 */
export function kubeconfigPath(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const first = text
    .split(':')
    .map((s) => s.trim())
    .find((s) => s !== '');
  return first;
}

function kebab(name: string): string {
  if (name === 'ip') return 'ip';
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

function fileKey(flag: keyof AgentFlags): string {
  switch (flag) {
    case 'ip':
      return 'ipv4Address';
    case 'etcdCaCert':
      return 'etcdCACert';
    case 'datastore':
      return 'datastoreType';
    case 'heartbeatTtl':
      return 'heartbeatTtlSeconds';
    case 'reportInterval':
      return 'reportIntervalSeconds';
    case 'bgpHoldTime':
      return 'bgpHoldTimeSeconds';
    case 'allowIpipPacketsFromWorkloads':
      return 'allowIPIPPacketsFromWorkloads';
    case 'allowVxlanPacketsFromWorkloads':
      return 'allowVXLANPacketsFromWorkloads';
    default:
      return flag;
  }
}

/** Parses the YAML text of the file; problems name the file and the key. */
export function parseAgentConfigFile(
  text: string,
  fileName: string,
  parseYaml: (t: string) => unknown,
): AgentConfigFile {
  let raw: unknown;
  try {
    raw = parseYaml(text) ?? {};
  } catch (e) {
    throw new AgentConfigError([`${fileName} is not valid YAML: ${(e as Error).message}`]);
  }
  const parsed = agentConfigFileSchema.safeParse(raw);
  if (!parsed.success) {
    throw new AgentConfigError(
      parsed.error.issues.map((issue) =>
        issue.code === 'unrecognized_keys'
          ? `${fileName}: ${issue.keys.join(', ')}: unknown setting (known: ${Object.keys(agentConfigFileSchema.shape).join(', ')})`
          : `${fileName}: ${issue.path.join('.') || '(file)'}: ${issue.message}`,
      ),
    );
  }
  return parsed.data;
}

/**
 * Partial configs for tests and the lab: defaults filled in, nothing read from the
 * machine. A cluster setting given here counts as given locally (it wins over the
 * datastore's configuration), unless `localSettings` says otherwise.
 */
export function agentConfig(
  overrides: Partial<AgentConfig> & { nodeName: string; etcd: ConnectOptions },
): AgentConfig {
  const base = resolveAgentConfig({ hostname: overrides.nodeName, env: {} });
  const localSettings: Partial<Record<ClusterSetting, string>> = {};
  for (const s of CLUSTER_SETTINGS)
    if (overrides[s] !== undefined) localSettings[s] = "the agent's options";
  // A CNI socket only when asked: in-process agents (tests, labs) must not all claim the default.
  return { ...base, cniSocket: undefined, localSettings, ...overrides };
}
