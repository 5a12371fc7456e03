/**
 * A multi-node lab on one machine:
 *
 *   pods ── veth (real CNI plugin) ── node n0 (ns) ── ul ─┐
 *                                                         ├─ br0 in the underlay ns
 *   pods ── veth (real CNI plugin) ── node n1 (ns) ── ul ─┘
 *
 * One etcd (startEtcd), an IPPool (ipipMode Always or Never), one Agent per node running
 * in this process (own pin root, own node namespace, `--ip` its underlay address). Pods
 * are namespaces plumbed by the real CNI plugin (ADD through the installed shim, with
 * `host_netns` = the node's namespace), then running the lab's pod process (echo
 * servers and a prober).
 *
 * Every name carries the lab id: namespaces `tortie-<id>-…`, pins
 * `/sys/fs/bpf/tortie-<id>-n<i>`, etcd members `tortie-<id>-etcd<i>`, temp dirs
 * `tortie-etcd-<id>-…` / `tortie-cluster-<id>-…`. `destroyClusterLab(id)` removes all of
 * it by those names, also after a crash. Underlay addresses exist only inside the lab's
 * namespaces.
 *
 * A persistent lab (`persist: true`, what `tortie lab up` builds) outlives the process
 * that built it: etcd runs detached, the agents are processes (AgentProcess), pod
 * processes are detached, and `/run/tortie/labs/<id>/state.json` (./state.ts) names all of
 * it. `ClusterLab.open(id)` re-attaches to such a lab from another process; `close()` lets
 * go of it (it keeps running), `down()` removes it.
 */
import { execFile } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { Agent, agentConfig, silentLogger } from '../../agent/index.js';
import { installCni } from '../../cni/install.js';
import { invokePlugin } from '../../cni/invoke.js';
import { Datastore } from '../../datastore/index.js';
import { removePins } from '../../loader/index.js';
import { createNetns, deleteNetns, netnsPath } from '../../plumbing/index.js';
import { preflightLab } from '../../preflight/index.js';
import { attachEtcd, etcdClusterState, pidAlive, startEtcd, type EtcdCluster } from '../etcd.js';
import { clientTls, makeEtcdCertificates, type EtcdTlsFiles } from '../etcd-tls.js';
import { PodProcess } from '../pod-handle.js';
import { AgentProcess, type AgentProcessOptions } from './agent-process.js';
import {
  configFile,
  LABS_DIR,
  labDir,
  readState,
  STATE_VERSION,
  stateFile,
  writeAtomically,
  writeState,
  type LabPodState,
  type LabState,
} from './state.js';

const exec = promisify(execFile);

/** 'vxlan' (pool vxlanMode Always, the kernel's vxlan device) needs dataplane 'iptables'. */
export type Encap = 'ipip' | 'none' | 'vxlan';

export interface ClusterUpOptions {
  /** 1-8 lower-case letters or digits; names everything the lab makes. */
  readonly id: string;
  readonly nodes: number;
  readonly encap: Encap;
  /** The underlay /24 (first three octets); default 192.168.231. Only inside the lab's namespaces. */
  readonly underlay?: string;
  /** The pod pool; default 10.231.0.0/16 with /26 blocks. */
  readonly podCidr?: string;
  /** Log the agents (JSON lines on stdout); default silent. */
  readonly verbose?: boolean;
  /**
   * 'inline' (default): one Agent object per node in this process. 'process': one
   * `tortie node run` process per node (AgentProcess), logs in the lab's work dir — what
   * restart and kill -9 checks need.
   */
  readonly agents?: 'inline' | 'process';
  /** etcd members on loopback: 1 (default) or 3 (a quorum, as production runs it). */
  readonly etcdMembers?: 1 | 3;
  /**
   * Keep the lab after this process ends (what `tortie lab up` does): etcd detached,
   * agents as processes ('inline' is refused), pod processes detached once `close()`
   * lets go, everything named in /run/tortie/labs/<id>/state.json. Default false.
   */
  readonly persist?: boolean;
  /**
   * 'static' (default): the agents compute remote routes from IPAM. 'bgp': every agent
   * runs BIRD in its node namespace (files under the lab's work dir, `bird/`), a node
   * mesh over the underlay; routes come from what BIRD learns.
   */
  readonly routing?: 'static' | 'bgp';
  /** BGP hold time of the lab's BIRDs (routing 'bgp'); default 6 s (keepalive 2 s). */
  readonly bgpHoldTimeSeconds?: number;
  /**
   * An external router (a top-of-rack) on the underlay (routing 'bgp'): namespace
   * `tortie-<id>-tor`, address `<underlay>.250`, FRR (zebra + bgpd, Debian package `frr`)
   * in AS 64999 accepting a session from every underlay address (`bgp listen range`), its
   * files under the lab's work dir (`tor/`). The lab stores a global BGPPeer `tor`
   * (`peerIP` .250, `asNumber` 64999): every node peers with it. Default false.
   */
  readonly tor?: boolean;
  /**
   * The agents' dataplane: 'bpf' (default) or 'iptables' (`--dataplane iptables`; encap
   * 'none' or 'vxlan', not 'ipip').
   */
  readonly dataplane?: 'bpf' | 'iptables';
  /**
   * The agents' defaultEndpointToHostAction (`--default-endpoint-to-host-action`): what a
   * pod's new flow to its own node gets after its egress policy. Default: the agent's, Drop.
   * Nothing the lab itself does needs pods to reach their node.
   */
  readonly endpointToHostAction?: 'Drop' | 'Accept' | 'Return';
  /**
   * etcd with TLS client certificates (`tortie lab up --etcd-tls`): a CA, a server and a
   * client certificate made at start (./etcd-tls.ts) in the lab's state dir (`tls/`) or a
   * temp dir; the members serve https only with `--client-cert-auth`; the agents, the CNI
   * config (`etcd_ca_cert_file`, …) and the lab's tortie.yaml use the client certificate.
   * Default false.
   */
  readonly etcdTls?: boolean;
}

/** The lab's external router (`tor: true`). */
export interface LabTor {
  /** Namespace name (`tortie-<id>-tor`) and path. */
  readonly netnsName: string;
  readonly netns: string;
  readonly ip: string;
  readonly asNumber: number;
  /** FRR's configuration, pid files, vty sockets, logs: `vtysh --vty_socket <dir>`. */
  readonly dir: string;
}

