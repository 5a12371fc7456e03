/**
 * A "lab" with no packets: every probe is answered by the reference evaluator
 * (src/policy/evaluate.ts) from the state set so far. It needs no privileges, so case
 * authors can check a file against tortie's stated semantics in a second, and unit tests
 * can drive the runner. It proves nothing about a dataplane.
 */
import { judgePacket } from '../../policy/evaluate.js';
import type { Endpoint, Labels } from '../../policy/model.js';
import { parseResource, worldFrom, type Resource } from '../../policy/resources.js';
import type { ConformanceLab, ConformancePodSpec } from './lab.js';
import type { Protocol } from './schema.js';

const PROTOCOL_NUMBER: Record<Protocol, number> = { TCP: 6, UDP: 17, SCTP: 132 };

interface Pod {
  readonly spec: ConformancePodSpec;
  readonly ip: string;
  labels: Labels;
}

export class EvaluatorLab implements ConformanceLab {
  readonly description = 'reference evaluator, no packets';
  readonly podCidr = '10.96.0.0/16';
  private readonly pods = new Map<string, Pod>();
  private readonly namespaces = new Map<string, Labels>();
  private policies: Resource[] = [];
  /** Endpoints and world as of the last waitForDataplane (what "the dataplane" enforces). */
  private enforced: { world: ReturnType<typeof worldFrom>; endpoints: Map<string, Endpoint> } = {
    world: worldFrom([], []),
    endpoints: new Map(),
  };

  unsupported(): string | undefined {
    return undefined;
  }

  async createNamespace(name: string, labels: Labels): Promise<void> {
    this.namespaces.set(name, labels);
  }

  async createPod(spec: ConformancePodSpec): Promise<{ ip: string }> {
    const n = this.pods.size + 10;
    const ip = `10.96.${n >> 8}.${n & 0xff}`;
    this.pods.set(`${spec.namespace}/${spec.name}`, { spec, ip, labels: spec.labels });
    return { ip };
  }

  async setPodLabels(pod: string, labels: Labels): Promise<void> {
    const p = this.pods.get(pod);
    if (p === undefined) throw new Error(`no pod ${pod}`);
    p.labels = labels;
  }

  async setNamespaceLabels(namespace: string, labels: Labels): Promise<void> {
    this.namespaces.set(namespace, labels);
  }

  async setPolicies(policies: readonly unknown[]): Promise<void> {
    this.policies = policies.map((p) => parseResource(p));
  }

  async waitForDataplane(): Promise<void> {
    const endpoints = new Map(
      [...this.pods].map(([key, p]): [string, Endpoint] => [
        key,
        {
          key,
          namespace: p.spec.namespace,
          name: p.spec.name,
          ip: p.ip,
          labels: p.labels,
          profiles: [`kns.${p.spec.namespace}`],
          ports: p.spec.namedPorts.map((n) => ({
            name: n.name,
            port: n.port,
            protocol: PROTOCOL_NUMBER[n.protocol],
          })),
        },
      ]),
    );
    const namespaces = [...this.namespaces].map(([name, labels]) =>
      parseResource({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } }),
    );
    this.enforced = {
      world: worldFrom([...namespaces, ...this.policies], [...endpoints.values()]),
      endpoints,
    };
  }

  async probe(from: string, to: string, port: number, protocol: Protocol): Promise<boolean> {
    const sender = this.enforced.endpoints.get(from);
    const receiver = this.enforced.endpoints.get(to);
    if (sender === undefined || receiver === undefined) return false;
    const serves = this.pods
      .get(to)!
      .spec.serve.some((s) => s.port === port && s.protocol === protocol);
    if (!serves) return false;
    return judgePacket(
      this.enforced.world,
      {
        saddr: sender.ip,
        daddr: receiver.ip,
        protocol: PROTOCOL_NUMBER[protocol],
        sport: 40000,
        dport: port,
      },
      { sender, receiver },
    ).allowed;
  }

  async close(): Promise<void> {}
}
