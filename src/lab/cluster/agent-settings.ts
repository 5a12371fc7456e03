/**
 * What a lab node's agent runs with — one description, built in one place
 * (`labAgentSettings`), whether the agent runs inline (an `Agent` in this process) or as
 * a process (`tortie node run`, ./agent-process.ts). The two translations sit side by
 * side here: `inlineAgentConfig` for `Agent.start`, `nodeRunArgs` for the command line.
 */
import { agentConfig } from '../../agent/index.js';
import { clientTls, type EtcdTlsFiles } from '../etcd-tls.js';
import { clusterNames, labCniSocket } from './names.js';

/** Timing of every lab agent: quick heartbeats and reports, a short debounce. */
export const LAB_AGENT_TIMING = {
  heartbeatTtlSeconds: 5,
  reportIntervalSeconds: 1,
  debounceMs: 10,
} as const;

/**
 * The agents' etcd call deadline. A `tortie node run` agent gets it from its defaults
 * (`resolveAgentConfig`); an inline agent gets it here — the same value.
 */
export const LAB_AGENT_ETCD_TIMEOUT_MS = 3000;

export interface LabAgentSettings {
  readonly nodeName: string;
  /** Path of the node's network namespace (e.g. /run/netns/tortie-x-n0). */
  readonly nodeNetns: string;
  /** The node's underlay address with prefix length, e.g. 192.168.231.1/24. */
  readonly ipv4Address: string;
  readonly pinRoot: string;
  readonly etcdEndpoints: readonly string[];
  readonly etcdPrefix: string;
  /**
   * `--datastore kubernetes --kubeconfig FILE`: the agent reads the Kubernetes API with
   * this kubeconfig instead of etcd (absent: etcd).
   */
  readonly kubeconfig?: string;
  /** `--etcd-ca-cert`, `--etcd-cert`, `--etcd-key`: etcd requires client certificates. */
  readonly etcdTls?: { readonly ca: string; readonly cert: string; readonly key: string };
  readonly etcdTimeoutMs: number;
  /** A process agent's JSON log lines are appended here (kept across restarts). */
  readonly logFile: string;
  readonly heartbeatTtlSeconds: number;
  readonly reportIntervalSeconds: number;
  readonly debounceMs: number;
  /** A process agent's `--log-level` (default info). */
  readonly logLevel?: 'debug' | 'info' | 'warn';
  /** `--routing` (absent: the agent's default, static). */
  readonly routing?: 'static' | 'bgp';
  /** `--bgp-run-dir`: where the node's BIRD keeps its files. */
  readonly bgpRunDir?: string;
  /** `--cni-socket`: where the agent serves the lab's CNI calls (labCniSocket). */
  readonly cniSocket: string;
  /** `--bgp-hold-time` in seconds. */
  readonly bgpHoldTimeSeconds?: number;
  /** `--bgp-secrets-dir`: the lab's BGP passwords (`<bgpRunDir>/secrets`). */
  readonly bgpSecretsDir?: string;
  /** `--dataplane` (absent: the agent's default, bpf). */
  readonly dataplane?: 'bpf' | 'iptables';
  /** `--default-endpoint-to-host-action` (absent: the agent's default, Drop). */
  readonly endpointToHostAction?: 'Drop' | 'Accept' | 'Return';
  /** `--labels k=v,…`: labels the agent merges into its Node (absent: none given). */
  readonly labels?: Readonly<Record<string, string>>;
}

/** What of the lab the agents' settings depend on. */
export interface LabAgentContext {
  readonly id: string;
  readonly etcdEndpoints: readonly string[];
  /** The agents' kubeconfig (the Kubernetes datastore); undefined: etcd. */
  readonly agentKubeconfig?: string | undefined;
  readonly etcdTls: EtcdTlsFiles | undefined;
  readonly routing: 'static' | 'bgp';
  readonly bgpRunDir: string;
  readonly bgpHoldTimeSeconds: number;
  readonly dataplane: 'bpf' | 'iptables';
  readonly endpointToHostAction: 'Drop' | 'Accept' | 'Return' | undefined;
}

/** Where a lab's agents read BGP passwords (secretKeyRef): beside its BIRD files. */
export function labBgpSecretsDir(bgpRunDir: string): string {
  return `${bgpRunDir}/secrets`;
}