/** The ToR's AS number and host part of its underlay address. */
export const TOR_AS_NUMBER = 64999;
export const TOR_HOST = 250;
const FRR_DIR = '/usr/lib/frr';

export interface ClusterPodSpec {
  readonly namespace: string;
  readonly name: string;
  readonly labels: Record<string, string>;
  /** Node index (0-based) or node name. */
  readonly node: number | string;
  /** What the pod process serves, e.g. "tcp:80,udp:80" (default). */
  readonly servers?: string;
}

export interface ClusterNode {
  readonly name: string;
  readonly netns: string; // path
  readonly underlayIp: string;
  readonly pinRoot: string;
  /** The in-process agent ('inline' labs). */
  agent?: Agent;
  /** The agent process ('process' labs). */
  process?: AgentProcess;
}

export interface ClusterPod {
  readonly key: string; // namespace/name
  readonly namespace: string;
  readonly name: string;
  readonly node: string;
  readonly ip: string;
  readonly netns: string;
  readonly containerId: string;
  /**
   * The pod's process, to probe from. A pod of a lab opened with `ClusterLab.open` runs
   * detached (started by another process): reading this throws; use the lab's
   * `probe` / `matrix`, which start a short-lived prober in the pod.
   */
  readonly process: PodProcess;
  /** Its labels as given to the CNI plugin. */
  readonly labels?: Record<string, string>;
  /** What its process serves ("tcp:80,udp:80"). */
  readonly servers?: string;
  /** Persistent labs: the pid of the pod's (detached) process. */
  readonly pid?: number;
}

/** Timing settings of every lab agent. */
const AGENT_TIMING = { heartbeatTtlSeconds: 5, reportIntervalSeconds: 1, debounceMs: 10 } as const;

export const NETWORK = 'tortie-lab';

export function clusterNames(id: string): {
  prefix: string;
  underlay: string;
  node: (i: number) => string;
  pinRoot: (i: number) => string;
  etcdPrefix: string;
} {
  if (!/^[a-z0-9]{1,8}$/.test(id)) {
    throw new Error(`cluster lab id "${id}": use 1-8 lower-case letters or digits`);
  }
  return {
    prefix: `tortie-${id}-`,
    underlay: `tortie-${id}-ul`,
    node: (i) => `tortie-${id}-n${i}`,
    pinRoot: (i) => `/sys/fs/bpf/tortie-${id}-n${i}`,
    etcdPrefix: `/tortie-${id}`,
  };
}

async function nsRun(
  nsPath: string,
  file: string,
  args: string[],
  stdin?: string,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'nsenter',
      [`--net=${nsPath}`, '--', file, ...args],
      { timeout: 20_000 },
      (err, stdout, stderr) => {
        if (err)
          reject(new Error(`${file} ${args.join(' ')} in ${nsPath}: ${err.message} ${stderr}`));
        else resolve(stdout);
      },
    );
    if (stdin !== undefined) child.stdin!.end(stdin);
  });
}

/**
 * Node `i` of lab `id`: its namespace `tortie-<id>-n<i>`, a veth `ul` to the underlay
 * bridge with address `<prefix>.<i+1>/24`, a default route on it (proxy ARP for the pods'
 * gateway needs one), forwarding on. The namespace is removed again if a step fails.
 */
