/**
 * The cross-node labs of `tortie bench pod-to-pod`: a client pod on node 0 and a server
 * pod on node 1 of two node namespaces joined by an underlay bridge, one lab per mode
 * (built, measured and removed one after the other):
 *  - baseline: two NodeLabs (src/lab/node-lab.ts: node namespace, pod veths with a /32
 *    route each, proxy-ARP gateway) joined as ClusterLab joins its nodes — a bridge `br0`
 *    in an underlay namespace, a veth `ul` into each node (`<underlay>.1`, `.2`/24, the
 *    default route on it, forwarding on) — plus a route to the other node's pod /26 via
 *    the other node's underlay address: plain kernel routing, encap none, no BPF program
 *    attached, no iptables rule, no agent;
 *  - bpf / bpf-ipip / iptables: a 2-node ClusterLab (inline agents, etcd, CNI-plumbed
 *    pods) with that dataplane and encap none (bpf-ipip: IPIP done in BPF); the policy
 *    goes through `lab.store` and is waited for with `lab.waitForRevision`.
 *
 * Every namespace carries a per-run id starting with "bx" (`tortie-bx…-`); destroy()
 * (called from finally blocks, and on SIGINT/SIGTERM) removes all of it.
 *
 * The policy is the same-node one (bench/lab.ts benchPolicyWorld): N−1 rules that never
 * match the client and one allowing rule, last or first — stored as Calico-style
 * NetworkPolicies of at most 1,000 rules each (orders 100, 101, … in one tier: a packet
 * no rule of a policy matches goes on to the next, so "last"/"first" keep their meaning),
 * which keeps every etcd write far below its request size limit. Policies of an earlier,
 * larger cell are not deleted but rewritten to select no pod.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ClusterLab, destroyClusterLab, type ClusterPod } from '../src/lab/cluster/cluster-lab.js';
import { destroyNodeLab, labNames, NodeLab, type LabPod } from '../src/lab/node-lab.js';
import { createNetns } from '../src/plumbing/index.js';
import { benchHex, onInterrupt, sleep } from './common.js';
import { peerIp, PORTS, type PolicySpec, type ProgramReport } from './lab.js';

const run = promisify(execFile);

export type CrossMode = 'baseline' | 'bpf' | 'bpf-ipip' | 'iptables';
export const CROSS_MODES: readonly CrossMode[] = ['baseline', 'bpf', 'bpf-ipip', 'iptables'];

const NS = 'bench';
const RULES_PER_POLICY = 1000;
/** Baseline addresses: the client's pod block on node 0, the server's on node 1. */
const BASE = {
  underlay: '192.168.232',
  client: { ip: '10.65.0.11', block: '10.65.0.0/26' },
  server: { ip: '10.65.0.74', block: '10.65.0.64/26' },
} as const;

/** A fresh per-run id for the cross-node labs: "bx" + 5 hex (a letter is added per mode). */
export function crossBenchId(): string {
  return `bx${benchHex().slice(0, 5)}`;
}

/** What the measurements need of a lab: where the client and server run. */
export interface PodPair {
  readonly clientNetns: string;
  readonly serverNetns: string;
  readonly serverIp: string;
  readonly clientIp: string;
  /** One TCP connect + echo from the client to the server's echo port. */
  probe(timeoutMs?: number): Promise<boolean>;
}

export interface CrossLab extends PodPair {
  readonly mode: CrossMode;
  readonly description: string;
  /** Programs the policy (baseline: nothing). */
  set(spec: PolicySpec): Promise<ProgramReport>;
  destroy(): Promise<void>;
}

function ipIn(netnsName: string, lines: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = execFile(
      'ip',
      ['-n', netnsName, '-batch', '-'],
      { timeout: 20_000 },
      (err, _o, stderr) =>
        err ? reject(new Error(`ip -n ${netnsName}: ${err.message} ${stderr}`)) : resolve(),
    );
    c.stdin!.end(lines.join('\n') + '\n');
  });
}