/** The one builder: the settings of node `node`'s agent in the lab `lab`. */
export function labAgentSettings(
  lab: LabAgentContext,
  node: {
    readonly name: string;
    readonly netns: string;
    readonly underlayIp: string;
    readonly pinRoot: string;
  },
  extra: { readonly logFile: string; readonly labels?: Readonly<Record<string, string>> },
): LabAgentSettings {
  return {
    nodeName: node.name,
    nodeNetns: node.netns,
    ipv4Address: `${node.underlayIp}/24`,
    pinRoot: node.pinRoot,
    etcdEndpoints: lab.etcdEndpoints,
    etcdPrefix: clusterNames(lab.id).etcdPrefix,
    ...(lab.agentKubeconfig === undefined ? {} : { kubeconfig: lab.agentKubeconfig }),
    ...(lab.etcdTls === undefined ? {} : { etcdTls: clientTls(lab.etcdTls) }),
    etcdTimeoutMs: LAB_AGENT_ETCD_TIMEOUT_MS,
    logFile: extra.logFile,
    cniSocket: labCniSocket(lab.id, node.name),
    ...LAB_AGENT_TIMING,
    ...(lab.dataplane === 'iptables' ? { dataplane: 'iptables' as const } : {}),
    ...(lab.endpointToHostAction === undefined
      ? {}
      : { endpointToHostAction: lab.endpointToHostAction }),
    ...(extra.labels === undefined ? {} : { labels: { ...extra.labels } }),
    ...(lab.routing === 'bgp'
      ? {
          routing: 'bgp' as const,
          bgpRunDir: lab.bgpRunDir,
          bgpHoldTimeSeconds: lab.bgpHoldTimeSeconds,
          bgpSecretsDir: labBgpSecretsDir(lab.bgpRunDir),
        }
      : {}),
  };
}

/** The settings as the configuration of an in-process `Agent`. */
export function inlineAgentConfig(s: LabAgentSettings): ReturnType<typeof agentConfig> {
  if (s.kubeconfig !== undefined)
    throw new Error(
      `agent of ${s.nodeName}: on the Kubernetes datastore the lab runs its agents as processes (tortie node run --datastore kubernetes)`,
    );
  return agentConfig({
    nodeName: s.nodeName,
    etcd: {
      endpoints: s.etcdEndpoints,
      prefix: s.etcdPrefix,
      timeoutMs: s.etcdTimeoutMs,
      ...(s.etcdTls === undefined ? {} : { tls: s.etcdTls }),
    },
    pinRoot: s.pinRoot,
    nodeNetns: s.nodeNetns,
    ipv4Address: s.ipv4Address,
    healthPort: 0,
    heartbeatTtlSeconds: s.heartbeatTtlSeconds,
    reportIntervalSeconds: s.reportIntervalSeconds,
    debounceMs: s.debounceMs,
    ...(s.dataplane === undefined ? {} : { dataplane: s.dataplane }),
    ...(s.endpointToHostAction === undefined
      ? {}
      : { defaultEndpointToHostAction: s.endpointToHostAction }),
    ...(s.labels === undefined ? {} : { labels: { ...s.labels } }),
    ...(s.routing === undefined ? {} : { routing: s.routing }),
    ...(s.bgpRunDir === undefined ? {} : { bgpRunDir: s.bgpRunDir }),
    cniSocket: s.cniSocket,
    ...(s.bgpHoldTimeSeconds === undefined ? {} : { bgpHoldTimeSeconds: s.bgpHoldTimeSeconds }),
    ...(s.bgpSecretsDir === undefined ? {} : { bgpSecretsDir: s.bgpSecretsDir }),
  });
}

/** The settings as the arguments of `tortie node run` (after the path of main.js). */
export function nodeRunArgs(s: LabAgentSettings): string[] {
  return [
    'node',
    'run',
    '--node-name',
    s.nodeName,
    '--ip',
    s.ipv4Address,
    '--pin-root',
    s.pinRoot,
    '--node-netns',
    s.nodeNetns,
    '--health-port',
    '0',
    '--heartbeat-ttl',
    String(s.heartbeatTtlSeconds),
    '--report-interval',
    String(s.reportIntervalSeconds),
    '--debounce-ms',
    String(s.debounceMs),
    // No --log-level unless asked: as inline agents, FelixConfiguration may set it.
    ...(s.logLevel === undefined ? [] : ['--log-level', s.logLevel]),
    ...(s.kubeconfig === undefined
      ? ['--etcd-endpoints', s.etcdEndpoints.join(','), '--etcd-prefix', s.etcdPrefix]
      : ['--datastore', 'kubernetes', '--kubeconfig', s.kubeconfig]),
    ...(s.etcdTls === undefined
      ? []
      : [
          '--etcd-ca-cert',
          s.etcdTls.ca,
          '--etcd-cert',
          s.etcdTls.cert,
          '--etcd-key',
          s.etcdTls.key,
        ]),
    // No /etc/tortie/agent.yaml of the machine leaks into a lab node.
    '--agent-config',
    '/dev/null',
    ...(s.routing === undefined ? [] : ['--routing', s.routing]),
    ...(s.dataplane === undefined ? [] : ['--dataplane', s.dataplane]),
    ...(s.endpointToHostAction === undefined
      ? []
      : ['--default-endpoint-to-host-action', s.endpointToHostAction]),
    ...(s.bgpRunDir === undefined ? [] : ['--bgp-run-dir', s.bgpRunDir]),
    '--cni-socket',
    s.cniSocket,
    ...(s.bgpHoldTimeSeconds === undefined
      ? []
      : ['--bgp-hold-time', String(s.bgpHoldTimeSeconds)]),
    ...(s.bgpSecretsDir === undefined ? [] : ['--bgp-secrets-dir', s.bgpSecretsDir]),
    ...(s.labels === undefined || Object.keys(s.labels).length === 0
      ? []
      : [
          '--labels',
          Object.entries(s.labels)
            .map(([k, v]) => `${k}=${v}`)
            .join(','),
        ]),
  ];
}
