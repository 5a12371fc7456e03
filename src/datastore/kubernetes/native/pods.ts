/**
 * Pods as WorkloadEndpoints, the way Calico's Kubernetes datastore shows them
 * (libcalico-go's pod conversion, read for this):
 *
 *   - name `<node>-k8s-<pod>-<interface>`, each part with '-' doubled, in the pod's namespace;
 *   - labels: the pod's, plus `projectcalico.org/namespace`, `projectcalico.org/orchestrator:
 *     k8s` and `projectcalico.org/serviceaccount` (when the account's name is under 63);
 *   - profiles `kns.<namespace>` and `ksa.<namespace>.<account>`, `serviceAccountName`;
 *   - the containers' (and init containers') ports that have a name or a host port, as
 *     `spec.ports`;
 *   - addresses from the CNI plugin's annotations `cni.projectcalico.org/podIPs` /
 *     `podIP`; where the plugin never wrote them, `status.podIPs` / `status.podIP`. An
 *     annotation set to "" (the plugin's DEL) means the pod has lost its address;
 *   - `containerID` from `cni.projectcalico.org/containerID`.
 *
 * What Calico derives and tortie's CNI plugin names differently (the host veth, named from
 * the attachment, and the pod's MAC, and the CNI network's name that keys its IPAM handle)
 * is kept in `tortie.io/` annotations the plugin's put writes; a pod tortie never wired
 * gets Calico's veth name (`cali` + 11 hex digits of sha1(`<namespace>.<pod>`)).
 *
 * Pods with no WorkloadEndpoint (toKv gives nothing): not scheduled, on the host's
 * network, finished (Succeeded, Failed), or without an (IPv4) address. IPv6 addresses are
 * left out: tortie is IPv4-only for now.
 *
 * Writes: the CNI plugin's put of an endpoint becomes a merge patch of the pod's
 * annotations (as Calico's plugin does it), guarded by the pod's uid; its delete sets the
 * address annotations to "" and keeps the container ID (as Calico's plugin does, so a
 * repeated DEL still knows which sandbox it saw). Everything that comes from the pod
 * itself (labels, service account, ports, node) cannot be changed through the endpoint:
 * such a put is refused and says to use kubectl on the pod.
 */
import { createHash } from 'node:crypto';
import { isIPv4 } from '../../schema/fields.js';
import type { StoredResource } from '../../codec.js';
import type { KeyMapping, KubeDelete, KubeObject, KubeWrite } from '../mapping.js';
import {
  coreResource,
  field,
  identityOf,
  isRecord,
  keyParts,
  kv,
  rangeOf,
  readPut,
  sameJson,
  stringField,
  type PutValue,
} from './common.js';

export const POD_IP_ANNOTATION = 'cni.projectcalico.org/podIP';
export const POD_IPS_ANNOTATION = 'cni.projectcalico.org/podIPs';
export const CONTAINER_ID_ANNOTATION = 'cni.projectcalico.org/containerID';
/** tortie's CNI plugin: the host veth, the pod's MAC, the CNI network, the pod's interface. */
export const INTERFACE_NAME_ANNOTATION = 'tortie.io/interfaceName';
export const MAC_ANNOTATION = 'tortie.io/mac';
export const NETWORK_ANNOTATION = 'tortie.io/network';
export const ENDPOINT_ANNOTATION = 'tortie.io/endpoint';

const TORTIE_ANNOTATIONS = [
  INTERFACE_NAME_ANNOTATION,
  MAC_ANNOTATION,
  NETWORK_ANNOTATION,
  ENDPOINT_ANNOTATION,
] as const;

export const NAMESPACE_LABEL = 'projectcalico.org/namespace';
export const ORCHESTRATOR_LABEL = 'projectcalico.org/orchestrator';
export const SERVICE_ACCOUNT_LABEL = 'projectcalico.org/serviceaccount';
const DERIVED_LABELS = [NAMESPACE_LABEL, ORCHESTRATOR_LABEL, SERVICE_ACCOUNT_LABEL];

export const ORCHESTRATOR = 'k8s';
/** The interface kubelet asks every CNI plugin for. */
export const DEFAULT_ENDPOINT = 'eth0';

