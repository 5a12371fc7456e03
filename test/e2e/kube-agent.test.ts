/**
 * Agents on the Kubernetes datastore, against a real kube-apiserver 1.34 (with its etcd
 * 3.6) started here: a 2-node cluster lab with the BPF dataplane (`datastore:
 * 'kubernetes'`: the lab plays kubelet — Node and Pod objects, CNI ADD with kubelet's
 * arguments — and each agent is `tortie node run --datastore kubernetes --kubeconfig`
 * with the ServiceAccount token of manifests/).
 *
 *  - What the agents keep in the API without etcd leases: heartbeats renewed with their
 *    TTL, endpoint records, the Node annotated (not created), per-kind programmed
 *    revisions in /status.
 *  - The acceptance figure: the API server restarted during a ping at >= 100/s between
 *    pods on two nodes (pings lost), and a NetworkPolicy applied with kubectl right after
 *    the restart enforced on both nodes (time to enforcement: to the agents' programmed
 *    revision of K8sNetworkPolicy, and to the first probe it stops). The figures are
 *    printed, not asserted on; what is asserted is that no ping is lost (the dataplane
 *    never asks the API server) and that the policy is enforced.
 *
 * Needs root, the API server's binaries (scripts/build-peers.sh, or TORTIE_KUBE_APISERVER
 * and TORTIE_KUBE_ETCD) and `npm run build` first (the agent and plugin run from dist/).
 */
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDatastore, type AgentStore } from '../../src/agent/datastore.js';
import { heartbeatFresh, readEndpointStatuses, readNodeStatus } from '../../src/agent/status.js';
import { ClusterLab, destroyClusterLab } from '../../src/lab/cluster/cluster-lab.js';
import { KUBE_START_TIMEOUT_MS, testKubeBinaries } from '../helpers/kube-api.js';
import { newLabId } from '../helpers/netns.js';

const PODS = [
  { namespace: 'x', name: 'a', labels: { app: 'a' }, node: 0 },
  { namespace: 'x', name: 'b', labels: { app: 'b' }, node: 1 },
  { namespace: 'x', name: 'c', labels: { app: 'c' }, node: 1 },
];

async function until<T>(
  what: string,
  get: () => Promise<T>,
  ok: (v: T) => boolean,
  timeoutMs = 90_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await get();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface AgentHttpStatus {
  revisionOrder?: string;
  datastoreType?: string;
  programmedRevisions?: Record<string, string>;
  endpoints?: unknown[];
}

async function agentStatus(url: string | undefined): Promise<AgentHttpStatus | undefined> {
  if (url === undefined) return undefined;
  try {
    const res = await fetch(`${url}/status`, { signal: AbortSignal.timeout(1000) });
    return (await res.json()) as AgentHttpStatus;
  } catch {
    return undefined;
  }
}

/**
 * ping from a pod's namespace (its path) until stopped; its summary. `-i 0.005`: on these
 * VMs `-i 0.01` sends only ~55/s (timer slack), `-i 0.005` well over 100/s; the rate sent
 * is printed with the figures.
 */
function startPing(netns: string, ip: string) {
  // Line-buffered (stdbuf): piped, ping would hold its replies in a block buffer.
  const child = spawn(
    'stdbuf',
    ['-oL', 'nsenter', `--net=${netns}`, 'ping', '-n', '-i', '0.005', ip],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let replies = 0;
  let firstReply: () => void = () => undefined;
  const first = new Promise<void>((r) => (firstReply = r));
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    if (replies === 0 && out.includes('bytes from')) firstReply();
    replies += (d.toString().match(/bytes from/g) ?? []).length;
  });
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const ended = new Promise<void>((r) => child.on('close', () => r()));
  return {
    /** The first reply; rejects when ping ends or none comes within 30 s. */
    first: Promise.race([
      first,
      ended.then(() => {
        throw new Error(`ping ended before a reply: ${out.slice(-500)}`);
      }),
      new Promise<never>((_, reject) =>
        setTimeout(
          () => reject(new Error(`no ping reply within 30 s: ${out.slice(-500)}`)),
          30_000,
        ).unref(),
      ),
    ]),
    async stop(): Promise<{
      transmitted: number;
      received: number;
      rate: number;
      summary: string;
    }> {
      child.kill('SIGINT');
      await ended;
      const m = /(\d+) packets transmitted, (\d+) received.*time (\d+)ms/.exec(out);
      if (m === null) throw new Error(`ping printed no summary: ${out.slice(-500)}`);
      return {
        transmitted: Number(m[1]),
        received: Number(m[2]),
        rate: Number(m[1]) / (Number(m[3]) / 1000),
        summary: out.trim().split('\n').slice(-2).join(' / '),
      };
    },
  };
}