async function plumbNode(
  id: string,
  i: number,
  ulPath: string,
  underlayPrefix: string,
): Promise<ClusterNode> {
  const names = clusterNames(id);
  const nodeNs = names.node(i);
  const port = `t${id}p${i}`.slice(0, 15);
  const ip = `${underlayPrefix}.${i + 1}`;
  const path = await createNetns(nodeNs);
  try {
    await nsRun(ulPath, 'ip', [
      'link',
      'add',
      port,
      'type',
      'veth',
      'peer',
      'name',
      'ul',
      'netns',
      nodeNs,
    ]);
    await nsRun(ulPath, 'ip', ['link', 'set', port, 'master', 'br0', 'up']);
    await nsRun(
      path,
      'ip',
      ['-batch', '-'],
      [
        'link set lo up',
        `addr add ${ip}/24 dev ul`,
        'link set ul up',
        'route add default dev ul',
      ].join('\n') + '\n',
    );
    await nsRun(path, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
  } catch (e) {
    await deleteNetns(nodeNs).catch(() => undefined);
    throw e;
  }
  return {
    name: nodeNs.replace(/^tortie-/, ''),
    netns: path,
    underlayIp: ip,
    pinRoot: names.pinRoot(i),
  };
}

export class ClusterLab {
  readonly nodes: ClusterNode[] = [];
  readonly pods: ClusterPod[] = [];
  readonly namespacesSeen = new Set<string>();
  etcd?: EtcdCluster;
  store?: Datastore;
  /** The lab outlives this process (built with `persist`, or re-attached with `open`). */
  persistent = false;
  private shim = '';
  private workDir = '';
  private createdAt = new Date().toISOString();
  /** Pod processes this object started and still talks to, by pod key. */
  private readonly live = new Map<string, PodProcess>();
  /** How the agents route ('bgp': BIRD per node). */
  routing: 'static' | 'bgp' = 'static';
  bgpHoldTimeSeconds = 6;
  /** The external router (`tor: true`). */
  tor: LabTor | undefined;
  /** The agents' dataplane. */
  dataplane: 'bpf' | 'iptables' = 'bpf';
  /** The agents' defaultEndpointToHostAction; undefined: the agents' default (Drop). */
  endpointToHostAction: 'Drop' | 'Accept' | 'Return' | undefined;
  /** etcd requires client certificates; these are the lab's (`etcdTls: true`). */
  etcdTls: EtcdTlsFiles | undefined;

  private constructor(
    readonly id: string,
    readonly encap: Encap,
    readonly underlayPrefix: string,
    readonly podCidr: string,
    private readonly verbose: boolean,
  ) {}

  get description(): string {
    return `${this.nodes.length} nodes, ${this.dataplane === 'iptables' ? 'iptables' : 'BPF'} dataplane, agents + etcd, encap ${this.encap}${this.routing === 'bgp' ? ', BGP (BIRD node mesh)' : ''}${this.tor === undefined ? '' : `, ToR ${this.tor.ip} (FRR, AS ${this.tor.asNumber})`}${this.etcdTls === undefined ? '' : ', etcd TLS with client certificates'}`;
  }

  /** Builds the whole lab; on any failure removes what it made and throws. */
  static async up(opts: ClusterUpOptions): Promise<ClusterLab> {
    const names = clusterNames(opts.id);
    if (opts.nodes < 1 || opts.nodes > 50) throw new Error('nodes: 1 to 50');
    if (opts.tor === true && opts.routing !== 'bgp')
      throw new Error("tor: the external router peers over BGP: use routing 'bgp'");
    if (opts.tor === true && !existsSync(`${FRR_DIR}/bgpd`))
      throw new Error(`tor: FRR is not installed (${FRR_DIR}/bgpd): apt-get install frr`);
    const persist = opts.persist ?? false;
    if (persist && opts.agents === 'inline')
      throw new Error('a persistent lab runs its agents as processes: leave agents unset');
    const agents = persist ? 'process' : (opts.agents ?? 'inline');
    // Never touch a lab that is there: refuse before making anything (the cleanup on a
    // failure below would remove it).
    const existing = labPresence(opts.id);
    if (existing.length > 0)
      throw new LabExistsError(
        `lab "${opts.id}" already exists (${existing.join('; ')}): remove it first with tortie lab down --id ${opts.id}`,
      );
    const lab = new ClusterLab(
      opts.id,
      opts.encap,
      opts.underlay ?? '192.168.231',
      opts.podCidr ?? '10.231.0.0/16',
      opts.verbose ?? false,
    );
    lab.routing = opts.routing ?? 'static';
    lab.bgpHoldTimeSeconds = opts.bgpHoldTimeSeconds ?? 6;
    lab.dataplane = opts.dataplane ?? 'bpf';
    lab.endpointToHostAction = opts.endpointToHostAction;
    if (lab.dataplane === 'iptables' && opts.encap === 'ipip')
      throw new Error(
        "dataplane iptables cannot encapsulate IPIP (the kernel here has no ipip module): use encap 'none' or 'vxlan'",
      );
    if (lab.dataplane === 'bpf' && opts.encap === 'vxlan')
      throw new Error("encap 'vxlan' is for dataplane 'iptables' (the BPF dataplane does IPIP)");
    // The kernel part of `tortie node checksystem`, before anything is made: a missing
    // feature is refused here, named with its config option, not met deep in the lab.
    await preflightLab(`lab ${opts.id}`);
    if (persist) {
      mkdirSync(LABS_DIR, { recursive: true });
      try {
        mkdirSync(labDir(opts.id)); // exclusive: a second `lab up --id` at once fails here
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST')
          throw new LabExistsError(
            `lab "${opts.id}" already exists (${labDir(opts.id)}): remove it first with tortie lab down --id ${opts.id}`,
          );
        throw e;
      }
      lab.persistent = true;
    }
    try {
      // Underlay: a bridge namespace, one veth per node.
      const ulPath = await createNetns(names.underlay);
      await nsRun(
        ulPath,
        'ip',
        ['-batch', '-'],
        'link set lo up\nlink add br0 type bridge\nlink set br0 up\n',
      );
      for (let i = 0; i < opts.nodes; i++) {
        lab.nodes.push(await plumbNode(opts.id, i, ulPath, lab.underlayPrefix));
      }
      // etcd (its certificates first, with etcdTls), the pool.
      if (opts.etcdTls === true)
        lab.etcdTls = await makeEtcdCertificates(
          persist
            ? join(labDir(opts.id), 'tls')
            : mkdtempSync(join(tmpdir(), `tortie-cluster-${opts.id}-tls-`)),
          opts.id,
        );
      const tls = lab.etcdTls === undefined ? {} : { tls: lab.etcdTls };
      lab.etcd = persist
        ? await startEtcd(opts.id, opts.etcdMembers ?? 1, {
            detached: true,
            baseDir: join(labDir(opts.id), 'etcd'),
            ...tls,
          })
        : await startEtcd(opts.id, opts.etcdMembers ?? 1, tls);
      lab.store = await Datastore.connect({
        endpoints: lab.etcd.endpoints,
        prefix: names.etcdPrefix,
        ...lab.clientTls(),
      });
      await lab.store.apply([
        {
          apiVersion: 'tortie.io/v1',
          kind: 'IPPool',
          metadata: { name: 'lab' },
          spec: {
            cidr: lab.podCidr,
            blockSize: 26,
            ipipMode: opts.encap === 'ipip' ? 'Always' : 'Never',
            ...(opts.encap === 'vxlan' ? { vxlanMode: 'Always' } : {}),
          },
        },
      ]);
      // The CNI plugin, installed as a runtime would find it.
      if (persist) {
        lab.workDir = labDir(opts.id);
        mkdirSync(join(lab.workDir, 'logs'));
      } else lab.workDir = mkdtempSync(join(tmpdir(), `tortie-cluster-${opts.id}-`));
      // The external router, and the BGPPeer that makes every node peer with it.
      if (opts.tor === true) {
        lab.tor = await startTor(opts.id, ulPath, lab.underlayPrefix, lab.workDir);
        await lab.store.apply([
          {
            apiVersion: 'tortie.io/v1',
            kind: 'BGPPeer',
            metadata: { name: 'tor' },
            spec: { peerIP: lab.tor.ip, asNumber: lab.tor.asNumber },
          },
        ]);
      }
      ({ shim: lab.shim } = await installCni({ binDir: join(lab.workDir, 'bin') }));
      // One agent per node.
      if (agents === 'process') {
        await Promise.all(
          lab.nodes.map(async (n) => {
            n.process = new AgentProcess(lab.agentOptions(n));
            await n.process.start('ready');
          }),
        );
      } else
        await Promise.all(
          lab.nodes.map(async (n) => {
            n.agent = await Agent.start(
              lab.inlineAgentConfig(n),
              lab.verbose ? {} : { log: silentLogger() },
            );
          }),
        );
      if (persist) {
        writeAtomically(
          configFile(opts.id),
          [
            `# tortie CLI config of lab ${opts.id} (written by tortie lab up)`,
            `#   export TORTIE_CONFIG=${configFile(opts.id)}`,
            'etcdEndpoints:',
            ...lab.etcd.endpoints.map((e) => `  - ${e}`),
            `etcdPrefix: ${names.etcdPrefix}`,
            ...(lab.etcdTls === undefined
              ? []
              : [
                  `etcdCACert: ${lab.etcdTls.ca}`,
                  `etcdCert: ${lab.etcdTls.clientCert}`,
                  `etcdKey: ${lab.etcdTls.clientKey}`,
                ]),
            '',
          ].join('\n'),
        );
        lab.save();
      }
    } catch (e) {
      await lab.down().catch(() => undefined);
      throw e;
    }
    return lab;
  }

  /**
   * Re-attaches to a persistent lab from its state file (built by another process with
   * `persist`). `connect: false` skips the datastore connection (probe, exec, down need
   * none). Its pods run detached: probe them with `probe` / `matrix`.
   */
  static async open(id: string, opts: { connect?: boolean } = {}): Promise<ClusterLab> {
    clusterNames(id);
    const state = readState(id);
    if (state === undefined) {
      const left = labPresence(id);
      throw new LabNotFoundError(
        left.length > 0
          ? `lab "${id}" has no state file ${stateFile(id)} (its build crashed?); remove what is left with tortie lab down --id ${id}`
          : `no lab "${id}": build one with tortie lab up --id ${id}`,
      );
    }
    const lab = new ClusterLab(id, state.encap, state.underlay, state.podCidr, false);
    lab.persistent = true;
    lab.dataplane = state.dataplane ?? 'bpf';
    lab.endpointToHostAction = state.endpointToHostAction;
    lab.shim = state.cniShim;
    lab.workDir = state.workDir;
    lab.createdAt = state.createdAt;
    lab.etcd = attachEtcd(state.etcd);
    lab.etcdTls = state.etcd.tls;
    // The state file predates routing: a lab whose nodes run BIRD has its run dir.
    if (existsSync(lab.bgpRunDir)) lab.routing = 'bgp';
    if (existsSync(join(lab.workDir, 'tor')) && labNetns(id).includes(`tortie-${id}-tor`))
      lab.tor = torOf(id, state.underlay, lab.workDir);
    for (const n of state.nodes) {
      const node: ClusterNode = {
        name: n.name,
        netns: n.netns,
        underlayIp: n.underlayIp,
        pinRoot: n.pinRoot,
      };
      const pid = pidAlive(n.agentPid) ? n.agentPid : findAgentPid(n.pinRoot);
      node.process = AgentProcess.adopt(lab.agentOptions(node, n.agentLog), pid);
      lab.nodes.push(node);
    }
    for (const p of state.pods) lab.pods.push(detachedPod(p));
    if (opts.connect !== false) {
      lab.store = await Datastore.connect({
        endpoints: lab.etcd.endpoints,
        prefix: state.etcdPrefix,
        ...lab.clientTls(),
      });
    }
    return lab;
  }

  /** Where the nodes' BIRDs keep config, socket, pid file and log (routing 'bgp'). */
  get bgpRunDir(): string {
    return join(this.workDir, 'bird');
  }

  /** `{ tls }` for src/datastore when etcd requires client certificates, else nothing. */
  clientTls(): { tls?: { ca: string; cert: string; key: string } } {
    return this.etcdTls === undefined ? {} : { tls: clientTls(this.etcdTls) };
  }

  private agentOptions(n: ClusterNode, logFile?: string): AgentProcessOptions {
    return {
      nodeName: n.name,
      nodeNetns: n.netns,
      ipv4Address: `${n.underlayIp}/24`,
      pinRoot: n.pinRoot,
      etcdEndpoints: this.etcd!.endpoints,
      etcdPrefix: clusterNames(this.id).etcdPrefix,
      ...(this.etcdTls === undefined ? {} : { etcdTls: clientTls(this.etcdTls) }),
      logFile:
        logFile ??
        (this.persistent
          ? join(this.workDir, 'logs', `agent-${n.name}.log`)
          : join(this.workDir, `agent-${n.name}.log`)),
      ...AGENT_TIMING,
      ...(this.dataplane === 'iptables' ? { dataplane: 'iptables' as const } : {}),
      ...(this.endpointToHostAction === undefined
        ? {}
        : { endpointToHostAction: this.endpointToHostAction }),
      ...(this.routing === 'bgp'
        ? {
            routing: 'bgp' as const,
            bgpRunDir: this.bgpRunDir,
            bgpHoldTimeSeconds: this.bgpHoldTimeSeconds,
          }
        : {}),
    };
  }

  /** The state file's content for this (persistent) lab. */
  state(): LabState {
    const names = clusterNames(this.id);
    return {
      version: STATE_VERSION,
      id: this.id,
      createdAt: this.createdAt,
      encap: this.encap,
      ...(this.dataplane === 'iptables' ? { dataplane: 'iptables' as const } : {}),
      ...(this.endpointToHostAction === undefined
        ? {}
        : { endpointToHostAction: this.endpointToHostAction }),
      underlay: this.underlayPrefix,
      podCidr: this.podCidr,
      stateDir: labDir(this.id),
      workDir: this.workDir,
      configFile: configFile(this.id),
      cniShim: this.shim,
      etcdPrefix: names.etcdPrefix,
      nodes: this.nodes.map((n) => ({
        name: n.name,
        netnsName: n.netns.split('/').pop()!,
        netns: n.netns,
        underlayIp: n.underlayIp,
        pinRoot: n.pinRoot,
        ...(n.process?.pid === undefined ? {} : { agentPid: n.process.pid }),
        agentLog: n.process?.options.logFile ?? '',
      })),
      etcd: { endpoints: this.etcd!.endpoints, ...etcdClusterState(this.etcd!) },
      pods: this.pods.map((p) => ({
        key: p.key,
        namespace: p.namespace,
        name: p.name,
        node: p.node,
        ip: p.ip,
        netns: p.netns,
        containerId: p.containerId,
        labels: p.labels ?? {},
        servers: p.servers ?? '',
        ...(p.pid === undefined ? {} : { pid: p.pid }),
      })),
    };
  }

  /** Writes the state file (persistent labs). */
  save(): void {
    if (!this.persistent) throw new Error(`lab ${this.id} is not persistent: nothing to save`);
    writeState(this.state());
  }

  /**
   * Lets go of a persistent lab and leaves it running: pod processes started here are
   * detached, the datastore connection closed. The state file stays as last saved.
   */
  async close(): Promise<void> {
    if (!this.persistent)
      throw new Error(`lab ${this.id} is not persistent: remove it with down()`);
    for (const p of this.live.values()) p.detach();
    this.live.clear();
    await this.store?.close().catch(() => undefined);
    this.store = undefined;
  }

  node(ref: number | string): ClusterNode {
    const n = typeof ref === 'number' ? this.nodes[ref] : this.nodes.find((x) => x.name === ref);
    if (!n) throw new Error(`no node ${String(ref)}`);
    return n;
  }

  /**
   * Adds a node to a running lab, exactly as `up` builds each node: its namespace, a veth
   * `ul` to the underlay bridge with the next address (`<underlay>.<i + 1>/24`), forwarding
   * on, then its agent (a process when the lab's agents are processes, else inline) with
   * the lab's routing; `labels` go to the agent (`--labels`), which merges them into its
   * Node. Resolves once the agent is ready (first sync programmed), with the
   * `performance.now()` at which its start began. A persistent lab's state file is saved.
   */
  async addNode(
    opts: { labels?: Readonly<Record<string, string>> } = {},
  ): Promise<{ node: ClusterNode; agentStartedAt: number }> {
    const names = clusterNames(this.id);
    const taken = new Set(this.nodes.map((n) => n.name));
    let i = 0;
    while (taken.has(names.node(i).replace(/^tortie-/, ''))) i++;
    // .250 is the ToR's (`tor: true`).
    if (i + 1 >= 250) throw new Error(`lab ${this.id}: no underlay address left for a node`);
    const nodeNs = names.node(i);
    const inline = this.nodes.length > 0 && this.nodes.every((n) => n.agent !== undefined);
    let agentStartedAt = 0;
    let node: ClusterNode | undefined;
    try {
      node = await plumbNode(this.id, i, netnsPath(names.underlay), this.underlayPrefix);
      this.nodes.push(node);
      agentStartedAt = performance.now();
      if (inline) {
        node.agent = await Agent.start(
          this.inlineAgentConfig(node, opts.labels),
          this.verbose ? {} : { log: silentLogger() },
        );
      } else {
        node.process = new AgentProcess({
          ...this.agentOptions(node),
          ...(opts.labels === undefined ? {} : { labels: opts.labels }),
        });
        await node.process.start('ready');
      }
      if (this.persistent) this.save();
    } catch (e) {
      // Leave nothing of a node that failed: its agent, its namespace (the veth goes with it), its pins.
      await node?.agent?.stop().catch(() => undefined);
      await node?.process?.stop('SIGKILL').catch(() => undefined);
      if (node !== undefined && this.nodes.includes(node))
        this.nodes.splice(this.nodes.indexOf(node), 1);
      await deleteNetns(nodeNs).catch(() => undefined);
      const pinRoot = names.pinRoot(i);
      if (existsSync(pinRoot)) removePins(pinRoot);
      throw e;
    }
    return { node, agentStartedAt };
  }

  /** The configuration of an in-process agent for `node` (the lab's dataplane and routing). */
  private inlineAgentConfig(
    node: ClusterNode,
    labels?: Readonly<Record<string, string>>,
  ): ReturnType<typeof agentConfig> {
    return agentConfig({
      nodeName: node.name,
      etcd: {
        endpoints: this.etcd!.endpoints,
        prefix: clusterNames(this.id).etcdPrefix,
        timeoutMs: 3000,
        ...this.clientTls(),
      },
      pinRoot: node.pinRoot,
      nodeNetns: node.netns,
      ipv4Address: `${node.underlayIp}/24`,
      healthPort: 0,
      ...AGENT_TIMING,
      ...(this.dataplane === 'iptables' ? { dataplane: 'iptables' as const } : {}),
      ...(this.endpointToHostAction === undefined
        ? {}
        : { defaultEndpointToHostAction: this.endpointToHostAction }),
      ...(labels === undefined ? {} : { labels: { ...labels } }),
      ...(this.routing === 'bgp'
        ? {
            routing: 'bgp' as const,
            bgpRunDir: this.bgpRunDir,
            bgpHoldTimeSeconds: this.bgpHoldTimeSeconds,
          }
        : {}),
    });
  }

  /** A namespace for pods (the agent's kns.<name> profile needs it). */
  async createNamespace(name: string, labels: Record<string, string> = {}): Promise<void> {
    await this.store!.apply([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } }]);
    this.namespacesSeen.add(name);
  }

  /** Creates the pod namespace, runs the CNI plugin's ADD for it, starts its pod process. */
  async addPod(spec: ClusterPodSpec): Promise<ClusterPod> {
    const node = this.node(spec.node);
    const key = `${spec.namespace}/${spec.name}`;
    if (this.pods.some((p) => p.key === key)) throw new Error(`pod ${key} already exists`);
    if (!this.namespacesSeen.has(spec.namespace)) {
      // Create it only when missing: labels set on it since must stay.
      if ((await this.store!.get('Namespace', spec.namespace)) === undefined)
        await this.createNamespace(spec.namespace);
      else this.namespacesSeen.add(spec.namespace);
    }
    const nsName = podNetnsName(this.id, spec.namespace, spec.name);
    const netns = await createNetns(nsName);
    const containerId = `${this.id}-${spec.namespace}-${spec.name}`;
    const servers = spec.servers ?? 'tcp:80,udp:80';
    let process: PodProcess | undefined;
    try {
      const add = await invokePlugin({
        plugin: this.shim,
        command: 'ADD',
        containerId,
        netns,
        ifName: 'eth0',
        args: cniArgs(spec.namespace, spec.name),
        config: this.cniConfig(node, spec.labels),
      });
      if (add.exitCode !== 0) {
        throw new Error(
          `CNI ADD ${key} on ${node.name}: exit ${String(add.exitCode ?? add.signal)}: ${add.stdout}${add.stderr}`,
        );
      }
      const result = add.json as { ips?: { address: string }[] };
      const ip = result.ips?.[0]?.address.split('/')[0];
      if (!ip) throw new Error(`CNI ADD ${key}: no address in ${add.stdout}`);
      process = await PodProcess.start(netns, servers, { persist: this.persistent });
      const pid = this.persistent ? await podProcessPid(nsName) : undefined;
      const pod: ClusterPod = {
        key,
        namespace: spec.namespace,
        name: spec.name,
        node: node.name,
        ip,
        netns,
        containerId,
        process,
        labels: { ...spec.labels },
        servers,
        ...(pid === undefined ? {} : { pid }),
      };
      this.live.set(key, process);
      this.pods.push(pod);
      if (this.persistent) this.save();
      return pod;
    } catch (e) {
      // Leave nothing of a pod that failed: its process, address, endpoint, namespace.
      if (process) {
        const pid = this.persistent ? await podProcessPid(nsName) : undefined;
        if (pid !== undefined) killQuietly(pid);
        await process.stop().catch(() => undefined);
      }
      await this.cniDel(node, key, containerId, netns, spec.labels).catch(() => undefined);
      await deleteNetns(nsName).catch(() => undefined);
      throw e;
    }
  }

  /** CNI DEL for the pod, stops its process, deletes its namespace; saves a persistent lab. */
  async removePod(key: string): Promise<void> {
    const pod = this.pod(key);
    const node = this.node(pod.node);
    if (pod.pid !== undefined && isPodProcess(pod.pid)) killQuietly(pod.pid);
    await this.live
      .get(key)
      ?.stop()
      .catch(() => undefined);
    this.live.delete(key);
    await this.cniDel(node, key, pod.containerId, pod.netns, pod.labels ?? {});
    const nsName = pod.netns.split('/').pop()!;
    // Whatever else runs in it goes with it.
    for (const pid of await netnsPids(nsName)) killQuietly(pid);
    await deleteNetns(nsName);
    this.pods.splice(this.pods.indexOf(pod), 1);
    if (this.persistent) this.save();
  }

  private async cniDel(
    node: ClusterNode,
    key: string,
    containerId: string,
    netns: string,
    labels: Record<string, string>,
  ): Promise<void> {
    const [namespace, name] = key.split('/') as [string, string];
    const del = await invokePlugin({
      plugin: this.shim,
      command: 'DEL',
      containerId,
      netns,
      ifName: 'eth0',
      args: cniArgs(namespace, name),
      config: this.cniConfig(node, labels),
    });
    if (del.exitCode !== 0)
      throw new Error(
        `CNI DEL ${key} on ${node.name}: exit ${String(del.exitCode ?? del.signal)}: ${del.stdout}${del.stderr}`,
      );
  }

  private cniConfig(node: ClusterNode, labels: Record<string, string>): Record<string, unknown> {
    return {
      cniVersion: '1.0.0',
      name: NETWORK,
      type: 'tortie',
      datastore: { endpoints: this.etcd!.endpoints, prefix: clusterNames(this.id).etcdPrefix },
      ...(this.etcdTls === undefined
        ? {}
        : {
            etcd_ca_cert_file: this.etcdTls.ca,
            etcd_cert_file: this.etcdTls.clientCert,
            etcd_key_file: this.etcdTls.clientKey,
          }),
      nodename: node.name,
      host_netns: node.netns,
      mtu: this.encap === 'ipip' ? 1480 : this.encap === 'vxlan' ? 1450 : 1500,
      ipam: { type: 'tortie-ipam' },
      args: { tortie: { labels } },
    };
  }

  /** Reads the pod's WorkloadEndpoint, lets `edit` change it, writes it back. */
  async updateEndpoint(
    key: string,
    edit: (wep: {
      metadata: { labels?: Record<string, string> };
      spec: { ports?: { name: string; protocol: string; port: number }[] };
    }) => void,
  ): Promise<void> {
    const pod = this.pod(key);
    const weps = await this.store!.list('WorkloadEndpoint', { namespace: pod.namespace });
    const wep = weps.find((w) => w.spec.containerID === pod.containerId);
    if (!wep) throw new Error(`no WorkloadEndpoint for pod ${key}`);
    const copy = structuredClone(wep) as unknown as Parameters<typeof edit>[0];
    edit(copy);
    await this.store!.apply([copy]);
  }

  pod(key: string): ClusterPod {
    const p = this.pods.find((x) => x.key === key);
    if (!p) throw new Error(`no pod ${key}`);
    return p;
  }

  /** One connection attempt from pod `from` to pod `to` (keys "ns/name"). */
  probe(
    from: string,
    to: string,
    port = 80,
    protocol: 'tcp' | 'udp' = 'tcp',
    timeoutMs = 500,
  ): Promise<boolean> {
    const live = this.live.get(from);
    if (live) return live.probe(protocol, this.pod(to).ip, port, timeoutMs);
    return this.withProber(this.pod(from), (p) =>
      p.probe(protocol, this.pod(to).ip, port, timeoutMs),
    );
  }

  /** Runs `fn` with a short-lived prober (no servers) in the pod's namespace. */
  private async withProber<T>(pod: ClusterPod, fn: (p: PodProcess) => Promise<T>): Promise<T> {
    const prober = await PodProcess.start(pod.netns, '');
    try {
      return await fn(prober);
    } finally {
      await prober.stop();
    }
  }

  /** Every ordered pair of distinct pods: "from -> to" → reachable. */
  async matrix(
    port = 80,
    protocol: 'tcp' | 'udp' = 'tcp',
    timeoutMs = 500,
  ): Promise<Record<string, boolean>> {
    const pairs = this.pods.flatMap((a) =>
      this.pods.filter((b) => b !== a).map((b) => [a.key, b.key] as const),
    );
    if (this.pods.every((p) => this.live.has(p.key))) {
      const results = await Promise.all(
        pairs.map(([a, b]) => this.probe(a, b, port, protocol, timeoutMs)),
      );
      return Object.fromEntries(pairs.map(([a, b], i) => [`${a} -> ${b}`, results[i]!]));
    }
    // Detached pods: one source at a time, a short-lived prober in it, every target at once.
    const out: Record<string, boolean> = {};
    for (const a of this.pods) {
      const targets = this.pods.filter((b) => b !== a);
      const probeAll = (p: PodProcess) =>
        Promise.all(targets.map((b) => p.probe(protocol, b.ip, port, timeoutMs)));
      const live = this.live.get(a.key);
      const results = live ? await probeAll(live) : await this.withProber(a, probeAll);
      targets.forEach((b, i) => (out[`${a.key} -> ${b.key}`] = results[i]!));
    }
    return Object.fromEntries(pairs.map(([a, b]) => [`${a} -> ${b}`, out[`${a} -> ${b}`]!]));
  }

  /**
   * Waits until every node's agent (inline or process) has programmed a model holding
   * every change up to store `revision` — e.g. the highest resourceVersion an apply
   * returned.
   */
  async waitForRevision(revision: string | bigint, timeoutMs = 30_000): Promise<void> {
    await Promise.all(
      this.nodes.map((n) => {
        if (n.agent) return n.agent.waitForRevision(revision, timeoutMs);
        if (n.process) return n.process.waitForRevision(revision, timeoutMs);
        return Promise.reject(new Error(`node ${n.name} has no agent`));
      }),
    );
  }

  /** Removes everything this lab made (pods, agents, etcd, pins, namespaces, temp dirs). */
  async down(): Promise<void> {
    // Detached (persistent) pod processes do not end with their stdin: kill them.
    for (const p of this.pods) if (p.pid !== undefined && isPodProcess(p.pid)) killQuietly(p.pid);
    await Promise.all([...this.live.values()].map((p) => p.stop().catch(() => undefined)));
    this.live.clear();
    await Promise.all(this.nodes.map((n) => n.agent?.stop().catch(() => undefined)));
    await Promise.all(this.nodes.map((n) => n.process?.stop().catch(() => undefined)));
    await this.store?.close().catch(() => undefined);
    await this.etcd?.stop().catch(() => undefined);
    await destroyClusterLab(this.id);
  }
}

