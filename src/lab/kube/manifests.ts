/**
 * tortie's manifests (manifests/ of the package, docs/kubernetes.md) installed on a lab's API
 * server, for a lab or test that plays the nodes itself: the CRDs (waited for until the API
 * serves them) and the `tortie-node` ServiceAccount with its ClusterRole and binding. The
 * DaemonSet is left out: the lab runs the agents itself, as that ServiceAccount
 * (`nodeKubeconfig`), so that RBAC applies to them exactly as in a cluster.
 *
 * Each object goes through server-side apply (field manager `tortie-lab`), so a second call
 * changes nothing and a changed manifest updates what is there.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { packagePath } from '../../util/package-root.js';
import type { KubeApiserver } from './apiserver.js';

/** The files applied, in order (the DaemonSet's, 20-daemonset.yaml, is not). */
export const LAB_MANIFESTS = ['00-crds-calico.yaml', '01-crds-tortie.yaml', '10-rbac.yaml'];

/** The node's identity in the manifests. */
export const NODE_SERVICE_ACCOUNT = { namespace: 'kube-system', name: 'tortie-node' } as const;

interface ManifestObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
}

/** Where an object of the kinds the manifests hold is applied. */
function objectPath(o: ManifestObject): string {
  const name = encodeURIComponent(o.metadata.name);
  switch (`${o.apiVersion}/${o.kind}`) {
    case 'apiextensions.k8s.io/v1/CustomResourceDefinition':
      return `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`;
    case 'v1/ServiceAccount':
      return `/api/v1/namespaces/${encodeURIComponent(o.metadata.namespace ?? 'default')}/serviceaccounts/${name}`;
    case 'rbac.authorization.k8s.io/v1/ClusterRole':
      return `/apis/rbac.authorization.k8s.io/v1/clusterroles/${name}`;
    case 'rbac.authorization.k8s.io/v1/ClusterRoleBinding':
      return `/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${name}`;
    default:
      throw new Error(
        `manifests: ${o.apiVersion} ${o.kind} ${o.metadata.name}: not a kind the lab installs`,
      );
  }
}

/** The objects of `files` (under `dir`, default the package's manifests/), in order. */
export function readManifests(
  files: readonly string[] = LAB_MANIFESTS,
  dir: string = packagePath('manifests'),
): ManifestObject[] {
  return files.flatMap((f) => {
    const file = join(dir, f);
    return parseAllDocuments(readFileSync(file, 'utf8')).flatMap((d) => {
      if (d.errors.length > 0) throw new Error(`${file}: ${d.errors[0]!.message}`);
      const o = d.toJS() as ManifestObject | null;
      return o === null ? [] : [o];
    });
  });
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Applies the CRDs, ServiceAccount and RBAC of manifests/ and waits until every CRD is
 * Established; returns a kubeconfig of the `tortie-node` ServiceAccount (a fresh token).
 */
export async function installLabManifests(
  api: KubeApiserver,
  options: { readonly timeoutMs?: number; readonly dir?: string } = {},
): Promise<{ nodeKubeconfig: string }> {
  const objects = readManifests(LAB_MANIFESTS, options.dir);
  for (const o of objects) {
    const r = await api.request(
      'PATCH',
      `${objectPath(o)}?fieldManager=tortie-lab&force=true`,
      o,
      'application/apply-patch+yaml',
    );
    if (r.status !== 200 && r.status !== 201)
      throw new Error(
        `applying ${o.kind} ${o.metadata.name}: ${r.status} ${JSON.stringify(r.body).slice(0, 500)}`,
      );
  }
  const crds = objects.filter((o) => o.kind === 'CustomResourceDefinition');
  const deadline = Date.now() + (options.timeoutMs ?? 120_000);
  for (const crd of crds) {
    for (;;) {
      const r = await api.request<{
        status?: { conditions?: { type: string; status: string }[] };
      }>('GET', objectPath(crd));
      const established = r.body.status?.conditions?.some(
        (c) => c.type === 'Established' && c.status === 'True',
      );
      if (established === true) break;
      if (Date.now() > deadline)
        throw new Error(`CRD ${crd.metadata.name} not Established in time`);
      await pause(100);
    }
  }
  const nodeKubeconfig = await api.serviceAccountKubeconfig(
    NODE_SERVICE_ACCOUNT.namespace,
    NODE_SERVICE_ACCOUNT.name,
  );
  return { nodeKubeconfig };
}
