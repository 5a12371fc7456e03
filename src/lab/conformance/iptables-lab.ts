/**
 * The conformance lab on one node with the iptables dataplane: a NodeLab (pods behind
 * veths in a node namespace, echo servers and a prober in each), no BPF at all. Pods
 * reach each other through the node namespace's kernel routing (the /32 routes to the
 * veths, the proxy-ARP gateway), so iptables' FORWARD sees every pod-to-pod packet.
 *
 * Changes are recorded as the store would hold them and written by `waitForDataplane`
 * (ipset restore + iptables-restore --noflush of the changed chains); they are in force
 * once those commands returned.
 */
import { parseCidr } from '../../policy/cidr.js';
import type { Endpoint, Labels, NamedPort } from '../../policy/model.js';
import { parseResource, worldFrom, type Resource } from '../../policy/resources.js';
import {
  IptablesDataplane,
  type ApplyReport,
  type IptablesBackend,
  type IptablesEndpoint,
} from '../../iptables/index.js';
import { destroyNodeLab, labNames, NodeLab, type LabPod } from '../node-lab.js';
import type { ConformanceLab, ConformancePodSpec } from './lab.js';
import { runCaseFiles, type RunOptions, type RunResult } from './run.js';
import type { CaseFile, Protocol } from './schema.js';

export interface IptablesLabOptions {
  /** Lab id: 1-12 lower-case letters or digits; names every namespace. */
  id: string;
  /** Pod addresses come from here, from the 10th address on (default 10.66.0.0/24). */
  pool?: string;
  /** iptables-nft (default) or iptables-legacy. */
  backend?: IptablesBackend;
}

const PROTOCOL_NUMBER: Record<Protocol, number> = { TCP: 6, UDP: 17, SCTP: 132 };

interface Pod {
  readonly lab: LabPod;
  readonly namespace: string;
  readonly name: string;
  labels: Labels;
  readonly ports: readonly NamedPort[];
}

export class IptablesConformanceLab implements ConformanceLab {
  readonly description: string;
  readonly podCidr: string;
  private readonly pods = new Map<string, Pod>();
  private readonly namespaces = new Map<string, Labels>();
  private policies: Resource[] = [];
  private dirty = true;
  private readonly network: number;
  private readonly size: number;
  /** What each `waitForDataplane` wrote, in order (tests look at it). */
  readonly applied: ApplyReport[] = [];

  private constructor(
    readonly node: NodeLab,
    readonly dataplane: IptablesDataplane,
    backend: IptablesBackend,
    pool: string,
  ) {
    const cidr = parseCidr(pool);
    if (!cidr.ok) throw new Error(`pool ${pool}: ${cidr.reason}`);
    this.podCidr = cidr.cidr.text;
    this.network = cidr.cidr.network;
    this.size = 2 ** (32 - cidr.cidr.prefixLength);
    this.description = `one node, iptables dataplane (iptables-${backend})`;
  }

  static async create(opts: IptablesLabOptions): Promise<IptablesConformanceLab> {
    labNames(opts.id); // refuses a bad id before anything is made
    const backend = opts.backend ?? 'nft';
    const node = await NodeLab.create(opts.id, []);
    try {
      const dp = await IptablesDataplane.open({ netns: node.nodeNetns, backend });
      return new IptablesConformanceLab(node, dp, backend, opts.pool ?? '10.66.0.0/24');
    } catch (e) {
      await node.destroy();
      throw e;
    }
  }

  unsupported(protocol: Protocol): string | undefined {
    return protocol === 'SCTP'
      ? "the lab's pod process serves and probes TCP and UDP only (Node.js has no SCTP sockets)"
      : undefined;
  }

  async createNamespace(name: string, labels: Labels): Promise<void> {
    this.namespaces.set(name, labels);
    this.dirty = true;
  }

