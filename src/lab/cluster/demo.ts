/**
 * `tortie lab demo`: the README's main job. A 3-node lab (etcd, one agent process per
 * node, IPIP in BPF), six pods in three namespaces created through the CNI plugin, the
 * reachability matrix with no policy, then the policies of examples/lab-policies.yaml
 * applied through the store and the matrix again — each cell next to what the reference
 * evaluator predicts from the store. The lab stays up for the user to explore.
 */
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import type { WriteResult } from '../../datastore/index.js';
import { packagePath } from '../../util/package-root.js';
import { drawMatrix, loadResources } from '../demo.js';
import type { Matrix } from '../predict.js';
import { ClusterLab, labPresence, destroyClusterLab, type ClusterPodSpec } from './cluster-lab.js';
import { predictFromStore } from './predict.js';

export const LAB_DEMO_PODS: readonly (ClusterPodSpec & { node: number })[] = [
  { namespace: 'shop', name: 'web', labels: { app: 'web' }, node: 0 },
  { namespace: 'shop', name: 'api', labels: { app: 'api' }, node: 1 },
  { namespace: 'shop', name: 'db', labels: { app: 'db' }, node: 2 },
  { namespace: 'ops', name: 'monitor', labels: { app: 'monitor' }, node: 2 },
  { namespace: 'ops', name: 'debug', labels: { app: 'debug' }, node: 0 },
  { namespace: 'dev', name: 'scratch', labels: { app: 'scratch' }, node: 1 },
];

export interface LabDemoOptions {
  readonly id: string;
  readonly nodes: number;
  readonly encap: 'ipip' | 'none';
  /** Remove a lab with this id first (else an existing one is an error). */
  readonly replace: boolean;
  readonly namespacesFile?: string;
  readonly policiesFile?: string;
  readonly log?: (line: string) => void;
}

/** Highest resourceVersion among what an apply stored: the revision to wait for. */
function revisionOf(results: readonly WriteResult[]): bigint {
  let max = 0n;
  for (const r of results) {
    const v = r.resource.metadata.resourceVersion;
    if (v !== undefined && BigInt(v) > max) max = BigInt(v);
  }
  return max;
}

/** The documents of a YAML file as plain objects (the store validates them on apply). */
function readDocuments(path: string): unknown[] {
  return parseAllDocuments(readFileSync(path, 'utf8'))
    .map((d, i) => {
      if (d.errors.length > 0)
        throw new Error(`${path}: document ${i + 1}: ${d.errors[0]!.message}`);
      return d.toJS() as unknown;
    })
    .filter((x) => x !== null && x !== undefined);
}

function toMap(m: Record<string, boolean>): Matrix {
  return new Map(Object.entries(m));
}

