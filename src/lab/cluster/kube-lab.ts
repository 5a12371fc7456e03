/**
 * A cluster lab's Kubernetes control plane (`datastore: 'kubernetes'`): what `tortie lab
 * up --datastore kubernetes` runs instead of the lab's own etcd.
 *
 *   1. etcd 3.6 + kube-apiserver 1.34 on loopback (../kube/apiserver.ts), detached for a
 *      persistent lab; their directory is `<work dir>/kube`, so the teardown finds their
 *      processes by it (./teardown.ts).
 *   2. manifests/ applied with kubectl as an administrator would (CRDs, the ServiceAccount
 *      and its least-privilege ClusterRole/Binding, the DaemonSet — which no controller
 *      runs here), the CRDs waited for until established.
 *   3. Credentials: the agents run with exactly the ServiceAccount of manifests/ (a token
 *      kubeconfig from the TokenRequest API, as a pod of the DaemonSet would mount it);
 *      the CNI plugin with the CNI ServiceAccount of manifests/ when there is one, else the
 *      agents' (Calico's install writes the CNI kubeconfig the same way). The lab itself
 *      plays kubelet and the user: the admin kubeconfig.
 *   4. The lab's IPPool, applied through tortie's store on the Kubernetes datastore (as
 *      `tortie apply` or calicoctl would: validated, defaulted, stored as Calico's CRD
 *      `crd.projectcalico.org/v1`), and a Node object per lab node (./kubelet.ts).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { connectKubernetesDatastore } from '../../datastore/index.js';
import { packagePath } from '../../util/package-root.js';
import {
  attachKubeApiserver,
  startKubeApiserver,
  type KubeApiserver,
  type KubeApiserverState,
} from '../kube/apiserver.js';
import { KubeApi } from './kube-api.js';
import { registerNode } from './kubelet.js';

/** A ServiceAccount of manifests/. */
export interface ManifestAccount {
  readonly namespace: string;
  readonly name: string;
}

/** What a reopened lab needs of its control plane (kept in its state file). */
export interface LabKubeState {
  readonly apiserver: KubeApiserverState;
  /** The agents' kubeconfig (the ServiceAccount's token). */
  readonly agentKubeconfig: string;
  /** The CNI plugin's kubeconfig. */
  readonly cniKubeconfig: string;
  /** Who the agents are to the API (`system:serviceaccount:<ns>:<name>`). */
  readonly agentUser: string;
}

export interface LabKube extends LabKubeState {
  readonly server: KubeApiserver;
  /** The lab's own client (administrator): it plays kubelet and the user. */
  readonly api: KubeApi;
}

/** The lab's kube-apiserver id (its etcd member is `tortie-kube-<id>-etcd`). */
export function kubeId(labId: string): string {
  return labId;
}

/** The YAML files of manifests/ (sorted: their numbering orders them). */
export function manifestFiles(dir = packagePath('manifests')): string[] {
  if (!existsSync(dir))
    throw new Error(
      `${dir} is missing: the lab on the Kubernetes datastore applies tortie's manifests (CRDs, ServiceAccount, RBAC)`,
    );
  const files = readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .map((f) => join(dir, f));
  if (files.length === 0) throw new Error(`${dir} has no .yaml files`);
  return files;
}

/**
 * The ServiceAccounts of the manifests: the agents' (the DaemonSet's
 * `serviceAccountName`, else the first) and the CNI plugin's (one named like `*cni*`).
 */