/** `lab up` for an id that is taken. */
export class LabExistsError extends Error {
  override readonly name = 'LabExistsError';
}

/** `open` for an id with no state file. */
export class LabNotFoundError extends Error {
  override readonly name = 'LabNotFoundError';
}

/** Netns names under /run/netns with this lab's prefix. */
function labNetns(id: string): string[] {
  const { prefix } = clusterNames(id);
  if (!existsSync('/run/netns')) return [];
  return readdirSync('/run/netns').filter((n) => n.startsWith(prefix));
}

/** What of a lab with this id is on the machine (empty: nothing). */
export function labPresence(id: string): string[] {
  const out: string[] = [];
  if (existsSync(stateFile(id))) out.push(`state file ${stateFile(id)}`);
  else if (existsSync(labDir(id))) out.push(`state directory ${labDir(id)}`);
  const ns = labNetns(id);
  if (ns.length > 0)
    out.push(`network namespaces ${ns.slice(0, 3).join(', ')}${ns.length > 3 ? ', …' : ''}`);
  return out;
}

/** The name of a pod's network namespace. */
export function podNetnsName(id: string, namespace: string, name: string): string {
  return `tortie-${id}-p-${namespace}-${name}`.slice(0, 60);
}

function cniArgs(namespace: string, name: string): string {
  return `IgnoreUnknown=1;K8S_POD_NAMESPACE=${namespace};K8S_POD_NAME=${name}`;
}

