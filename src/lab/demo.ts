/**
 * `tortie demo`: one node, six pods in two namespaces, Kubernetes NetworkPolicies from
 * examples/demo-policies.yaml — the reachability matrix before and after, next to what
 * the reference evaluator predicts, and the drop counters by reason.
 */
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { NodeDataplane } from '../dataplane/node-dataplane.js';
import type { LocalEndpoint } from '../policy/compile/index.js';
import type { Namespace } from '../policy/model.js';
import { parseResource, worldFrom, type Resource } from '../policy/resources.js';
import { formatMatrix } from '../util/matrix.js';
import { packagePath } from '../util/package-root.js';
import { destroyNodeLab, NodeLab, type LabPodSpec } from './node-lab.js';
import { predictMatrix, type Matrix } from './predict.js';

export const DEMO_NAMESPACES: Namespace[] = [
  { name: 'shop', labels: { 'kubernetes.io/metadata.name': 'shop', team: 'shop' } },
  { name: 'ops', labels: { 'kubernetes.io/metadata.name': 'ops', team: 'ops' } },
];

const PORTS: LabPodSpec['ports'] = [
  { name: 'http', protocol: 'TCP', port: 80 },
  { name: 'dns', protocol: 'UDP', port: 53 },
];

export const DEMO_PODS: LabPodSpec[] = [
  ['shop', 'web'],
  ['shop', 'api'],
  ['shop', 'db'],
  ['ops', 'monitor'],
  ['ops', 'debug'],
  ['ops', 'batch'],
].map(([namespace, name]) => ({
  namespace: namespace!,
  name: name!,
  labels: { app: name! },
  ports: PORTS,
}));

export function loadResources(path: string): Resource[] {
  const docs = parseAllDocuments(readFileSync(path, 'utf8'));
  return docs
    .map((d, i) => {
      if (d.errors.length > 0)
        throw new Error(`${path}: document ${i + 1}: ${d.errors[0]!.message}`);
      return d.toJS() as unknown;
    })
    .filter((o) => o !== null && o !== undefined)
    .map((o, i) => {
      try {
        return parseResource(o);
      } catch (e) {
        throw new Error(`${path}: document ${i + 1}: ${(e as Error).message}`);
      }
    });
}

export interface DemoOptions {
  id: string;
  keep: boolean;
  policies?: string;
  log?: (line: string) => void;
}

/**
 * The matrix as a table: row = client, column = server; "yes" reachable, "-" not, "!"
 * before a cell that differs from the prediction. A pod talking to its own address never
 * leaves it, so the diagonal is not judged (as in upstream's conformance suite).
 */
export function drawMatrix(
  title: string,
  keys: string[],
  observed: Matrix,
  predicted?: Matrix,
): { text: string; wrong: number } {
  let wrong = 0;
  const table = formatMatrix(keys, (from, to) => {
    if (from === to) return '.';
    const pair = `${from} -> ${to}`;
    const o = observed.get(pair) ?? false;
    const p = predicted?.get(pair);
    const differs = p !== undefined && p !== o;
    if (differs) wrong++;
    return `${differs ? '!' : ''}${o ? 'yes' : '-'}`;
  });
  return { text: `${title}\n${table}`, wrong };
}