const FINISHED_PHASES = new Set(['Succeeded', 'Failed', 'Completed']);

// --- names -----------------------------------------------------------------------------

function escapeDashes(part: string): string {
  return part.replace(/-/g, '--');
}

/** `<node>-k8s-<pod>-<endpoint>`, '-' doubled in each part (Calico's k8s endpoint name). */
export function workloadEndpointName(node: string, pod: string, endpoint: string): string {
  return [node, ORCHESTRATOR, pod, endpoint].map(escapeDashes).join('-');
}

/** The parts of a dash-joined name: a single '-' separates, '--' is a '-' inside a part. */
function splitName(name: string): string[] {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < name.length; i++) {
    const c = name[i]!;
    if (c !== '-') {
      current += c;
    } else if (name[i + 1] === '-' && i > 0) {
      current += '-';
      i++;
    } else {
      parts.push(current);
      current = '';
    }
  }
  parts.push(current);
  return parts;
}

/** Node, pod and interface of a k8s endpoint name; undefined for any other name. */
export function parseWorkloadEndpointName(
  name: string,
): { node: string; pod: string; endpoint: string } | undefined {
  const parts = splitName(name);
  if (parts.length !== 4 || parts[1] !== ORCHESTRATOR || parts.some((p) => p === '')) {
    return undefined;
  }
  const [node, , pod, endpoint] = parts as [string, string, string, string];
  // Only the canonical spelling: one name, one key.
  return workloadEndpointName(node, pod, endpoint) === name ? { node, pod, endpoint } : undefined;
}

/** Calico's host veth name of a pod (FELIX_INTERFACEPREFIX unset): for pods tortie did not wire. */
export function calicoVethName(namespace: string, pod: string): string {
  return `cali${createHash('sha1').update(`${namespace}.${pod}`).digest('hex').slice(0, 11)}`;
}

// --- the pod's side ----------------------------------------------------------------------

function annotation(pod: KubeObject, key: string): string | undefined {
  return pod.metadata.annotations?.[key];
}

/** An address as ipNetworks holds it (a.b.c.d/32); undefined for IPv6 or garbage. */
function asNetwork(text: string): string | undefined {
  const [address = '', prefix, ...rest] = text.trim().split('/');
  if (rest.length > 0 || !isIPv4(address)) return undefined;
  if (prefix !== undefined && prefix !== '32') return undefined;
  return `${address}/32`;
}

/** The pod's IPv4 addresses: the CNI plugin's annotations first, then the pod's status. */
export function podNetworks(pod: KubeObject): string[] {
  const plural = annotation(pod, POD_IPS_ANNOTATION);
  const single = annotation(pod, POD_IP_ANNOTATION);
  let texts: string[];
  if (plural !== undefined || single !== undefined) {
    // Written by the plugin: authoritative, "" included (the plugin's DEL took the address).
    texts =
      plural !== undefined && plural !== ''
        ? plural.split(',')
        : single !== undefined && single !== ''
          ? [single]
          : [];
  } else {
    const ips = field(pod, 'status', 'podIPs');
    const fromList = Array.isArray(ips)
      ? ips.flatMap((e: unknown) => (isRecord(e) && typeof e.ip === 'string' ? [e.ip] : []))
      : [];
    const podIP = stringField(pod, 'status', 'podIP');
    texts = fromList.length > 0 ? fromList : podIP === undefined ? [] : [podIP];
  }
  const out: string[] = [];
  for (const t of texts) {
    const n = asNetwork(t);
    if (n !== undefined && !out.includes(n)) out.push(n);
  }
  return out;
}

/** Why a pod has no WorkloadEndpoint at all (whatever its addresses); undefined: it can have one. */
export function podIneligible(pod: KubeObject): string | undefined {
  if (field(pod, 'spec', 'hostNetwork') === true)
    return "it uses the host's network (hostNetwork: true)";
  if (stringField(pod, 'spec', 'nodeName') === undefined)
    return 'it is not scheduled to a node yet (spec.nodeName is empty)';
  const phase = stringField(pod, 'status', 'phase');
  if (phase !== undefined && FINISHED_PHASES.has(phase))
    return `it has finished (status.phase ${phase})`;
  return undefined;
}