/** A pod of a persistent lab started by another process: no process to talk to. */
function detachedPod(s: LabPodState): ClusterPod {
  const pod = {
    key: s.key,
    namespace: s.namespace,
    name: s.name,
    node: s.node,
    ip: s.ip,
    netns: s.netns,
    containerId: s.containerId,
    labels: s.labels,
    servers: s.servers,
    ...(s.pid === undefined ? {} : { pid: s.pid }),
  };
  Object.defineProperty(pod, 'process', {
    enumerable: false,
    get(): never {
      throw new Error(
        `pod ${s.key} runs detached (started by another process): probe it with the lab's probe() / matrix()`,
      );
    },
  });
  return pod as ClusterPod;
}

async function netnsPids(nsName: string): Promise<number[]> {
  try {
    const { stdout } = await exec('ip', ['netns', 'pids', nsName]);
    return stdout.split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return [];
  }
}

/** Is `pid` a live lab pod process (not a reused pid)? */
export function isPodProcess(pid: number): boolean {
  return pidAlive(pid) && cmdline(pid).some((a) => a.endsWith('pod-process.js'));
}

/** The pod process running in the named namespace. */
async function podProcessPid(nsName: string): Promise<number | undefined> {
  return (await netnsPids(nsName)).find(isPodProcess);
}

