/**
 * `tortie lab demo`: the README's main job. A 3-node lab (etcd, one agent process per
 * node, IPIP in BPF), six pods in three namespaces created through the CNI plugin, the
 * reachability matrix with no policy, then the policies of examples/lab-policies.yaml
 * applied through the store and the matrix again — each cell next to what the reference
 * evaluator predicts from the store. The lab stays up for the user to explore.
 *
 * With `datastore: 'kubernetes'` (`tortie --datastore kubernetes lab demo`) the same story
 * runs on a real kube-apiserver: the namespaces and pods are API objects (the lab plays
 * kubelet), the Kubernetes NetworkPolicies go in with `kubectl apply` as a user's would,
 * the rest (the GlobalNetworkPolicy) through tortie's store on the Kubernetes datastore, and
 * the wait is per kind (every agent has programmed each kind's resourceVersion).
 */
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import {
  connectKubernetesDatastore,
  kindOfObject,
  type Datastore,
  type EtcdKvClient,
  type WriteResult,
} from '../../datastore/index.js';
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
  /** Where the lab's resources live (default etcd). */
  readonly datastore?: 'etcd' | 'kubernetes';
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
  const kube = o.datastore === 'kubernetes';
  const lab = await ClusterLab.up({
    id: o.id,
    nodes: o.nodes,
    encap: o.encap,
    persist: true,
    ...(kube ? { datastore: 'kubernetes' as const } : {}),
  });
  let wrong = 0;
  // On Kubernetes the store (for the predictions, and the non-Kubernetes kinds) is tortie's
  // Kubernetes datastore, as the admin.
  let kubeStore: Datastore<EtcdKvClient> | undefined;
  try {
    if (kube)
      kubeStore = (
        await connectKubernetesDatastore({ kubeconfig: lab.kube!.server.adminKubeconfig })
      ).datastore;
    const store: Datastore<EtcdKvClient> = kubeStore ?? lab.store!;
    for (const n of lab.nodes)
      log(
        `  node ${n.name.padEnd(10)} underlay ${n.underlayIp.padEnd(15)} agent pid ${n.process?.pid ?? '-'}  pins ${n.pinRoot}`,
      );
    log(
      kube
        ? `  kube-apiserver ${lab.kube!.server.url}, agents as ${lab.kube!.agentUser}  (${((Date.now() - t0) / 1000).toFixed(1)} s)`
        : `  etcd ${lab.etcd!.endpoints.join(',')}  (${((Date.now() - t0) / 1000).toFixed(1)} s)`,
    );

    if (kube)
      for (const ns of namespaces as {
        metadata: { name: string; labels?: Record<string, string> };
      }[])
        await lab.createNamespace(ns.metadata.name, ns.metadata.labels ?? {});
    else await store.apply(namespaces);
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
      await predictFromStore(store, pods, 'tcp', 80),
    );
    log(before.text);
    wrong += before.wrong;

    const t1 = Date.now();
    if (kube) await applyOnKubernetes(lab, store, policies);
    else {
      const results = await store.apply(policies);
      await lab.waitForRevision(revisionOf(results));
    }
    log(
      `\nApplied ${policies.length} policies from ${policyFile}${kube ? ' (NetworkPolicies with kubectl apply)' : ''}; every agent had them programmed ${Date.now() - t1} ms later.`,
    );
    for (const [protocol, port] of [
      ['tcp', 80],
      ['udp', 80],
    ] as const) {
      const m = drawMatrix(
        `${protocol.toUpperCase()} ${port}, observed ("!" marks a cell that differs from the reference evaluator):`,
        keys,
        toMap(await lab.matrix(port, protocol, 1000)),
        await predictFromStore(store, pods, protocol, port),
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
    if (kube)
      log(`
The lab stays up. Try:
  export KUBECONFIG=${lab.kube!.server.adminKubeconfig}
  kubectl get pods -A -o wide                # the pods, Running with their addresses
  kubectl get networkpolicies -A
  kubectl label pod -n dev scratch team=ops  # relabel: the dataplane follows
  tortie lab probe${h}                      # the matrix again
  tortie lab status${h}
  tortie lab down${h}                       # remove everything`);
    else
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
    await kubeStore?.close().catch(() => undefined);
    await lab.close().catch(() => undefined);
    await destroyClusterLab(o.id).catch(() => undefined);
    throw e;
  }
  await kubeStore?.close();
  await lab.close();
  return wrong === 0 ? 0 : 1;
}

/**
 * On Kubernetes: the Kubernetes NetworkPolicies with `kubectl apply` (as the admin), every
 * other kind through tortie's store on the Kubernetes datastore; then waits until every
 * agent has programmed each kind at the resourceVersion written.
 */
async function applyOnKubernetes(
  lab: ClusterLab,
  store: Datastore<EtcdKvClient>,
  policies: readonly unknown[],
): Promise<void> {
  const isKnp = (p: unknown) =>
    (p as { apiVersion?: string }).apiVersion === 'networking.k8s.io/v1' &&
    (p as { kind?: string }).kind === 'NetworkPolicy';
  const want = new Map<string, bigint>();
  const note = (kind: string, rv: string | undefined) => {
    if (rv !== undefined && BigInt(rv) > (want.get(kind) ?? 0n)) want.set(kind, BigInt(rv));
  };
  const knps = policies.filter(isKnp);
  if (knps.length > 0) {
    const out = await lab.kube!.server.kubectlOk(['apply', '-o', 'json', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: knps }),
    });
    const applied = JSON.parse(out) as {
      items?: { metadata: { resourceVersion?: string } }[];
      metadata?: { resourceVersion?: string };
    };
    for (const item of applied.items ?? [applied as { metadata: { resourceVersion?: string } }])
      note('K8sNetworkPolicy', item.metadata.resourceVersion);
  }
  const rest = policies.filter((p) => !isKnp(p));
  if (rest.length > 0)
    for (const r of await store.apply(rest))
      note(
        kindOfObject(r.resource.apiVersion, r.resource.kind)?.name ?? r.resource.kind,
        r.resource.metadata.resourceVersion,
      );
  await Promise.all(
    lab.nodes.map((n) => {
      if (n.process === undefined) throw new Error(`node ${n.name} has no agent process`);
      return n.process.waitForKindRevisions(want);
    }),
  );
}
