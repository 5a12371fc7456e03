/**
 * A one-node lab: a "node" network namespace and pods behind veths in it, each pod a
 * namespace running a pod process (echo servers + prober). Everything it makes carries
 * the lab id in its name, so labs run side by side and `destroyNodeLab(id)` finds all of
 * it, also after a crash. No address or route is added outside the namespaces it made.
 *
 * The multi-node lab (agent, etcd, IPIP) grows from this in the agent issue.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createNetns, createPodNetwork, deleteNetns, type PodNetwork } from '../plumbing/index.js';
import type { Endpoint, NamedPort, Namespace } from '../policy/model.js';
import { PodProcess } from './pod-handle.js';

const run = promisify(execFile);

export interface LabPodSpec {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  /** Named container ports; every one is served (TCP or UDP echo). */
  ports: { name: string; protocol: 'TCP' | 'UDP'; port: number }[];
}

export interface LabPod {
  spec: LabPodSpec;
  key: string; // namespace/name
  ip: string;
  netns: string; // path
  network: PodNetwork;
  process: PodProcess;
  endpoint: Endpoint;
}

const PROTO = { TCP: 6, UDP: 17 } as const;

export function labNames(id: string): { node: string; prefix: string } {
  if (!/^[a-z0-9]{1,12}$/.test(id)) {
    throw new Error(`lab id "${id}": use 1-12 lower-case letters or digits`);
  }
  return { node: `tortie-${id}-node`, prefix: `tortie-${id}-` };
}

export class NodeLab {
  readonly pods: LabPod[] = [];
  private constructor(
    readonly id: string,
    readonly nodeNetns: string,
    readonly namespaces: Namespace[],
  ) {}

  /**
   * The node namespace, with a default route into a veth whose peer stays down: the
   * kernel answers a pod's proxy-ARP query for 169.254.1.1 only when it has a route
   * there, and a link with no carrier sends nothing anywhere. (This kernel has no dummy
   * driver; the multi-node lab replaces this with the underlay.)
   */
  static async create(id: string, namespaces: Namespace[]): Promise<NodeLab> {
    const { node } = labNames(id);
    const path = await createNetns(node);
    const lab = new NodeLab(id, path, namespaces);
    try {
      await ipBatch(node, [
        'link set lo up',
        'link add tortie0 type veth peer name tortie0p',
        'link set tortie0 up',
        'route add default dev tortie0',
      ]);
    } catch (e) {
      await lab.destroy();
      throw e;
    }
    return lab;
  }

  /** Adds a pod at `ip`, serving its ports; the caller attaches the dataplane to it. */
  async addPod(spec: LabPodSpec, ip: string, opts: { persist?: boolean } = {}): Promise<LabPod> {
    const key = `${spec.namespace}/${spec.name}`;
    const podNs = `${labNames(this.id).prefix}${spec.namespace}-${spec.name}`.slice(0, 60);
    const podPath = await createNetns(podNs);
    try {
      const network = await createPodNetwork({
        workloadId: `${this.id}/${key}`,
        podNetns: podPath,
        hostNetns: this.nodeNetns,
        ip,
      });
      const servers = spec.ports.map((p) => `${p.protocol.toLowerCase()}:${p.port}`).join(',');
      const process = await PodProcess.start(podPath, servers, opts);
      const ports: NamedPort[] = spec.ports.map((p) => ({
        name: p.name,
        protocol: PROTO[p.protocol],
        port: p.port,
      }));
      const pod: LabPod = {
        spec,
        key,
        ip,
        netns: podPath,
        network,
        process,
        endpoint: {
          key,
          namespace: spec.namespace,
          name: spec.name,
          ip,
          labels: spec.labels,
          profiles: [`kns.${spec.namespace}`],
          ports,
        },
      };
      this.pods.push(pod);
      return pod;
    } catch (e) {
      await deleteNetns(podNs).catch(() => undefined);
      throw e;
    }
  }

  pod(key: string): LabPod {
    const p = this.pods.find((x) => x.key === key);
    if (!p) throw new Error(`no pod ${key} in lab ${this.id}`);
    return p;
  }

  /**
   * Probes every ordered pair (from, to) on `protocol`/`port`, all in parallel; the
   * result maps "from -> to" to whether a request/response exchange succeeded.
   */
  async probeMatrix(
    protocol: 'tcp' | 'udp',
    port: number,
    timeoutMs = 500,
  ): Promise<Map<string, boolean>> {
    const out = new Map<string, boolean>();
    await Promise.all(
      this.pods.flatMap((from) =>
        this.pods.map(async (to) => {
          out.set(
            `${from.key} -> ${to.key}`,
            await from.process.probe(protocol, to.ip, port, timeoutMs),
          );
        }),
      ),
    );
    return out;
  }

  async destroy(): Promise<void> {
    await Promise.all(this.pods.map((p) => p.process.stop().catch(() => undefined)));
    await destroyNodeLab(this.id);
  }
}

/** Removes every namespace of lab `id` (pods first, then the node), found by name. */
export async function destroyNodeLab(id: string): Promise<void> {
  const { node, prefix } = labNames(id);
  const { stdout } = await run('ip', ['-j', 'netns', 'list']);
  const names = (JSON.parse(stdout || '[]') as { name: string }[])
    .map((n) => n.name)
    .filter((n) => n.startsWith(prefix));
  // Killing what runs in a pod's namespace lets the namespace really go away.
  for (const n of names.filter((x) => x !== node)) {
    await run('ip', ['netns', 'pids', n])
      .then(({ stdout: pids }) =>
        pids
          .split(/\s+/)
          .filter(Boolean)
          .forEach((pid) => {
            try {
              process.kill(Number(pid), 'SIGKILL');
            } catch {
              /* already gone */
            }
          }),
      )
      .catch(() => undefined);
    await deleteNetns(n);
  }
  if (names.includes(node)) await deleteNetns(node);
}

async function ipBatch(ns: string, lines: string[]): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = execFile('ip', ['-n', ns, '-batch', '-'], (err, _o, stderr) =>
      err ? reject(new Error(`ip -n ${ns} -batch: ${stderr.trim() || err.message}`)) : resolve(),
    );
    child.stdin!.end(lines.join('\n') + '\n');
  });
}
