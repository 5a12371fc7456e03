/**
 * The lab's kubelet (and the bits of the controller manager a pod needs), on the
 * Kubernetes datastore: what the objects look like and in which order they are written.
 *
 *   node  a Node object per lab node, its address in Calico's annotation
 *         `projectcalico.org/IPv4Address` (as calico/node writes it), the labels kubelet
 *         sets (`kubernetes.io/hostname`, `kubernetes.io/os`, `kubernetes.io/arch`).
 *   pod   1. the Pod object (nodeName, labels, serviceAccountName, container ports) —
 *            what the scheduler leaves for kubelet; its namespace and ServiceAccount first
 *            when missing (the lab runs no controller manager to make `default`);
 *         2. CNI ADD with kubelet's CNI_ARGS (`K8S_POD_NAMESPACE`, `K8S_POD_NAME`,
 *            `K8S_POD_INFRA_CONTAINER_ID`, `K8S_POD_UID`): the plugin reads the pod from
 *            the API;
 *         3. status: phase Running, `podIP`/`podIPs`, `hostIP`, Ready — a merge patch of
 *            the status subresource, as kubelet's status manager writes it.
 *         Delete: CNI DEL, then the Pod object deleted at once (grace 0, as kubelet
 *         confirms a deletion).
 */
import { createHash } from 'node:crypto';
import { KubeApiError, resourcePath, type KubeApi, type KubeObject } from './kube-api.js';

/** Calico's node address annotation (calico/node writes `<ip>/<prefix>`). */
export const CALICO_IPV4_ANNOTATION = 'projectcalico.org/IPv4Address';

/** The image the lab's Pod objects name: nothing pulls it (the lab is the runtime). */
export const LAB_POD_IMAGE = 'tortie.io/lab-pod:none';

export interface ContainerPort {
  readonly name?: string;
  readonly containerPort: number;
  readonly protocol: 'TCP' | 'UDP' | 'SCTP';
}

/** The Node object of a lab node. */
export function nodeObject(name: string, ipv4Address: string): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name,
      labels: {
        'kubernetes.io/hostname': name,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': 'amd64',
      },
      annotations: { [CALICO_IPV4_ANNOTATION]: ipv4Address },
    },
    spec: {},
  };
}

export interface PodObjectSpec {
  readonly namespace: string;
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly nodeName: string;
  /** `spec.serviceAccountName` (default `default`). */
  readonly serviceAccount?: string;
  readonly ports?: readonly ContainerPort[];
}

/** The Pod object as the scheduler leaves it for kubelet: bound to its node. */
export function podObject(p: PodObjectSpec): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: p.name, namespace: p.namespace, labels: { ...p.labels } },
    spec: {
      nodeName: p.nodeName,
      serviceAccountName: p.serviceAccount ?? 'default',
      // The lab's pods need no token: nothing in them talks to the API.
      automountServiceAccountToken: false,
      terminationGracePeriodSeconds: 0,
      containers: [
        {
          name: 'pod',
          image: LAB_POD_IMAGE,
          ...(p.ports === undefined || p.ports.length === 0
            ? {}
            : {
                ports: p.ports.map((x) => ({
                  ...(x.name === undefined ? {} : { name: x.name }),
                  containerPort: x.containerPort,
                  protocol: x.protocol,
                })),
              }),
        },
      ],
    },
  };
}

/**
 * The pod sandbox's id as kubelet hands it to the plugin (`CNI_CONTAINERID`,
 * `K8S_POD_INFRA_CONTAINER_ID`): 64 hex digits, here derived from the pod's uid.
 */
export function sandboxId(uid: string): string {
  return createHash('sha256').update(`tortie-lab-sandbox/${uid}`).digest('hex');
}

/** kubelet's CNI_ARGS for a pod sandbox. */
export function kubeletCniArgs(p: {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly containerId: string;
}): string {
  return [
    'IgnoreUnknown=1',
    `K8S_POD_NAMESPACE=${p.namespace}`,
    `K8S_POD_NAME=${p.name}`,
    `K8S_POD_INFRA_CONTAINER_ID=${p.containerId}`,
    `K8S_POD_UID=${p.uid}`,
  ].join(';');
}