interface PortOut {
  name: string;
  protocol: 'TCP' | 'UDP' | 'SCTP';
  port: number;
  hostPort?: number;
  hostIP?: string;
}

/** The containers' ports that have a name or a host port, as Calico lists them. */
export function podPorts(pod: KubeObject): PortOut[] {
  const out: PortOut[] = [];
  for (const list of ['containers', 'initContainers']) {
    const containers = field(pod, 'spec', list);
    if (!Array.isArray(containers)) continue;
    for (const c of containers) {
      if (!isRecord(c) || !Array.isArray(c.ports)) continue;
      for (const p of c.ports) {
        if (!isRecord(p)) continue;
        const port = typeof p.containerPort === 'number' ? p.containerPort : 0;
        const hostPort = typeof p.hostPort === 'number' ? p.hostPort : 0;
        const name = typeof p.name === 'string' ? p.name : '';
        if (port === 0 || (hostPort === 0 && name === '')) continue;
        const protocol = p.protocol === undefined || p.protocol === '' ? 'TCP' : p.protocol;
        if (protocol !== 'TCP' && protocol !== 'UDP' && protocol !== 'SCTP') continue;
        out.push({
          name,
          protocol,
          port,
          ...(hostPort === 0 ? {} : { hostPort }),
          ...(typeof p.hostIP === 'string' && p.hostIP !== '' ? { hostIP: p.hostIP } : {}),
        });
      }
    }
  }
  return out;
}

function serviceAccountOf(pod: KubeObject): string | undefined {
  return (
    stringField(pod, 'spec', 'serviceAccountName') ?? stringField(pod, 'spec', 'serviceAccount')
  );
}

/** The labels a pod's endpoint carries: the pod's, then the three Calico adds. */
export function podEndpointLabels(pod: KubeObject): Record<string, string> {
  const namespace = pod.metadata.namespace ?? 'default';
  const sa = serviceAccountOf(pod);
  return {
    ...(pod.metadata.labels ?? {}),
    [NAMESPACE_LABEL]: namespace,
    [ORCHESTRATOR_LABEL]: ORCHESTRATOR,
    ...(sa !== undefined && sa.length < 63 ? { [SERVICE_ACCOUNT_LABEL]: sa } : {}),
  };
}

function podProfiles(pod: KubeObject): string[] {
  const namespace = pod.metadata.namespace ?? 'default';
  const sa = serviceAccountOf(pod);
  return sa === undefined ? [`kns.${namespace}`] : [`kns.${namespace}`, `ksa.${namespace}.${sa}`];
}

function endpointOf(pod: KubeObject): string {
  return annotation(pod, ENDPOINT_ANNOTATION) || DEFAULT_ENDPOINT;
}

/** The WorkloadEndpoint of a pod; undefined when the pod has none. */
export function podToWorkloadEndpoint(pod: KubeObject): StoredResource | undefined {
  if (podIneligible(pod) !== undefined) return undefined;
  const ipNetworks = podNetworks(pod);
  if (ipNetworks.length === 0) return undefined;
  const namespace = pod.metadata.namespace ?? 'default';
  const node = stringField(pod, 'spec', 'nodeName')!;
  const name = pod.metadata.name;
  const endpoint = endpointOf(pod);
  const sa = serviceAccountOf(pod);
  const containerID = annotation(pod, CONTAINER_ID_ANNOTATION);
  const network = annotation(pod, NETWORK_ANNOTATION);
  const mac = annotation(pod, MAC_ANNOTATION);
  return {
    apiVersion: 'projectcalico.org/v3',
    kind: 'WorkloadEndpoint',
    metadata: {
      ...identityOf(pod, workloadEndpointName(node, name, endpoint), namespace),
      labels: podEndpointLabels(pod),
    },
    // In the order of tortie's schema, so a put of what was read is "unchanged".
    spec: {
      node,
      orchestrator: ORCHESTRATOR,
      endpoint,
      ...(containerID ? { containerID } : {}),
      ...(network ? { network } : {}),
      interfaceName: annotation(pod, INTERFACE_NAME_ANNOTATION) || calicoVethName(namespace, name),
      ...(mac ? { mac } : {}),
      ipNetworks,
      profiles: podProfiles(pod),
      ports: podPorts(pod),
      pod: name,
      ...(sa === undefined ? {} : { serviceAccountName: sa }),
    },
  };
}