describe('agents on the Kubernetes datastore (2 nodes, BPF)', () => {
  const id = newLabId('ka');
  let lab: ClusterLab | undefined;
  let store: AgentStore | undefined;

  beforeAll(async () => {
    await testKubeBinaries(); // built here if need be (a missing build is a failure)
    lab = await ClusterLab.up({ id, nodes: 2, encap: 'ipip', datastore: 'kubernetes' });
    await lab.createNamespace('x');
    for (const p of PODS) await lab.addPod(p);
    store = await connectDatastore({
      datastoreType: 'kubernetes',
      etcd: { endpoints: [] },
      kubeconfig: lab.kube!.server.adminKubeconfig,
    });
  }, KUBE_START_TIMEOUT_MS);

  afterAll(async () => {
    await store?.close().catch(() => undefined);
    await lab?.down().catch(() => undefined);
    await destroyClusterLab(id);
    const left = [
      ...readdirSync('/run/netns').filter((n) => n.startsWith(`tortie-${id}-`)),
      ...readdirSync('/sys/fs/bpf').filter((n) => n.startsWith(`tortie-${id}-`)),
      ...readdirSync(tmpdir()).filter((n) => n.includes(`-${id}-`)),
    ];
    if (left.length > 0) throw new Error(`left behind: ${left.join(', ')}`);
  }, 120_000);

  it('status without leases: heartbeats with renew time and TTL, endpoint records, Nodes annotated, revisions per kind', async () => {
    const l = lab!;
    for (const n of l.nodes) {
      const hb = await until(
        `heartbeat of ${n.name}`,
        () => readNodeStatus(store!, n.name),
        (s) => s !== undefined && s.synced,
      );
      expect(hb!.ttlSeconds).toBeGreaterThan(0);
      expect(heartbeatFresh(hb!)).toBe(true);
      // Renewed: a later read shows a later renew time.
      await until(
        `renewed heartbeat of ${n.name}`,
        () => readNodeStatus(store!, n.name),
        (s) => s !== undefined && Date.parse(s.heartbeatAt) > Date.parse(hb!.heartbeatAt),
      );
      const mine = PODS.filter((p) => l.nodes[p.node] === n).map((p) => p.name);
      const eps = await until(
        `endpoint records of ${n.name}`,
        () => readEndpointStatuses(store!, n.name),
        (e) =>
          mine.every((name) =>
            e.some((x) => x.namespace === 'x' && x.name.includes(`-k8s-${name}-`)),
          ),
      );
      expect(eps.length).toBe(mine.length);
      const node = JSON.parse(
        await l.kube!.server.kubectlOk(['get', 'node', n.name, '-o', 'json']),
      ) as { metadata: { annotations?: Record<string, string> } };
      expect(node.metadata.annotations?.['projectcalico.org/IPv4Address']).toMatch(
        /^\d+\.\d+\.\d+\.\d+\/\d+$/,
      );
      const st = await agentStatus(n.process?.healthUrl());
      expect(st?.datastoreType).toBe('kubernetes');
      expect(st?.revisionOrder).toBe('per-kind');
      expect(Number(st?.programmedRevisions?.WorkloadEndpoint ?? 0)).toBeGreaterThan(0);
    }
  }, 180_000);

  it('API server restarted during a ping at 100/s between pods on two nodes; a policy applied right after is enforced', async () => {
    const l = lab!;
    const a = l.pod('x/a');
    const b = l.pod('x/b');
    await until('a reaches b', () => l.probe('x/a', 'x/b'), Boolean);
    await until('a reaches c', () => l.probe('x/a', 'x/c'), Boolean);

    const ping = startPing(a.netns, b.ip);
    await ping.first;
    const r0 = performance.now();
    await l.kube!.server.restart();
    const restartMs = performance.now() - r0;

    // Right after the restart: kubectl apply of a NetworkPolicy isolating c (ingress).
    const t0 = performance.now();
    const applied = JSON.parse(
      await l.kube!.server.kubectlOk(['apply', '-o', 'json', '-f', '-'], {
        input: JSON.stringify({
          apiVersion: 'networking.k8s.io/v1',
          kind: 'NetworkPolicy',
          metadata: { name: 'isolate-c', namespace: 'x' },
          spec: { podSelector: { matchLabels: { app: 'c' } }, policyTypes: ['Ingress'] },
        }),
      }),
    ) as { metadata: { resourceVersion: string } };
    const applyMs = performance.now() - t0;
    const rv = BigInt(applied.metadata.resourceVersion);
    // Exact: every agent reports K8sNetworkPolicy programmed at >= the policy's revision.
    await Promise.all(
      l.nodes.map((n) =>
        until(
          `${n.name} programmed K8sNetworkPolicy ${rv}`,
          () => agentStatus(n.process?.healthUrl()),
          (s) => BigInt(s?.programmedRevisions?.K8sNetworkPolicy ?? '0') >= rv,
        ),
      ),
    );
    const programmedMs = performance.now() - t0;
    // The dataplane: a→c stops (a probe that fails at once or times out after 200 ms).
    await until('a→c blocked', async () => !(await l.probe('x/a', 'x/c', 80, 'tcp', 200)), Boolean);
    const blockedMs = performance.now() - t0;
    expect(await l.probe('x/a', 'x/b')).toBe(true);

    const pinged = await ping.stop();
    const lost = pinged.transmitted - pinged.received;
    console.log(
      [
        `kube-agent figures (lab ${id}, 2 nodes, BPF, IPIP):`,
        `  API server restart (SIGTERM → ready): ${Math.round(restartMs)} ms`,
        `  ping x/a → x/b at ${pinged.rate.toFixed(0)}/s (-i 0.005) across the restart: ${pinged.transmitted} sent, ${pinged.received} received, ${lost} lost (${pinged.summary})`,
        `  NetworkPolicy applied right after the restart: kubectl apply ${Math.round(applyMs)} ms; programmed on both agents (K8sNetworkPolicy revision ${rv}) ${Math.round(programmedMs)} ms; a→c blocked ${Math.round(blockedMs)} ms after the apply began`,
      ].join('\n'),
    );
    expect(lost).toBe(0);
    expect(pinged.transmitted).toBeGreaterThan(0);
  }, 300_000);
});