/** The status kubelet writes once the sandbox has its address and the containers run. */
export function runningStatus(
  podIp: string,
  hostIp: string,
  now = new Date(),
): Record<string, unknown> {
  const at = now.toISOString().replace(/\.\d+Z$/, 'Z');
  const cond = (type: string) => ({ type, status: 'True', lastTransitionTime: at });
  return {
    status: {
      phase: 'Running',
      podIP: podIp,
      podIPs: [{ ip: podIp }],
      hostIP: hostIp,
      hostIPs: [{ ip: hostIp }],
      startTime: at,
      conditions: [
        cond('PodReadyToStartContainers'),
        cond('Initialized'),
        cond('ContainersReady'),
        cond('Ready'),
        cond('PodScheduled'),
      ],
      containerStatuses: [
        {
          name: 'pod',
          image: LAB_POD_IMAGE,
          imageID: '',
          ready: true,
          started: true,
          restartCount: 0,
          state: { running: { startedAt: at } },
        },
      ],
    },
  };
}

/**
 * The merge patch that makes an object's labels exactly `wanted` (a key it has and
 * `wanted` lacks is removed: null in a merge patch).
 */
export function labelsPatch(
  current: Readonly<Record<string, string>> | undefined,
  wanted: Readonly<Record<string, string>>,
  keep: readonly string[] = [],
): Record<string, unknown> {
  const labels: Record<string, string | null> = { ...wanted };
  for (const k of Object.keys(current ?? {}))
    if (!(k in wanted) && !keep.includes(k)) labels[k] = null;
  return { metadata: { labels } };
}

/** The label the API server keeps on every namespace (never removed by the lab). */
export const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';

/** What the lab writes, by the API's paths. */
export const paths = {
  nodes: () => resourcePath('v1', 'nodes'),
  node: (name: string) => resourcePath('v1', 'nodes', undefined, name),
  namespaces: () => resourcePath('v1', 'namespaces'),
  namespace: (name: string) => resourcePath('v1', 'namespaces', undefined, name),
  serviceAccounts: (ns: string) => resourcePath('v1', 'serviceaccounts', ns),
  pods: (ns: string) => resourcePath('v1', 'pods', ns),
  pod: (ns: string, name: string) => resourcePath('v1', 'pods', ns, name),
  podStatus: (ns: string, name: string) => `${resourcePath('v1', 'pods', ns, name)}/status`,
  networkPolicies: (ns?: string) => resourcePath('networking.k8s.io/v1', 'networkpolicies', ns),
  networkPolicy: (ns: string, name: string) =>
    resourcePath('networking.k8s.io/v1', 'networkpolicies', ns, name),
} as const;

/** Registers the lab node (creates its Node object, or fixes the address of one there). */
export async function registerNode(
  api: KubeApi,
  name: string,
  ipv4Address: string,
): Promise<KubeObject> {
  const made = await api.ensure(paths.nodes(), nodeObject(name, ipv4Address));
  if (made.metadata.annotations?.[CALICO_IPV4_ANNOTATION] === ipv4Address) return made;
  return api.mergePatch(paths.node(name), {
    metadata: { annotations: { [CALICO_IPV4_ANNOTATION]: ipv4Address } },
  });
}

/**
 * The namespace (with `labels` when it is made here) and the pod's ServiceAccount, when
 * missing: what kubectl create ns and the controller manager's service-account
 * controller would have made.
 */
export async function ensureNamespace(
  api: KubeApi,
  name: string,
  labels: Readonly<Record<string, string>> = {},
): Promise<KubeObject> {
  return api.ensure(paths.namespaces(), {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name, labels: { ...labels } },
  });
}

export async function ensureServiceAccount(
  api: KubeApi,
  namespace: string,
  name: string,
): Promise<void> {
  await api.ensure(paths.serviceAccounts(namespace), {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: { name, namespace },
  });
}

/** Step 1: the Pod object (its namespace and ServiceAccount first). Resolves with it. */
export async function createPodObject(api: KubeApi, p: PodObjectSpec): Promise<KubeObject> {
  await ensureNamespace(api, p.namespace);
  await ensureServiceAccount(api, p.namespace, p.serviceAccount ?? 'default');
  try {
    return await api.create(paths.pods(p.namespace), podObject(p));
  } catch (e) {
    if (e instanceof KubeApiError && e.status === 409)
      throw new Error(`pod ${p.namespace}/${p.name} already exists in the API`);
    throw e;
  }
}

/** Step 3: the pod is Running with its address. Resolves with the pod as written. */
export function markPodRunning(
  api: KubeApi,
  namespace: string,
  name: string,
  podIp: string,
  hostIp: string,
): Promise<KubeObject> {
  return api.mergePatch(paths.podStatus(namespace, name), runningStatus(podIp, hostIp));
}

/** The Pod object gone (grace 0); false when it was not there. */
export function deletePodObject(api: KubeApi, namespace: string, name: string): Promise<boolean> {
  return api.delete(paths.pod(namespace, name));
}