export async function runDemo(opts: DemoOptions): Promise<number> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const pinRoot = `/sys/fs/bpf/tortie-${opts.id}`;
  const policyFile = opts.policies ?? packagePath('examples', 'demo-policies.yaml');
  const resources = loadResources(policyFile);

  log(
    `tortie demo (lab id ${opts.id}): one node, ${DEMO_PODS.length} pods, BPF dataplane pinned at ${pinRoot}`,
  );
  const lab = await NodeLab.create(opts.id, DEMO_NAMESPACES);
  let dp: NodeDataplane | undefined;
  let wrong = 0;
  try {
    dp = NodeDataplane.open({ pinRoot, nodeNetns: lab.nodeNetns });
    const locals: LocalEndpoint[] = [];
    for (const [i, spec] of DEMO_PODS.entries()) {
      const pod = await lab.addPod(spec, `10.65.0.${10 + i}`, { persist: opts.keep });
      dp.attach(pod.network.hostIfindex);
      dp.setLocalRoute(pod.ip, pod.network.hostIfindex);
      locals.push({ endpoint: pod.endpoint, ifindex: pod.network.hostIfindex, id: i + 1 });
      log(
        `  pod ${pod.key.padEnd(12)} ${pod.ip.padEnd(11)} veth ${pod.network.hostIfName} (ifindex ${pod.network.hostIfindex})`,
      );
    }
    const keys = lab.pods.map((p) => p.key);
    const nsResources = DEMO_NAMESPACES.map((n): Resource => ({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: n.name, labels: n.labels },
      namespace: n,
    }));

    const open = worldFrom(
      nsResources,
      lab.pods.map((p) => p.endpoint),
    );
    let stats = dp.program(open, locals);
    log(
      `\nNo policy yet (every namespace's profile allows all): ${stats.writes} map entries written`,
    );
    const before = drawMatrix(
      'TCP 80, observed (row = client, column = server):',
      keys,
      await lab.probeMatrix('tcp', 80),
      predictMatrix(open, lab, 'tcp', 80),
    );
    log(before.text);
    wrong += before.wrong;

    const world = worldFrom(
      [...nsResources, ...resources],
      lab.pods.map((p) => p.endpoint),
    );
    stats = dp.program(world, locals);
    log(
      `\nApplied ${resources.length} NetworkPolicies from ${policyFile}: compiled in ${stats.compileMs.toFixed(1)} ms, ` +
        `${stats.writes} map writes and ${stats.deletes} deletes in ${stats.applyMs.toFixed(2)} ms (${stats.sets} policy sets)`,
    );
    for (const [protocol, port] of [
      ['tcp', 80],
      ['udp', 53],
    ] as const) {
      const m = drawMatrix(
        `${protocol.toUpperCase()} ${port}, observed ("!" marks a cell that differs from the evaluator's prediction):`,
        keys,
        await lab.probeMatrix(protocol, port),
        predictMatrix(world, lab, protocol, port),
      );
      log(m.text);
      wrong += m.wrong;
    }
    log(
      wrong === 0
        ? '\nEvery cell matches the reference evaluator.'
        : `\n${wrong} cells differ from the reference evaluator.`,
    );

    log('\nPackets by endpoint (tortie_metrics, both directions): passed, and dropped by reason');
    const names = new Map(locals.map((l) => [l.id, l.endpoint.key]));
    const byEp = new Map<number, { passed: bigint; drops: Map<string, bigint> }>();
    for (const c of dp.counters()) {
      const row = byEp.get(c.epId) ?? { passed: 0n, drops: new Map<string, bigint>() };
      if (c.dropped) row.drops.set(c.reason, (row.drops.get(c.reason) ?? 0n) + c.packets);
      else row.passed += c.packets;
      byEp.set(c.epId, row);
    }
    for (const [epId, row] of [...byEp].sort((a, b) => a[0] - b[0])) {
      const drops = [...row.drops].map(([r, n]) => `${r} ${n}`).join(', ') || 'none';
      log(
        `  ${(names.get(epId) ?? `(no endpoint)`).padEnd(13)} passed ${String(row.passed).padStart(4)}   dropped: ${drops}`,
      );
    }

    if (opts.keep) {
      log(`\nThe lab is up. Try:
  bpftool map dump pinned ${pinRoot}/tortie_ifaces
  bpftool map dump pinned ${pinRoot}/tortie_pol_port | head -40     # exact (class, proto/port) -> verdict
  bpftool map dump pinned ${pinRoot}/tortie_ct
  node dist/bin/tortie.js bpf counters --pin-root ${pinRoot}
  node dist/bin/tortie.js monitor --pin-root ${pinRoot}     # live drops
  nsenter --net=/run/netns/tortie-${opts.id}-ops-debug ping -c1 10.65.0.10
Remove it with: node dist/bin/tortie.js demo --down --id ${opts.id}`);
    } else {
      log(`\nRemoving the lab (run with --keep to leave it up and look around with bpftool).`);
    }
  } finally {
    if (!opts.keep) {
      dp?.destroy();
      await lab.destroy();
    } else {
      dp?.close();
      // The pod processes must outlive us for the lab to stay useful.
      for (const p of lab.pods) p.process.detach();
    }
  }
  return wrong === 0 ? 0 : 1;
}

export async function downDemo(id: string): Promise<void> {
  await destroyNodeLab(id);
  const { removePins } = await import('../loader/index.js');
  removePins(`/sys/fs/bpf/tortie-${id}`);
}
