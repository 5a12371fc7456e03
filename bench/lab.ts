/**
 * The two-pod lab the pod-to-pod and update benchmarks run on: a NodeLab (src/lab/node-lab.ts)
 * with a client and a server pod behind veths in a node namespace, switched between three
 * dataplanes on the same pods:
 *  - baseline: nothing attached, no iptables rule — the node namespace's kernel routing
 *    (the /32 routes to the veths, proxy-ARP gateway) with no policy;
 *  - bpf: NodeDataplane attached to both veths, local routes, program(world, locals) —
 *    as src/lab/demo.ts does;
 *  - iptables: IptablesDataplane programmed in the node namespace — as
 *    src/lab/conformance/iptables-lab.ts does.
 *
 * The policy (benchPolicyWorld) selects the server pod; its ingress rules are N−1 rules
 * that never match the client (each a distinct /32 source outside the lab and a distinct
 * port) plus one that allows the client to every benchmark port, last or first.
 */
import { NodeDataplane } from '../src/dataplane/node-dataplane.js';
import { IptablesDataplane, type IptablesEndpoint } from '../src/iptables/index.js';
import { destroyNodeLab, NodeLab, type LabPod } from '../src/lab/node-lab.js';
import { onInterrupt } from './common.js';
import type { LocalEndpoint } from '../src/policy/compile/index.js';
import type { Endpoint, Policy, Rule, World } from '../src/policy/model.js';
import { removePins } from '../src/loader/index.js';

export type Mode = 'baseline' | 'bpf' | 'iptables';
export type Placement = 'last' | 'first';

export const SERVER_IP = '10.65.0.10';
export const CLIENT_IP = '10.65.0.11';
export const PORTS = { sockperf: 11111, iperf: 5201, http: 8080, echo: 7000 } as const;
const NS = 'bench';