/** The live agent process (`tortie node run … --pin-root <pinRoot>`), if any. */
export function findAgentPid(pinRoot: string): number | undefined {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    const args = cmdline(Number(d));
    const i = args.indexOf('--pin-root');
    if (i >= 0 && args[i + 1] === pinRoot && args.includes('run') && pidAlive(Number(d)))
      return Number(d);
  }
  return undefined;
}

function killQuietly(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(pid, signal);
  } catch {
    // gone
  }
}

/** Pids of processes whose command line contains `needle`. */
function pidsMatching(needle: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').join(' ');
      if (cmd.includes(needle)) out.push(Number(d));
    } catch {
      // gone
    }
  }
  return out;
}

/**
 * Removes everything a lab with this id left behind, by name: processes in its
 * namespaces (pod processes), its etcd members, its agent processes, the namespaces
 * (links go with them), the pins, the temp dirs, the state directory of a persistent
 * lab (state file, config, CNI shim, etcd data, logs). Safe to run for a lab that does
 * not exist, and for one whose state file is gone.
 */
export async function destroyClusterLab(id: string): Promise<void> {
  const { prefix } = clusterNames(id);
  const errors: string[] = [];
  const killed: number[] = [];
  const kill = (pid: number) => {
    killQuietly(pid);
    killed.push(pid);
  };
  // Pods the state file names whose namespace name is gone already (a half-done pod del).
  try {
    for (const p of readState(id)?.pods ?? [])
      if (p.pid !== undefined && isPodProcess(p.pid)) kill(p.pid);
  } catch {
    // unreadable state: the names below find the rest
  }
  for (const ns of labNetns(id)) for (const pid of await netnsPids(ns)) kill(pid);
  // Agent processes ('process' labs) run in the machine's namespace: find them by pin root.
  for (const pid of [
    ...pidsMatching(`--name=${prefix}etcd`),
    ...pidsMatching(`--pin-root /sys/fs/bpf/${prefix}n`),
    // The nodes' BIRDs (routing 'bgp'), by their files (bird-<id>-n<i>.*); they run in
    // the node namespaces, so the netns pids above found them already unless those went.
    ...pidsMatching(`/bird-${id}-n`),
    // The ToR's FRR daemons (`tor: true`), by their files (…/tortie-<id>-tor-*).
    ...pidsMatching(`/tortie-${id}-tor-`),
  ])
    kill(pid);
  // Let them go before their namespaces and pins do.
  const deadline = Date.now() + 3000;
  while (killed.some((pid) => pidAlive(pid)) && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 20));
  for (const ns of labNetns(id)) {
    try {
      await deleteNetns(ns);
    } catch (e) {
      errors.push(`${ns}: ${(e as Error).message}`);
    }
  }
  if (existsSync('/sys/fs/bpf')) {
    for (const d of readdirSync('/sys/fs/bpf').filter((n) => n.startsWith(prefix))) {
      try {
        removePins(`/sys/fs/bpf/${d}`);
      } catch (e) {
        errors.push(`pins ${d}: ${(e as Error).message}`);
      }
    }
  }
  for (const d of readdirSync(tmpdir()).filter(
    (n) => n.startsWith(`tortie-cluster-${id}-`) || n.startsWith(`tortie-etcd-${id}-`),
  )) {
    rmSync(join(tmpdir(), d), { recursive: true, force: true });
  }
  try {
    rmSync(labDir(id), { recursive: true, force: true });
  } catch (e) {
    errors.push(`${labDir(id)}: ${(e as Error).message}`);
  }
  if (errors.length > 0)
    throw new Error(`cluster lab ${id}: could not remove:\n${errors.join('\n')}`);
}