export function manifestAccounts(files: readonly string[]): {
  agent: ManifestAccount;
  cni: ManifestAccount | undefined;
} {
  const docs = files.flatMap((f) =>
    parseAllDocuments(readFileSync(f, 'utf8')).map(
      (d) =>
        (d.toJS() ?? {}) as {
          kind?: string;
          metadata?: { name?: string; namespace?: string };
          spec?: { template?: { spec?: { serviceAccountName?: string } } };
        },
    ),
  );
  const accounts = docs
    .filter((d) => d.kind === 'ServiceAccount' && typeof d.metadata?.name === 'string')
    .map((d) => ({ namespace: d.metadata!.namespace ?? 'default', name: d.metadata!.name! }));
  const dsAccount = docs.find((d) => d.kind === 'DaemonSet')?.spec?.template?.spec
    ?.serviceAccountName;
  const agent =
    accounts.find((a) => a.name === dsAccount) ?? accounts.find((a) => !/cni/.test(a.name));
  if (agent === undefined)
    throw new Error(
      `manifests (${files.join(', ')}): no ServiceAccount for the agents (the lab runs them with its token)`,
    );
  return { agent, cni: accounts.find((a) => a !== agent && /cni/.test(a.name)) };
}

/** The lab's IPPool, as a user would `tortie apply` it. */
export function ipPoolObject(cidr: string, encap: 'ipip' | 'none' | 'vxlan') {
  return {
    apiVersion: 'tortie.io/v1',
    kind: 'IPPool',
    metadata: { name: 'lab' },
    spec: {
      cidr,
      blockSize: 26,
      ipipMode: encap === 'ipip' ? 'Always' : 'Never',
      ...(encap === 'vxlan' ? { vxlanMode: 'Always' } : {}),
    },
  };
}

/**
 * Starts the control plane of a lab and prepares it (manifests, credentials, pool,
 * nodes). On a failure stops what it started.
 */
export async function startLabKube(o: {
  readonly labId: string;
  readonly dir: string;
  readonly detached: boolean;
  readonly podCidr: string;
  readonly encap: 'ipip' | 'none' | 'vxlan';
  readonly nodes: readonly { readonly name: string; readonly underlayIp: string }[];
}): Promise<LabKube> {
  const files = manifestFiles();
  const accounts = manifestAccounts(files);
  const server = await startKubeApiserver({
    id: kubeId(o.labId),
    dir: o.dir,
    detached: o.detached,
  });
  let api: KubeApi | undefined;
  try {
    await server.kubectlOk(['apply', ...files.flatMap((f) => ['-f', f])]);
    await server.kubectlOk([
      'wait',
      '--for',
      'condition=established',
      '--timeout',
      '120s',
      'crd',
      '--all',
    ]);
    const agentKubeconfig = await server.serviceAccountKubeconfig(
      accounts.agent.namespace,
      accounts.agent.name,
      { file: join(o.dir, 'agent.kubeconfig') },
    );
    const cni = accounts.cni ?? accounts.agent;
    const cniKubeconfig = await server.serviceAccountKubeconfig(cni.namespace, cni.name, {
      file: join(o.dir, 'cni.kubeconfig'),
    });
    api = KubeApi.fromKubeconfig(server.adminKubeconfig);
    const { datastore: store } = await connectKubernetesDatastore({
      kubeconfig: server.adminKubeconfig,
    });
    try {
      await store.apply([ipPoolObject(o.podCidr, o.encap)]);
    } finally {
      await store.close();
    }
    for (const n of o.nodes) await registerNode(api, n.name, `${n.underlayIp}/24`);
    return {
      server,
      api,
      apiserver: server.state(),
      agentKubeconfig,
      cniKubeconfig,
      agentUser: `system:serviceaccount:${accounts.agent.namespace}:${accounts.agent.name}`,
    };
  } catch (e) {
    api?.close();
    await server.stop().catch(() => undefined);
    throw e;
  }
}

/** The control plane of a lab built by another process, from its state. */
export function attachLabKube(state: LabKubeState): LabKube {
  const server = attachKubeApiserver(state.apiserver);
  return { ...state, server, api: KubeApi.fromKubeconfig(server.adminKubeconfig) };
}

/** What the state file keeps of it. */
export function labKubeState(k: LabKube): LabKubeState {
  return {
    apiserver: k.server.state(),
    agentKubeconfig: k.agentKubeconfig,
    cniKubeconfig: k.cniKubeconfig,
    agentUser: k.agentUser,
  };
}