/** A /32 outside the lab for non-matching rule i (10.66.0.0/16 onwards). */
export function peerIp(i: number): string {
  const n = (10 << 24) + (66 << 16) + i;
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export interface PolicySpec {
  /** Rules in the server's ingress policy, the allowing one included (when `allow`). */
  rules: number;
  placement: Placement;
  /** false: the allowing rule is left out (the client must be blocked). */
  allow?: boolean;
}

function allowRule(): Rule {
  return {
    action: 'Allow',
    protocol: 6,
    source: { nets: [`${CLIENT_IP}/32`] },
    destination: {
      ports: Object.values(PORTS).map((p) => ({ kind: 'range' as const, from: p, to: p })),
    },
  };
}

/**
 * The world for the two pods: no policy at 0 rules (the namespace profile allows all),
 * else one ingress policy on the server with `rules` rules. With `allow: false` the
 * policy keeps its N−1 non-matching rules (or is empty at 0/1 rules) and selects the
 * server, so ingress to it is denied.
 */
export function benchPolicyWorld(endpoints: readonly Endpoint[], spec: PolicySpec): World {
  const allow = spec.allow ?? true;
  const others: Rule[] = [];
  const nonMatching = Math.max(0, spec.rules - 1);
  for (let i = 0; i < nonMatching; i++) {
    const port = 20000 + (i % 40000);
    others.push({
      action: 'Allow',
      protocol: 6,
      source: { nets: [`${peerIp(i)}/32`] },
      destination: { ports: [{ kind: 'range', from: port, to: port }] },
    });
  }
  let ingress: Rule[] = others;
  if (allow)
    ingress = spec.placement === 'first' ? [allowRule(), ...others] : [...others, allowRule()];
  const policies: Policy[] =
    spec.rules === 0 && allow
      ? []
      : [
          {
            name: 'bench-server',
            namespace: NS,
            tier: 'default',
            order: 100,
            selector: 'app == "server"',
            types: ['Ingress'],
            ingress,
            egress: [],
          },
        ];
  const allowAll: Rule = { action: 'Allow', source: {}, destination: {} };
  return {
    endpoints,
    namespaces: [{ name: NS, labels: { 'kubernetes.io/metadata.name': NS } }],
    networkSets: [],
    tiers: [],
    policies,
    profiles: [{ name: `kns.${NS}`, ingress: [allowAll], egress: [allowAll] }],
  };
}

export interface ProgramReport {
  /** Wall time of the dataplane call (bpf: compile + map writes; iptables: ipset + iptables-restore). */
  ms: number;
  compileMs?: number;
  applyMs?: number;
  /** bpf: map entries written and deleted by the change. */
  writes?: number;
  deletes?: number;
}

export class BenchLab {
  mode: Mode = 'baseline';
  private bpf: NodeDataplane | undefined;
  private ipt: IptablesDataplane | undefined;
  private constructor(
    readonly node: NodeLab,
    readonly server: LabPod,
    readonly client: LabPod,
    readonly pinRoot: string,
  ) {}

  private forget: () => void = () => undefined;

  static async create(id: string): Promise<BenchLab> {
    const pinRoot = `/sys/fs/bpf/tortie-${id}`;
    const forget = onInterrupt(async () => {
      await destroyNodeLab(id);
      removePins(pinRoot);
    });
    let node: NodeLab;
    try {
      node = await NodeLab.create(id, [{ name: NS, labels: {} }]);
    } catch (e) {
      forget();
      throw e;
    }
    try {
      const server = await node.addPod(
        {
          namespace: NS,
          name: 'server',
          labels: { app: 'server' },
          ports: [{ name: 'echo', protocol: 'TCP', port: PORTS.echo }],
        },
        SERVER_IP,
      );
      const client = await node.addPod(
        { namespace: NS, name: 'client', labels: { app: 'client' }, ports: [] },
        CLIENT_IP,
      );
      const lab = new BenchLab(node, server, client, pinRoot);
      lab.forget = forget;
      return lab;
    } catch (e) {
      await node.destroy();
      forget();
      throw e;
    }
  }

  get endpoints(): Endpoint[] {
    return [this.server.endpoint, this.client.endpoint];
  }

  /** Switches the dataplane (tearing the previous one down) and programs `spec`. */
  async set(mode: Mode, spec: PolicySpec): Promise<ProgramReport> {
    if (mode !== this.mode) await this.leave();
    this.mode = mode;
    const world = benchPolicyWorld(this.endpoints, spec);
    if (mode === 'bpf') return this.programBpf(world);
    if (mode === 'iptables') return this.programIptables(world);
    return { ms: 0 };
  }

  /** Programs `world` in the current mode (update benchmark). */
  async program(world: World): Promise<ProgramReport> {
    if (this.mode === 'bpf') return this.programBpf(world);
    if (this.mode === 'iptables') return this.programIptables(world);
    return { ms: 0 };
  }

  private programBpf(world: World): ProgramReport {
    if (!this.bpf) {
      this.bpf = NodeDataplane.open({
        pinRoot: this.pinRoot,
        nodeNetns: this.node.nodeNetns,
        config: { dropEvents: false },
        compiler: { maxEntriesPerSet: 1 << 20, maxEntriesPerClass: 1 << 20 },
      });
      for (const p of [this.server, this.client]) {
        this.bpf.attach(p.network.hostIfindex);
        this.bpf.setLocalRoute(p.ip, p.network.hostIfindex);
      }
    }
    const locals: LocalEndpoint[] = [this.server, this.client].map((p, i) => ({
      endpoint: p.endpoint,
      ifindex: p.network.hostIfindex,
      id: i + 1,
    }));
    const t0 = performance.now();
    const s = this.bpf.program(world, locals);
    return {
      ms: performance.now() - t0,
      compileMs: s.compileMs,
      applyMs: s.applyMs,
      writes: s.writes,
      deletes: s.deletes,
    };
  }

  private async programIptables(world: World): Promise<ProgramReport> {
    this.ipt ??= await IptablesDataplane.open({ netns: this.node.nodeNetns });
    const locals: IptablesEndpoint[] = [this.server, this.client].map((p) => ({
      endpoint: p.endpoint,
      iface: p.network.hostIfName,
    }));
    const t0 = performance.now();
    await this.ipt.program(world, locals);
    return { ms: performance.now() - t0 };
  }

  /** Removes the current dataplane: back to baseline. */
  async leave(): Promise<void> {
    if (this.bpf) {
      const dp = this.bpf;
      this.bpf = undefined;
      for (const p of [this.server, this.client]) {
        dp.detach(p.network.hostIfindex);
        dp.deleteLocalRoute(p.ip);
      }
      dp.destroy();
    }
    if (this.ipt) {
      const dp = this.ipt;
      this.ipt = undefined;
      await dp.destroy();
    }
    this.mode = 'baseline';
  }

  /** One TCP connect + echo from the client to the server's echo port. */
  probe(timeoutMs = 500): Promise<boolean> {
    return this.client.process.probe('tcp', SERVER_IP, PORTS.echo, timeoutMs);
  }

  async destroy(): Promise<void> {
    await this.leave().catch(() => undefined);
    await this.node.destroy();
    removePins(this.pinRoot);
    this.forget();
  }
}
