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
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Agent, agentConfig, silentLogger } from '../../agent/index.js';
import { installCni } from '../../cni/install.js';
import { invokePlugin } from '../../cni/invoke.js';
import { Datastore } from '../../datastore/index.js';
import { removePins } from '../../loader/index.js';
import { createNetns, deleteNetns } from '../../plumbing/index.js';
import { startEtcd, type EtcdCluster } from '../etcd.js';
import { PodProcess } from '../pod-handle.js';
import { AgentProcess } from './agent-process.js';

const exec = promisify(execFile);

export type Encap = 'ipip' | 'none';

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
}

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
  readonly process: PodProcess;
}

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

export class ClusterLab {
  readonly nodes: ClusterNode[] = [];
  readonly pods: ClusterPod[] = [];
  readonly namespacesSeen = new Set<string>();
  etcd?: EtcdCluster;
  store?: Datastore;
  private shim = '';
  private workDir = '';

  private constructor(
    readonly id: string,
    readonly encap: Encap,
    readonly underlayPrefix: string,
    readonly podCidr: string,
    private readonly verbose: boolean,
  ) {}

  get description(): string {
    return `${this.nodes.length} nodes, BPF dataplane, agents + etcd, encap ${this.encap}`;
  }

  /** Builds the whole lab; on any failure removes what it made and throws. */
  static async up(opts: ClusterUpOptions): Promise<ClusterLab> {
    const names = clusterNames(opts.id);
    if (opts.nodes < 1 || opts.nodes > 50) throw new Error('nodes: 1 to 50');
    const lab = new ClusterLab(
      opts.id,
      opts.encap,
      opts.underlay ?? '192.168.231',
      opts.podCidr ?? '10.231.0.0/16',
      opts.verbose ?? false,
    );
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
        const nodeNs = names.node(i);
        const path = await createNetns(nodeNs);
        const port = `t${opts.id}p${i}`.slice(0, 15);
        const ip = `${lab.underlayPrefix}.${i + 1}`;
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
        lab.nodes.push({
          name: nodeNs.replace(/^tortie-/, ''),
          netns: path,
          underlayIp: ip,
          pinRoot: names.pinRoot(i),
        });
      }
      // etcd, the pool.
      lab.etcd = await startEtcd(opts.id, opts.etcdMembers ?? 1);
      lab.store = await Datastore.connect({
        endpoints: lab.etcd.endpoints,
        prefix: names.etcdPrefix,
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
          },
        },
      ]);
      // The CNI plugin, installed as a runtime would find it.
      lab.workDir = mkdtempSync(join(tmpdir(), `tortie-cluster-${opts.id}-`));
      ({ shim: lab.shim } = await installCni({ binDir: join(lab.workDir, 'bin') }));
      // One agent per node.
      if (opts.agents === 'process') {
        await Promise.all(
          lab.nodes.map(async (n) => {
            n.process = new AgentProcess({
              nodeName: n.name,
              nodeNetns: n.netns,
              ipv4Address: `${n.underlayIp}/24`,
              pinRoot: n.pinRoot,
              etcdEndpoints: lab.etcd!.endpoints,
              etcdPrefix: names.etcdPrefix,
              logFile: join(lab.workDir, `agent-${n.name}.log`),
              heartbeatTtlSeconds: 5,
              reportIntervalSeconds: 1,
              debounceMs: 10,
            });
            await n.process.start('ready');
          }),
        );
      } else
        await Promise.all(
          lab.nodes.map(async (n) => {
            n.agent = await Agent.start(
              agentConfig({
                nodeName: n.name,
                etcd: { endpoints: lab.etcd!.endpoints, prefix: names.etcdPrefix, timeoutMs: 3000 },
                pinRoot: n.pinRoot,
                nodeNetns: n.netns,
                ipv4Address: `${n.underlayIp}/24`,
                healthPort: 0,
                heartbeatTtlSeconds: 5,
                reportIntervalSeconds: 1,
                debounceMs: 10,
              }),
              lab.verbose ? {} : { log: silentLogger() },
            );
          }),
        );
    } catch (e) {
      await lab.down().catch(() => undefined);
      throw e;
    }
    return lab;
  }

  node(ref: number | string): ClusterNode {
    const n = typeof ref === 'number' ? this.nodes[ref] : this.nodes.find((x) => x.name === ref);
    if (!n) throw new Error(`no node ${String(ref)}`);
    return n;
  }

  /** A namespace for pods (the agent's kns.<name> profile needs it). */
  async createNamespace(name: string, labels: Record<string, string> = {}): Promise<void> {
    await this.store!.apply([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } }]);
    this.namespacesSeen.add(name);
  }

  /** Creates the pod namespace, runs the CNI plugin's ADD for it, starts its pod process. */
  async addPod(spec: ClusterPodSpec): Promise<ClusterPod> {
    const node = this.node(spec.node);
    if (!this.namespacesSeen.has(spec.namespace)) await this.createNamespace(spec.namespace);
    const key = `${spec.namespace}/${spec.name}`;
    const nsName = `tortie-${this.id}-p-${spec.namespace}-${spec.name}`.slice(0, 60);
    const netns = await createNetns(nsName);
    const containerId = `${this.id}-${spec.namespace}-${spec.name}`;
    const add = await invokePlugin({
      plugin: this.shim,
      command: 'ADD',
      containerId,
      netns,
      ifName: 'eth0',
      args: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${spec.namespace};K8S_POD_NAME=${spec.name}`,
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
    const process = await PodProcess.start(netns, spec.servers ?? 'tcp:80,udp:80');
    const pod: ClusterPod = {
      key,
      namespace: spec.namespace,
      name: spec.name,
      node: node.name,
      ip,
      netns,
      containerId,
      process,
    };
    this.pods.push(pod);
    return pod;
  }

  private cniConfig(node: ClusterNode, labels: Record<string, string>): Record<string, unknown> {
    return {
      cniVersion: '1.0.0',
      name: NETWORK,
      type: 'tortie',
      datastore: { endpoints: this.etcd!.endpoints, prefix: clusterNames(this.id).etcdPrefix },
      nodename: node.name,
      host_netns: node.netns,
      mtu: this.encap === 'ipip' ? 1480 : 1500,
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
    return this.pod(from).process.probe(protocol, this.pod(to).ip, port, timeoutMs);
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
    const results = await Promise.all(
      pairs.map(([a, b]) => this.probe(a, b, port, protocol, timeoutMs)),
    );
    return Object.fromEntries(pairs.map(([a, b], i) => [`${a} -> ${b}`, results[i]!]));
  }

  /** Waits until every agent has no reconcile pending (after the watch delivered the change). */
  async waitForDataplane(): Promise<void> {
    await new Promise((r) => setTimeout(r, 300));
    await Promise.all(this.nodes.map((n) => n.agent?.idle()));
  }

  /** Removes everything this lab made (pods, agents, etcd, pins, namespaces, temp dirs). */
  async down(): Promise<void> {
    await Promise.all(this.pods.map((p) => p.process.stop().catch(() => undefined)));
    await Promise.all(this.nodes.map((n) => n.agent?.stop().catch(() => undefined)));
    await Promise.all(this.nodes.map((n) => n.process?.stop().catch(() => undefined)));
    await this.store?.close().catch(() => undefined);
    await this.etcd?.stop().catch(() => undefined);
    await destroyClusterLab(this.id);
  }
}

/** Netns names under /run/netns with this lab's prefix. */
function labNetns(id: string): string[] {
  const { prefix } = clusterNames(id);
  if (!existsSync('/run/netns')) return [];
  return readdirSync('/run/netns').filter((n) => n.startsWith(prefix));
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
 * namespaces (pod processes), its etcd members, the namespaces (links go with them),
 * the pins, the temp dirs. Safe to run for a lab that does not exist.
 */
export async function destroyClusterLab(id: string): Promise<void> {
  const { prefix } = clusterNames(id);
  const errors: string[] = [];
  for (const ns of labNetns(id)) {
    try {
      const { stdout } = await exec('ip', ['netns', 'pids', ns]);
      for (const pid of stdout.split(/\s+/).filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // gone
        }
      }
    } catch {
      // no pids
    }
  }
  // Agent processes ('process' labs) run in the machine's namespace: find them by pin root.
  for (const pid of [
    ...pidsMatching(`--name=${prefix}etcd`),
    ...pidsMatching(`--pin-root /sys/fs/bpf/${prefix}n`),
  ]) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
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
  if (errors.length > 0)
    throw new Error(`cluster lab ${id}: could not remove:\n${errors.join('\n')}`);
}