/** What the ToR of lab `id` is (its files under `<workDir>/tor`). */
function torOf(id: string, underlayPrefix: string, workDir: string): LabTor {
  const netnsName = `tortie-${id}-tor`;
  return {
    netnsName,
    netns: `/run/netns/${netnsName}`,
    ip: `${underlayPrefix}.${TOR_HOST}`,
    asNumber: TOR_AS_NUMBER,
    dir: join(workDir, 'tor'),
  };
}

/**
 * The lab's external router: a namespace on the underlay bridge (a veth to `br0`, the
 * address .250 of the underlay /24), running FRR's zebra (installs what bgpd learned into
 * the namespace's kernel) and bgpd (AS 64999, passive: `bgp listen range` over the
 * underlay /24, any node AS). Both run with their own configuration, pid files, zebra
 * socket and vty sockets in `<workDir>/tor` — never the machine's /etc/frr or
 * /var/run/frr — as the `frr` user (FRR's vty group needs it), without a TCP vty.
 */
async function startTor(
  id: string,
  ulPath: string,
  underlayPrefix: string,
  workDir: string,
): Promise<LabTor> {
  const tor = torOf(id, underlayPrefix, workDir);
  const path = await createNetns(tor.netnsName);
  const port = `t${id}tor`.slice(0, 15);
  await nsRun(ulPath, 'ip', [
    'link',
    'add',
    port,
    'type',
    'veth',
    'peer',
    'name',
    'ul',
    'netns',
    tor.netnsName,
  ]);
  await nsRun(ulPath, 'ip', ['link', 'set', port, 'master', 'br0', 'up']);
  await nsRun(
    path,
    'ip',
    ['-batch', '-'],
    ['link set lo up', `addr add ${tor.ip}/24 dev ul`, 'link set ul up'].join('\n') + '\n',
  );
  await nsRun(path, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
  // FRR runs as its own user: it must get through the (private) work dir to tor/.
  chmodSync(workDir, statSync(workDir).mode | 0o111);
  mkdirSync(tor.dir, { recursive: true });
  const f = (name: string) => join(tor.dir, `tortie-${id}-tor-${name}`);
  writeFileSync(f('zebra.conf'), `hostname ${tor.netnsName}\n!\n`);
  writeFileSync(
    f('bgpd.conf'),
    [
      `! FRR bgpd of lab ${id}'s ToR, written by the lab (ClusterLab.up({ tor: true })).`,
      'frr defaults datacenter',
      `hostname ${tor.netnsName}`,
      '!',
      `router bgp ${tor.asNumber}`,
      ` bgp router-id ${tor.ip}`,
      ' no bgp ebgp-requires-policy',
      ' timers bgp 2 6',
      ' neighbor nodes peer-group',
      ' neighbor nodes remote-as external',
      ` bgp listen range ${underlayPrefix}.0/24 peer-group nodes`,
      ' address-family ipv4 unicast',
      '  neighbor nodes activate',
      ' exit-address-family',
      '!',
      '',
    ].join('\n'),
  );
  // FRR drops to its user (its vty group requires it): its files must be that user's.
  const { stdout: uid } = await exec('id', ['-u', 'frr']);
  const { stdout: gid } = await exec('id', ['-g', 'frr']);
  for (const p of [tor.dir, ...readdirSync(tor.dir).map((n) => join(tor.dir, n))])
    chownSync(p, Number(uid.trim()), Number(gid.trim()));
  const daemon = (name: string) => [
    '-d',
    '-u',
    'frr',
    '-g',
    'frr',
    '-f',
    f(`${name}.conf`),
    '-i',
    f(`${name}.pid`),
    '-z',
    f('zserv.api'),
    '--vty_socket',
    tor.dir,
    '-P',
    '0',
    '--log',
    `file:${f(`${name}.log`)}`,
  ];
  await nsRun(path, `${FRR_DIR}/zebra`, daemon('zebra'));
  // bgpd hands its routes to zebra over this socket: wait for it.
  const deadline = Date.now() + 5000;
  while (!existsSync(f('zserv.api'))) {
    if (Date.now() > deadline) throw new Error(`ToR: zebra did not open ${f('zserv.api')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  await nsRun(path, `${FRR_DIR}/bgpd`, daemon('bgpd'));
  return tor;
}