// --- writes --------------------------------------------------------------------------------

/** `name/PROTOCOL/port` of every named port, for comparing what a put carries with the pod's. */
function namedPorts(ports: readonly unknown[]): string[] {
  return ports.flatMap((p) =>
    isRecord(p) && typeof p.name === 'string' && p.name !== ''
      ? [
          `${p.name}/${typeof p.protocol === 'string' ? p.protocol.toUpperCase() : 'TCP'}/${String(p.port)}`,
        ]
      : [],
  );
}

function sameSet(a: readonly unknown[], b: readonly unknown[]): boolean {
  return sameJson([...a].map(String).sort(), [...b].map(String).sort());
}

/** Spec fields the pod's endpoint takes from the pod; a put may repeat them, never change them. */
function podDerived(pod: KubeObject, v: PutValue, who: string): string | undefined {
  const use = `change the pod (kubectl) instead: on the Kubernetes datastore ${who} is the pod's`;
  const derivedLabels = podEndpointLabels(pod);
  const own = (labels: Readonly<Record<string, string>>) =>
    Object.fromEntries(Object.entries(labels).filter(([k]) => !DERIVED_LABELS.includes(k)));
  for (const k of DERIVED_LABELS) {
    const given = v.labels[k];
    if (given !== undefined && given !== derivedLabels[k]) {
      return `metadata.labels[${JSON.stringify(k)}]: is ${JSON.stringify(given)} but comes from the pod (${JSON.stringify(derivedLabels[k] ?? '(none)')}); ${use}`;
    }
  }
  if (!sameJson(own(v.labels), own(derivedLabels))) {
    return `metadata.labels: the labels of ${who} are pod ${pod.metadata.namespace}/${pod.metadata.name}'s; use kubectl label pod -n ${pod.metadata.namespace} ${pod.metadata.name} to change them`;
  }
  if (Object.keys(v.annotations).length > 0) {
    return `metadata.annotations: ${who} has none of its own on the Kubernetes datastore; annotate the pod (kubectl annotate pod) instead`;
  }
  const s = v.spec;
  const node = stringField(pod, 'spec', 'nodeName');
  const sa = serviceAccountOf(pod);
  const checks: [string, unknown, unknown][] = [
    ['node', s.node, node],
    ['orchestrator', s.orchestrator, ORCHESTRATOR],
    ['pod', s.pod, pod.metadata.name],
    ['workload', s.workload, pod.metadata.name],
    ['serviceAccountName', s.serviceAccountName, sa],
  ];
  for (const [f, given, derived] of checks) {
    if (given !== undefined && given !== '' && given !== derived) {
      return `spec.${f}: is ${JSON.stringify(given)} but the pod's is ${JSON.stringify(derived ?? '(none)')}; ${use}`;
    }
  }
  if (
    Array.isArray(s.profiles) &&
    s.profiles.length > 0 &&
    !sameSet(s.profiles, podProfiles(pod))
  ) {
    return `spec.profiles: a pod's endpoint has the profiles ${podProfiles(pod).join(', ')} (its namespace and service account); ${use}`;
  }
  // Named ports are what policy sees; host-port entries and their order are the pod's detail.
  const named = namedPorts(podPorts(pod));
  if (Array.isArray(s.ports) && s.ports.length > 0 && !sameSet(namedPorts(s.ports), named)) {
    return `spec.ports: a pod's endpoint has its containers' named ports (${named.join(', ') || 'none'}); ${use}`;
  }
  for (const f of [
    'ipNATs',
    'ipv4Gateway',
    'ipv6Gateway',
    'allowSpoofedSourcePrefixes',
    'qosControls',
  ]) {
    if (s[f] !== undefined) {
      return `spec.${f}: not kept on the Kubernetes datastore (a pod's endpoint carries its addresses, container ID and interface only)`;
    }
  }
  return undefined;
}