/** Resolves with the exit code: 0 when every observed cell equals the prediction. */
export async function runLabDemo(o: LabDemoOptions): Promise<number> {
  const log = o.log ?? ((l: string) => console.log(l));
  if (o.nodes < 3) throw new Error('the demo places pods on three nodes: --nodes 3 or more');
  const nsFile = o.namespacesFile ?? packagePath('examples', 'lab-namespaces.yaml');
  const policyFile = o.policiesFile ?? packagePath('examples', 'lab-policies.yaml');
  // Parsed once as policy resources to fail early on a bad file, then stored as written.
  loadResources(nsFile);
  loadResources(policyFile);
  const namespaces = readDocuments(nsFile);
  const policies = readDocuments(policyFile);
  if (labPresence(o.id).length > 0) {
    if (!o.replace)
      throw new Error(
        `lab "${o.id}" already exists: remove it with tortie lab down --id ${o.id} (or run the demo with --replace)`,
      );
    log(`removing the existing lab ${o.id}`);
    await destroyClusterLab(o.id);
  }
  // The agents this starts must not inherit the user's tortie settings.
  for (const k of Object.keys(process.env)) if (k.startsWith('TORTIE_')) delete process.env[k];

  const t0 = Date.now();
  log(`tortie lab demo: ${o.nodes} nodes, encap ${o.encap}, lab id ${o.id}`);
  const lab = await ClusterLab.up({ id: o.id, nodes: o.nodes, encap: o.encap, persist: true });
  let wrong = 0;
  try {
    for (const n of lab.nodes)
      log(
        `  node ${n.name.padEnd(10)} underlay ${n.underlayIp.padEnd(15)} agent pid ${n.process?.pid ?? '-'}  pins ${n.pinRoot}`,
      );
    log(`  etcd ${lab.etcd!.endpoints.join(',')}  (${((Date.now() - t0) / 1000).toFixed(1)} s)`);

    await lab.store!.apply(namespaces);
    log(
      `\nPods (each created by the CNI plugin; ADD returns once the node's agent has programmed its policy):`,
    );
    for (const spec of LAB_DEMO_PODS) {
      const pod = await lab.addPod({ ...spec, servers: 'tcp:80,udp:80' });
      log(`  ${pod.key.padEnd(13)} ${pod.ip.padEnd(15)} on ${pod.node}`);
    }
    const keys = lab.pods.map((p) => p.key);
    const pods = lab.pods.map((p) => ({ key: p.key, ip: p.ip }));
    const crossing = (a: string, b: string) => lab.pod(a).node !== lab.pod(b).node;
    const crossPairs = keys.flatMap((a) => keys.filter((b) => b !== a && crossing(a, b))).length;

    const before = drawMatrix(
      `\nNo policy yet — TCP 80, observed (row = client, column = server; ${crossPairs} of ${keys.length * (keys.length - 1)} pairs cross nodes${o.encap === 'ipip' ? ' over IPIP' : ''}):`,
      keys,
      toMap(await lab.matrix(80, 'tcp', 1000)),
      await predictFromStore(lab.store!, pods, 'tcp', 80),
    );
    log(before.text);
    wrong += before.wrong;

    const t1 = Date.now();
    const results = await lab.store!.apply(policies);
    await lab.waitForRevision(revisionOf(results));
    log(
      `\nApplied ${policies.length} policies from ${policyFile}; every agent had them programmed ${Date.now() - t1} ms later.`,
    );
    for (const [protocol, port] of [
      ['tcp', 80],
      ['udp', 80],
    ] as const) {
      const m = drawMatrix(
        `${protocol.toUpperCase()} ${port}, observed ("!" marks a cell that differs from the reference evaluator):`,
        keys,
        toMap(await lab.matrix(port, protocol, 1000)),
        await predictFromStore(lab.store!, pods, protocol, port),
      );
      log(m.text);
      wrong += m.wrong;
    }
    log(
      wrong === 0
        ? '\nEvery cell matches the reference evaluator.'
        : `\n${wrong} cells differ from the reference evaluator.`,
    );
    const state = lab.state();
    const n0 = lab.nodes[0]!;
    const h = o.id === 'lab' ? '' : ` --id ${o.id}`;
    log(`
The lab stays up. Try:
  export TORTIE_CONFIG=${state.configFile}
  tortie get knp -A                       # the Kubernetes NetworkPolicies, as stored
  tortie get gnp -o yaml                  # the GlobalNetworkPolicy
  tortie get wep -A -o wide               # the pods' WorkloadEndpoints
  tortie lab probe${h}                      # the matrix again (--json for scripts)
  tortie node status --node ${n0.name}        # what the agent of a node reports
  tortie monitor --node ${lab.pod('dev/scratch').node}        # live drops of dev/scratch's node, named; meanwhile:
  tortie lab exec${h} dev/scratch -- ping -c1 -W1 ${lab.pod('ops/monitor').ip}   # dev may not reach ops
  bpftool map dump pinned ${n0.pinRoot}/tortie_ifaces     # this node's endpoints
  bpftool map dump pinned ${n0.pinRoot}/tortie_routes     # pod routes: local veths, remote nodes
  tortie lab down${h}                       # remove everything`);
  } catch (e) {
    // A demo that failed half way leaves nothing behind.
    await lab.close().catch(() => undefined);
    await destroyClusterLab(o.id).catch(() => undefined);
    throw e;
  }
  await lab.close();
  return wrong === 0 ? 0 : 1;
}
