/**
 * Who the pod is: namespace, workload name, labels, orchestrator, and the name of its
 * WorkloadEndpoint.
 *
 * Sources, highest precedence first: `runtimeConfig.tortie`, `args.tortie` (and
 * `args.cni.labels`, the CNI labels convention), CNI_ARGS (K8S_POD_NAMESPACE,
 * K8S_POD_NAME), then defaults: namespace "default", workload = the container id.
 * The orchestrator is "k8s" when CNI_ARGS carries both K8S_POD_NAMESPACE and K8S_POD_NAME
 * (kubelet, containerd, CRI-O), else "cni" (podman sets only K8S_POD_NAME, to the
 * container name).
 *
 * Endpoint names follow Calico: `<node>-<orchestrator>-<workload>-<endpoint>`, each part
 * with '-' doubled, so that the single dashes between parts stay unambiguous:
 * node "n-1", pod "web-0", eth0 → `n--1-k8s-web--0-eth0`. A name that would not be a
 * valid resource name (upper case or '_' in a container name, longer than 253) becomes
 * `<node>-<orchestrator>-x<sha1(namespace/workload/endpoint), 20 hex>` instead.
 */
import { createHash } from 'node:crypto';
import type { CniArgs } from './cni-args.js';
import type { IdentityOverrides } from './config.js';

export const DEFAULT_NAMESPACE = 'default';

export interface WorkloadIdentity {
  orchestrator: 'k8s' | 'cni';
  namespace: string;
  workload: string;
  endpoint: string;
  node: string;
  labels: Record<string, string>;
  /** The pod's service account, when the runtime named one. */
  serviceAccount?: string;
  /** The WorkloadEndpoint's metadata.name. */
  endpointName: string;
}

const RESOURCE_NAME = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;

export function workloadIdentity(input: {
  node: string;
  containerId: string;
  ifName: string;
  args: CniArgs;
  overrides: IdentityOverrides;
}): WorkloadIdentity {
  const { args, overrides } = input;
  const orchestrator =
    args.podNamespace !== undefined && args.podName !== undefined ? 'k8s' : 'cni';
  const namespace = overrides.namespace ?? args.podNamespace ?? DEFAULT_NAMESPACE;
  const workload = overrides.name ?? args.podName ?? input.containerId;
  return {
    orchestrator,
    namespace,
    workload,
    endpoint: input.ifName,
    node: input.node,
    labels: { ...overrides.labels },
    ...(overrides.serviceAccount === undefined ? {} : { serviceAccount: overrides.serviceAccount }),
    endpointName: endpointName(input.node, orchestrator, namespace, workload, input.ifName),
  };
}

export function endpointName(
  node: string,
  orchestrator: string,
  namespace: string,
  workload: string,
  endpoint: string,
): string {
  const calico = [node, orchestrator, workload, endpoint].map(escapeDashes).join('-');
  if (RESOURCE_NAME.test(calico)) return calico;
  const digest = createHash('sha1').update(`${namespace}/${workload}/${endpoint}`).digest('hex');
  return `${escapeDashes(node)}-${orchestrator}-x${digest.slice(0, 20)}`;
}

function escapeDashes(part: string): string {
  return part.replace(/-/g, '--');
}