function fromPut(
  key: string,
  value: string,
  current: KubeObject | undefined,
  prefix: string,
): KubeWrite {
  const ref = objectRef(key, prefix);
  if (ref === undefined) {
    return {
      refused: `${key} is not a pod's WorkloadEndpoint: on the Kubernetes datastore endpoints are named <node>-k8s-<pod>-<interface> (each '-' in a part doubled), as Calico names them`,
    };
  }
  const who = `WorkloadEndpoint ${ref.namespace}/${key.slice(key.lastIndexOf('/') + 1)}`;
  if (current === undefined) {
    return {
      refused: `${who}: pod ${ref.namespace}/${ref.name} does not exist; on the Kubernetes datastore an endpoint is a pod's (create the pod with kubectl; the CNI plugin fills in its address)`,
    };
  }
  const why = podIneligible(current);
  if (why !== undefined) {
    return { refused: `${who}: pod ${ref.namespace}/${ref.name} has no WorkloadEndpoint: ${why}` };
  }
  const parsed = readPut(key, value);
  if ('refused' in parsed) return parsed;
  const parts = parseWorkloadEndpointName(key.slice(key.lastIndexOf('/') + 1))!;
  const node = stringField(current, 'spec', 'nodeName');
  if (parts.node !== node) {
    return {
      refused: `${who}: names node ${parts.node} but pod ${ref.namespace}/${ref.name} runs on ${node}`,
    };
  }
  const endpoint = parsed.spec.endpoint ?? DEFAULT_ENDPOINT;
  if (endpoint !== parts.endpoint) {
    return {
      refused: `spec.endpoint: is ${JSON.stringify(endpoint)} but ${who} names interface ${parts.endpoint}`,
    };
  }
  const refusal = podDerived(current, parsed, who);
  if (refusal !== undefined) return { refused: `${who}: ${refusal}` };
  const s = parsed.spec;
  const networks = Array.isArray(s.ipNetworks) ? s.ipNetworks : [];
  if (networks.length === 0 || !networks.every((n) => typeof n === 'string')) {
    return {
      refused: `${who}: spec.ipNetworks: a pod's endpoint exists on the Kubernetes datastore only while it has an address (give one, or delete the endpoint)`,
    };
  }
  const text = (f: string): string | null =>
    typeof s[f] === 'string' && s[f] !== '' ? (s[f] as string) : null;
  const annotations: Record<string, string | null> = {
    [POD_IP_ANNOTATION]: networks[0] as string,
    [POD_IPS_ANNOTATION]: (networks as string[]).join(','),
    [INTERFACE_NAME_ANNOTATION]: text('interfaceName'),
    [MAC_ANNOTATION]: text('mac'),
    [NETWORK_ANNOTATION]: text('network'),
    [ENDPOINT_ANNOTATION]: endpoint === DEFAULT_ENDPOINT ? null : endpoint,
  };
  // As Calico's plugin: the container ID is written when given, never taken away by a put.
  const containerID = text('containerID');
  if (containerID !== null) annotations[CONTAINER_ID_ANNOTATION] = containerID;
  return { mergePatch: { metadata: { uid: current.metadata.uid, annotations } } };
}

function fromDelete(_key: string, current: KubeObject): KubeDelete {
  const annotations: Record<string, string | null> = {
    [POD_IP_ANNOTATION]: '',
    [POD_IPS_ANNOTATION]: '',
  };
  for (const a of TORTIE_ANNOTATIONS) annotations[a] = null;
  return { mergePatch: { metadata: { uid: current.metadata.uid, annotations } } };
}

function objectRef(key: string, prefix: string): { name: string; namespace: string } | undefined {
  const parts = keyParts(key, rangeOf('WorkloadEndpoint', prefix), true);
  if (parts === undefined) return undefined;
  const id = parseWorkloadEndpointName(parts.name);
  return id === undefined ? undefined : { name: id.pod, namespace: parts.namespace! };
}

export const PODS: KeyMapping = {
  resource: coreResource('pods', 'Pod', true),
  keyPrefix: (prefix) => rangeOf('WorkloadEndpoint', prefix),
  objectRef,
  toKv(pod, prefix) {
    const wep = podToWorkloadEndpoint(pod);
    if (wep === undefined) return undefined;
    const key = `${rangeOf('WorkloadEndpoint', prefix)}${wep.metadata.namespace}/${wep.metadata.name}`;
    return kv(key, wep);
  },
  fromPut,
  fromDelete,
};
