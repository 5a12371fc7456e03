/**
 * CniBackend on the Kubernetes datastore (`datastore_type: "kubernetes"`): the same store
 * and IPAM code as on etcd (./etcd-backend.ts's StoreBackend), over the emulated etcd client
 * of src/datastore/kubernetes, so IPAM's blocks, affinities and handles are Calico's CRDs
 * and the WorkloadEndpoint put is the merge patch of the pod's annotations that the native
 * Pod mapping makes of it. What only Kubernetes has is added here: the pod and its
 * namespace, read from the API for Calico's annotations and for what the endpoint takes
 * from the pod (labels, service account, named ports).
 *
 * The wait for the node's agent reads its status keys through the same client: the status
 * range is carried by tortiestatuses.tortie.io objects.
 */
import { isDatastoreError } from '../datastore/index.js';
import {
  connectKubernetesDatastore,
  isKubeApiError,
  type KubeObject,
  type KubeResource,
} from '../datastore/kubernetes/index.js';
import { podEndpointLabels, podPorts } from '../datastore/kubernetes/native/pods.js';
import { Ipam } from '../ipam/index.js';
import { serviceAccountProfileName } from '../policy/service-accounts.js';
import { DatastoreUnavailable } from './backend.js';
import type { NetworkConfig } from './config.js';
import { StoreBackend } from './etcd-backend.js';
import type { PodFacts } from './k8s-pod.js';

const PODS: KubeResource = {
  group: '',
  version: 'v1',
  plural: 'pods',
  kind: 'Pod',
  namespaced: true,
};
const NAMESPACES: KubeResource = {
  group: '',
  version: 'v1',
  plural: 'namespaces',
  kind: 'Namespace',
  namespaced: false,
};

/**
 * Deadline of every API call. Longer than etcd's 5 s: one store or IPAM operation is a few
 * API requests (a compare-and-swap reads the object, then writes it), each going through the
 * API server to its etcd, and a busy node must not turn a slow answer into a failed DEL.
 * An unreachable API server still fails the call (code 11: kubelet retries).
 */
export const KUBE_TIMEOUT_MS = 15_000;

export async function openKubeBackend(config: NetworkConfig): Promise<StoreBackend> {
  const kubeconfig = config.kubernetes?.kubeconfig;
  const where = kubeconfig === undefined ? 'in-cluster service account' : kubeconfig;
  const description = `the Kubernetes API (${where})`;
  let connected: Awaited<ReturnType<typeof connectKubernetesDatastore>>;
  try {
    connected = await connectKubernetesDatastore({
      ...(kubeconfig === undefined ? {} : { kubeconfig }),
      ...(config.datastore.prefix === undefined ? {} : { prefix: config.datastore.prefix }),
      timeoutMs: KUBE_TIMEOUT_MS,
    });
  } catch (err) {
    if (isDatastoreError(err, 'unavailable')) {
      throw new DatastoreUnavailable(`${description}: ${(err as Error).message}`, { cause: err });
    }
    throw err;
  }
  const { datastore, kv } = connected;
  const ipam = new Ipam(kv, datastore.prefix, { timeoutMs: KUBE_TIMEOUT_MS });
  return new KubeBackend(datastore, ipam, description, kv.api);
}

class KubeBackend extends StoreBackend {
  /** The endpoint's key is the pod's, which exists before its ADD. */
  protected override readonly trustsSeenAbsent = false;

  constructor(
    store: ConstructorParameters<typeof StoreBackend>[0],
    ipam: Ipam,
    description: string,
    private readonly api: {
      get(
        r: KubeResource,
        name: string,
        namespace?: string,
        deadline?: number,
      ): Promise<KubeObject>;
    },
  ) {
    super(store, ipam, description);
  }

  async readPod(namespace: string, name: string): Promise<PodFacts | undefined> {
    const deadline = Date.now() + KUBE_TIMEOUT_MS;
    const [pod, ns] = await Promise.all([
      this.getOrUndefined(PODS, name, namespace, deadline),
      this.getOrUndefined(NAMESPACES, namespace, undefined, deadline),
    ]);
    if (pod === undefined) return undefined;
    const spec = (pod.spec ?? {}) as { serviceAccountName?: unknown; serviceAccount?: unknown };
    const account =
      typeof spec.serviceAccountName === 'string'
        ? spec.serviceAccountName
        : typeof spec.serviceAccount === 'string'
          ? spec.serviceAccount
          : undefined;
    return {
      namespace,
      name,
      ...(pod.metadata.uid === undefined ? {} : { uid: pod.metadata.uid }),
      annotations: { ...(pod.metadata.annotations ?? {}) },
      namespaceAnnotations: { ...(ns?.metadata.annotations ?? {}) },
      endpoint: {
        labels: podEndpointLabels(pod),
        profiles:
          account === undefined
            ? [`kns.${namespace}`]
            : [`kns.${namespace}`, serviceAccountProfileName(namespace, account)],
        ports: podPorts(pod),
        ...(account === undefined ? {} : { serviceAccountName: account }),
      },
    };
  }

  private async getOrUndefined(
    r: KubeResource,
    name: string,
    namespace: string | undefined,
    deadline: number,
  ): Promise<KubeObject | undefined> {
    try {
      return await this.api.get(r, name, namespace, deadline);
    } catch (err) {
      if (isKubeApiError(err, 404)) return undefined;
      if (isKubeApiError(err)) throw err;
      throw new DatastoreUnavailable(
        `${this.description} is unreachable: read ${r.plural} ${namespace === undefined ? '' : `${namespace}/`}${name}: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }
}