class BaselineCrossLab implements CrossLab {
  readonly mode = 'baseline' as const;
  readonly description =
    'two node namespaces on an underlay bridge, /32 route per pod, route to the other node’s pod /26 via its underlay address; no BPF, no iptables rule, no agent';
  private constructor(
    private readonly nodes: NodeLab[],
    private readonly client: LabPod,
    private readonly server: LabPod,
    private readonly forget: () => void,
  ) {}

  get clientNetns() {
    return this.client.netns;
  }
  get serverNetns() {
    return this.server.netns;
  }
  get clientIp() {
    return this.client.ip;
  }
  get serverIp() {
    return this.server.ip;
  }

  static async create(id: string): Promise<BaselineCrossLab> {
    const ids = [`${id}n0`, `${id}n1`];
    const cleanup = async () => {
      for (const i of ids) await destroyNodeLab(i).catch(() => undefined);
    };
    const forget = onInterrupt(cleanup);
    const nodes: NodeLab[] = [];
    try {
      for (const i of ids) nodes.push(await NodeLab.create(i, [{ name: NS, labels: {} }]));
      // The underlay: a bridge in its own namespace (named under node 0's lab prefix, so
      // destroyNodeLab removes it), a veth `ul` into each node.
      const ul = `${labNames(ids[0]!).prefix}ul`;
      await createNetns(ul);
      await ipIn(ul, ['link set lo up', 'link add br0 type bridge', 'link set br0 up']);
      for (const [i, nid] of ids.entries()) {
        const node = labNames(nid).node;
        const port = `${id}p${i}`.slice(0, 15);
        await ipIn(ul, [
          `link add ${port} type veth peer name ul netns ${node}`,
          `link set ${port} master br0 up`,
        ]);
        const other = i === 0 ? BASE.server.block : BASE.client.block;
        await ipIn(node, [
          `addr add ${BASE.underlay}.${i + 1}/24 dev ul`,
          'link set ul up',
          'route replace default dev ul',
          `route add ${other} via ${BASE.underlay}.${2 - i} dev ul`,
        ]);
        await run('ip', ['netns', 'exec', node, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
      }
      const client = await nodes[0]!.addPod(
        { namespace: NS, name: 'client', labels: { app: 'client' }, ports: [] },
        BASE.client.ip,
      );
      const server = await nodes[1]!.addPod(
        {
          namespace: NS,
          name: 'server',
          labels: { app: 'server' },
          ports: [{ name: 'echo', protocol: 'TCP', port: PORTS.echo }],
        },
        BASE.server.ip,
      );
      return new BaselineCrossLab(nodes, client, server, forget);
    } catch (e) {
      await Promise.all(nodes.map((n) => n.destroy().catch(() => undefined)));
      await cleanup();
      forget();
      throw e;
    }
  }

  set(): Promise<ProgramReport> {
    return Promise.resolve({ ms: 0 });
  }

  probe(timeoutMs = 500): Promise<boolean> {
    return this.client.process.probe('tcp', this.server.ip, PORTS.echo, timeoutMs);
  }

  async destroy(): Promise<void> {
    for (const n of this.nodes) await n.destroy().catch(() => undefined);
    this.forget();
  }
}

/** The bench policy as stored NetworkPolicies (see the file comment). */
export function benchPolicyResources(
  spec: PolicySpec,
  clientIp: string,
  names: number,
): { resources: object[]; used: number } {
  const allow = spec.allow ?? true;
  const others: object[] = [];
  for (let i = 0; i < Math.max(0, spec.rules - 1); i++)
    others.push({
      action: 'Allow',
      protocol: 'TCP',
      source: { nets: [`${peerIp(i)}/32`] },
      destination: { ports: [20000 + (i % 40000)] },
    });
  const allowRule = {
    action: 'Allow',
    protocol: 'TCP',
    source: { nets: [`${clientIp}/32`] },
    destination: { ports: Object.values(PORTS) },
  };
  let rules = others;
  if (allow) rules = spec.placement === 'first' ? [allowRule, ...others] : [...others, allowRule];
  const chunks: object[][] = [];
  if (!(spec.rules === 0 && allow)) {
    for (let i = 0; i < rules.length; i += RULES_PER_POLICY)
      chunks.push(rules.slice(i, i + RULES_PER_POLICY));
    if (chunks.length === 0) chunks.push([]); // selects the server, allows nothing
  }
  const policy = (k: number, selector: string, ingress: object[]) => ({
    apiVersion: 'tortie.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: `bench-server-${k}`, namespace: NS },
    spec: { order: 100 + k, selector, types: ['Ingress'], ingress },
  });
  const resources = chunks.map((c, k) => policy(k, 'app == "server"', c));
  for (let k = chunks.length; k < names; k++)
    resources.push(policy(k, 'app == "bench-nobody"', []));
  return { resources, used: Math.max(names, chunks.length) };
}

class ClusterCrossLab implements CrossLab {
  private names = 0;
  private constructor(
    readonly mode: CrossMode,
    private readonly lab: ClusterLab,
    private readonly client: ClusterPod,
    private readonly server: ClusterPod,
    private readonly forget: () => void,
  ) {}

  get description(): string {
    return `ClusterLab: ${this.lab.description}`;
  }
  get clientNetns() {
    return this.client.netns;
  }
  get serverNetns() {
    return this.server.netns;
  }
  get clientIp() {
    return this.client.ip;
  }
  get serverIp() {
    return this.server.ip;
  }

  static async create(id: string, mode: Exclude<CrossMode, 'baseline'>): Promise<ClusterCrossLab> {
    const forget = onInterrupt(() => destroyClusterLab(id));
    let lab: ClusterLab;
    try {
      lab = await ClusterLab.up({
        id,
        nodes: 2,
        encap: mode === 'bpf-ipip' ? 'ipip' : 'none',
        dataplane: mode === 'iptables' ? 'iptables' : 'bpf',
        agents: 'inline',
      });
    } catch (e) {
      await destroyClusterLab(id).catch(() => undefined);
      forget();
      throw e;
    }
    try {
      const client = await lab.addPod({
        namespace: NS,
        name: 'client',
        labels: { app: 'client' },
        node: 0,
        servers: '',
      });
      const server = await lab.addPod({
        namespace: NS,
        name: 'server',
        labels: { app: 'server' },
        node: 1,
        servers: `tcp:${PORTS.echo}`,
      });
      const x = new ClusterCrossLab(mode, lab, client, server, forget);
      // Until the agents have the pods' endpoints and routes, nothing passes.
      const t0 = performance.now();
      while (!(await x.probe(300))) {
        if (performance.now() - t0 > 30_000)
          throw new Error(`${mode} cross-node lab: the client never reached the server`);
        await sleep(100);
      }
      return x;
    } catch (e) {
      await lab.down().catch(() => undefined);
      forget();
      throw e;
    }
  }

  async set(spec: PolicySpec): Promise<ProgramReport> {
    const { resources, used } = benchPolicyResources(spec, this.client.ip, this.names);
    this.names = used;
    const t0 = performance.now();
    let rev = 0n;
    for (const r of resources) {
      const written = await this.lab.store!.apply([r] as never);
      for (const w of written) {
        const v = BigInt(w.resource.metadata.resourceVersion ?? '0');
        if (v > rev) rev = v;
      }
    }
    if (rev > 0n) await this.lab.waitForRevision(rev, 120_000);
    return { ms: performance.now() - t0 };
  }

  probe(timeoutMs = 500): Promise<boolean> {
    return this.lab.probe('bench/client', 'bench/server', PORTS.echo, 'tcp', timeoutMs);
  }

  async destroy(): Promise<void> {
    await this.lab.down().catch(() => undefined);
    await destroyClusterLab(this.lab.id).catch(() => undefined);
    this.forget();
  }
}

/** Builds the cross-node lab of `mode` with per-run id `id` ("bx…", one letter added). */
export function createCrossLab(id: string, mode: CrossMode): Promise<CrossLab> {
  const letter = { baseline: 'a', bpf: 'b', 'bpf-ipip': 'i', iptables: 't' }[mode];
  if (mode === 'baseline') return BaselineCrossLab.create(`${id}${letter}`);
  return ClusterCrossLab.create(`${id}${letter}`, mode);
}