  async createPod(spec: ConformancePodSpec): Promise<{ ip: string }> {
    const key = `${spec.namespace}/${spec.name}`;
    if (this.pods.has(key)) throw new Error(`pod ${key} exists already`);
    const index = this.pods.size + 10;
    if (index >= this.size - 1)
      throw new Error(`pool ${this.podCidr} has no address left for ${key}`);
    const ip = u32ToIp(this.network + index);
    const serve = spec.serve.filter(
      (s): s is { port: number; protocol: 'TCP' | 'UDP' } => s.protocol !== 'SCTP',
    );
    // Until the first write the pod's veth is in no dispatch chain: it is dropped as an
    // unknown interface as soon as tortie's chains exist (as Felix does).
    const labPod = await this.node.addPod(
      {
        namespace: spec.namespace,
        name: spec.name,
        labels: spec.labels,
        ports: serve.map((s) => ({
          name: `serve-${s.port}-${s.protocol.toLowerCase()}`,
          protocol: s.protocol,
          port: s.port,
        })),
      },
      ip,
    );
    this.pods.set(key, {
      lab: labPod,
      namespace: spec.namespace,
      name: spec.name,
      labels: spec.labels,
      ports: spec.namedPorts.map((p) => ({
        name: p.name,
        port: p.port,
        protocol: PROTOCOL_NUMBER[p.protocol],
      })),
    });
    this.dirty = true;
    return { ip };
  }

  async setPodLabels(pod: string, labels: Labels): Promise<void> {
    this.pod(pod).labels = labels;
    this.dirty = true;
  }

  async setNamespaceLabels(namespace: string, labels: Labels): Promise<void> {
    if (!this.namespaces.has(namespace)) throw new Error(`no namespace ${namespace} in this lab`);
    this.namespaces.set(namespace, labels);
    this.dirty = true;
  }

  async setPolicies(policies: readonly unknown[]): Promise<void> {
    this.policies = policies.map((p) => parseResource(p));
    this.dirty = true;
  }

  async waitForDataplane(): Promise<void> {
    if (!this.dirty) return;
    const namespaces = [...this.namespaces].map(([name, labels]) =>
      // As the API server does: every namespace carries its name as a label.
      parseResource({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } }),
    );
    const locals: IptablesEndpoint[] = [...this.pods.values()].map((p) => ({
      endpoint: this.endpoint(p),
      iface: p.lab.network.hostIfName,
    }));
    const world = worldFrom(
      [...namespaces, ...this.policies],
      locals.map((l) => l.endpoint),
    );
    this.applied.push(await this.dataplane.program(world, locals));
    this.dirty = false;
  }

  async probe(
    from: string,
    to: string,
    port: number,
    protocol: Protocol,
    timeoutMs: number,
  ): Promise<boolean> {
    if (protocol === 'SCTP') throw new Error(this.unsupported(protocol));
    const target = this.pod(to).lab.ip;
    return this.pod(from).lab.process.probe(
      protocol === 'TCP' ? 'tcp' : 'udp',
      target,
      port,
      timeoutMs,
    );
  }

  async close(): Promise<void> {
    // The chains and sets live in the node namespace and go with it.
    await this.node.destroy();
  }

  private pod(key: string): Pod {
    const p = this.pods.get(key);
    if (p === undefined) throw new Error(`no pod ${key} in this lab`);
    return p;
  }

  private endpoint(p: Pod): Endpoint {
    return {
      key: `${p.namespace}/${p.name}`,
      namespace: p.namespace,
      name: p.name,
      ip: p.lab.ip,
      labels: p.labels,
      profiles: [`kns.${p.namespace}`],
      ports: p.ports,
    };
  }
}

function u32ToIp(n: number): string {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 0xff).join('.');
}

/** Removes a one-node iptables lab left behind by a crash (its namespaces, and with them its chains and sets). */
export async function destroyIptablesLab(id: string): Promise<void> {
  await destroyNodeLab(id);
}

/**
 * `tortie lab conformance --dataplane iptables`: runs case files on fresh one-node
 * iptables labs (a second model gets a second lab, under `<id>1`, after the first is gone).
 */
export async function runIptablesConformance(
  files: readonly CaseFile[],
  opts: RunOptions & { id: string; backend?: IptablesBackend },
): Promise<RunResult> {
  let n = 0;
  const { id, backend, ...run } = opts;
  return runCaseFiles(
    files,
    () => {
      const k = n++;
      return IptablesConformanceLab.create({
        id: k === 0 ? id : `${id.slice(0, 10)}${k}`,
        ...(backend === undefined ? {} : { backend }),
      });
    },
    run,
  );
}
