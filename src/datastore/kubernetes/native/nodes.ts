/**
 * Kubernetes Nodes as Calico Nodes, the way Calico's Kubernetes datastore shows them
 * (libcalico-go's node client, read for this):
 *
 *   - spec.bgp.ipv4Address from the annotation `projectcalico.org/IPv4Address`, else the
 *     node's InternalIP (as a /32: what kubelet registered, until an agent writes its own);
 *     `asNumber` from `projectcalico.org/ASNumber` (plain or dotted "a.b"),
 *     `routeReflectorClusterID`, the IPIP and VXLAN tunnel addresses and the VXLAN MAC
 *     from their annotations; `orchRefs: [{nodeName, orchestrator: k8s}]`;
 *   - labels: the Kubernetes node's, over the labels only Calico's Node has, which live in
 *     the annotation `projectcalico.org/labels` (JSON), as Calico keeps them; Calico's
 *     annotations of the Node in `projectcalico.org/annotations` (JSON).
 *
 * The agent's put of its Node (address, AS number, its own labels) becomes a merge patch of
 * those annotations. A Node is the kubelet's: it is never created, deleted or relabelled
 * (its Kubernetes labels) through tortie; such writes are refused and say what does it.
 */
import { isIPv4 } from '../../schema/fields.js';
import type { StoredResource } from '../../codec.js';
import type { KeyMapping, KubeObject, KubeWrite } from '../mapping.js';
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
} from './common.js';

export const IPV4_ADDRESS_ANNOTATION = 'projectcalico.org/IPv4Address';
export const AS_NUMBER_ANNOTATION = 'projectcalico.org/ASNumber';
export const RR_CLUSTER_ID_ANNOTATION = 'projectcalico.org/RouteReflectorClusterID';
export const IPIP_TUNNEL_ANNOTATION = 'projectcalico.org/IPv4IPIPTunnelAddr';
export const VXLAN_TUNNEL_ANNOTATION = 'projectcalico.org/IPv4VXLANTunnelAddr';
export const VXLAN_MAC_ANNOTATION = 'projectcalico.org/VXLANTunnelMACAddr';
/** Calico's labels and annotations of a Node that Kubernetes' Node does not have. */
export const CALICO_LABELS_ANNOTATION = 'projectcalico.org/labels';
export const CALICO_ANNOTATIONS_ANNOTATION = 'projectcalico.org/annotations';

const MAX_ASN = 4294967295;

function jsonStrings(text: string | undefined): Record<string, string> {
  if (text === undefined || text === '') return {};
  try {
    const v: unknown = JSON.parse(text);
    if (!isRecord(v)) return {};
    return Object.fromEntries(
      Object.entries(v).filter((e): e is [string, string] => typeof e[1] === 'string'),
    );
  } catch {
    return {};
  }
}

/** `64512` or Calico's dotted `1.10` (= 1·65536 + 10); undefined when neither. */
export function parseAsNumber(text: string): number | undefined {
  const dotted = /^(\d+)\.(\d+)$/.exec(text);
  const n = dotted
    ? Number(dotted[1]) * 65536 + Number(dotted[2])
    : /^\d+$/.test(text)
      ? Number(text)
      : NaN;
  if (dotted && (Number(dotted[1]) > 65535 || Number(dotted[2]) > 65535)) return undefined;
  return Number.isInteger(n) && n >= 1 && n <= MAX_ASN ? n : undefined;
}

function cidrV4(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const [address = '', prefix, ...rest] = text.split('/');
  if (rest.length > 0 || !isIPv4(address) || prefix === undefined) return undefined;
  return /^(0|[1-9]\d?)$/.test(prefix) && Number(prefix) <= 32 ? text : undefined;
}

function ipv4(text: string | undefined): string | undefined {
  return text !== undefined && isIPv4(text) ? text : undefined;
}

function internalIP(node: KubeObject): string | undefined {
  const addresses = field(node, 'status', 'addresses');
  if (!Array.isArray(addresses)) return undefined;
  for (const a of addresses) {
    if (
      isRecord(a) &&
      a.type === 'InternalIP' &&
      typeof a.address === 'string' &&
      isIPv4(a.address)
    )
      return `${a.address}/32`;
  }
  return undefined;
}

function bgpOf(node: KubeObject): Record<string, unknown> | undefined {
  const a = node.metadata.annotations ?? {};
  const asNumber =
    a[AS_NUMBER_ANNOTATION] === undefined ? undefined : parseAsNumber(a[AS_NUMBER_ANNOTATION]);
  const bgp = {
    ...(() => {
      const address = cidrV4(a[IPV4_ADDRESS_ANNOTATION]) ?? internalIP(node);
      return address === undefined ? {} : { ipv4Address: address };
    })(),
    ...(asNumber === undefined ? {} : { asNumber }),
    ...(ipv4(a[RR_CLUSTER_ID_ANNOTATION]) === undefined
      ? {}
      : { routeReflectorClusterID: a[RR_CLUSTER_ID_ANNOTATION] }),
    ...(ipv4(a[IPIP_TUNNEL_ANNOTATION]) === undefined
      ? {}
      : { ipv4IPIPTunnelAddr: a[IPIP_TUNNEL_ANNOTATION] }),
  };
  return Object.keys(bgp).length === 0 ? undefined : bgp;
}

function orchRefs(node: KubeObject): { nodeName: string; orchestrator: string }[] {
  return [{ nodeName: node.metadata.name, orchestrator: 'k8s' }];
}

/** The Calico Node of a Kubernetes Node. */
export function nodeToCalicoNode(node: KubeObject): StoredResource {
  const a = node.metadata.annotations ?? {};
  const labels = { ...jsonStrings(a[CALICO_LABELS_ANNOTATION]), ...(node.metadata.labels ?? {}) };
  const annotations = jsonStrings(a[CALICO_ANNOTATIONS_ANNOTATION]);
  const bgp = bgpOf(node);
  const vxlan = ipv4(a[VXLAN_TUNNEL_ANNOTATION]);
  const vxlanMac = a[VXLAN_MAC_ANNOTATION];
  return {
    apiVersion: 'projectcalico.org/v3',
    kind: 'Node',
    metadata: {
      ...identityOf(node, node.metadata.name),
      ...(Object.keys(labels).length === 0 ? {} : { labels }),
      ...(Object.keys(annotations).length === 0 ? {} : { annotations }),
    },
    spec: {
      ...(bgp === undefined ? {} : { bgp }),
      ...(vxlan === undefined ? {} : { ipv4VXLANTunnelAddr: vxlan }),
      ...(vxlanMac ? { vxlanTunnelMACAddr: vxlanMac } : {}),
      orchRefs: orchRefs(node),
    },
  };
}

const KEPT_SPEC = ['bgp', 'ipv4VXLANTunnelAddr', 'vxlanTunnelMACAddr', 'orchRefs'];
const KEPT_BGP = ['ipv4Address', 'asNumber', 'routeReflectorClusterID', 'ipv4IPIPTunnelAddr'];

function fromPut(
  key: string,
  value: string,
  current: KubeObject | undefined,
  prefix: string,
): KubeWrite {
  const name = keyParts(key, rangeOf('Node', prefix), false)?.name ?? key;
  if (current === undefined) {
    return {
      refused: `Node ${name} is not registered in Kubernetes: on the Kubernetes datastore a Node is the kubelet's (it registers the node when it starts; in the lab, tortie lab up --datastore kubernetes does); it cannot be created through tortie`,
    };
  }
  const parsed = readPut(key, value);
  if ('refused' in parsed) return parsed;
  const who = `Node ${name}`;
  const k8sLabels = current.metadata.labels ?? {};
  for (const [k, v] of Object.entries(k8sLabels)) {
    const given = parsed.labels[k];
    if (given === undefined) {
      return {
        refused: `${who}: metadata.labels[${JSON.stringify(k)}] is the Kubernetes node's; remove it with kubectl label node ${name} ${k}-`,
      };
    }
    if (given !== v) {
      return {
        refused: `${who}: metadata.labels[${JSON.stringify(k)}] is the Kubernetes node's (${JSON.stringify(v)}); change it with kubectl label node ${name} ${k}=${given} --overwrite`,
      };
    }
  }
  const s = parsed.spec;
  for (const f of Object.keys(s)) {
    if (!KEPT_SPEC.includes(f)) {
      return {
        refused: `${who}: spec.${f}: not kept on the Kubernetes datastore (a Node carries ${KEPT_SPEC.join(', ')} there, in annotations of the Kubernetes node)`,
      };
    }
  }
  if (s.orchRefs !== undefined && !sameJson(s.orchRefs, orchRefs(current))) {
    return {
      refused: `${who}: spec.orchRefs: on the Kubernetes datastore a Node refers to its Kubernetes node (${JSON.stringify(orchRefs(current))}) and nothing else`,
    };
  }
  const bgp = isRecord(s.bgp) ? s.bgp : {};
  if (s.bgp !== undefined && !isRecord(s.bgp))
    return { refused: `${who}: spec.bgp must be an object` };
  for (const f of Object.keys(bgp)) {
    if (!KEPT_BGP.includes(f)) {
      return {
        refused: `${who}: spec.bgp.${f}: not kept on the Kubernetes datastore (IPv4 only for now)`,
      };
    }
  }
  const text = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);
  const a = current.metadata.annotations ?? {};
  // An address equal to the InternalIP it was read from stays unwritten: the Node keeps
  // following what the kubelet registers until something sets its own.
  const address = text(bgp.ipv4Address);
  const followsInternalIP =
    a[IPV4_ADDRESS_ANNOTATION] === undefined && address !== null && address === internalIP(current);
  const asNumber = typeof bgp.asNumber === 'number' ? String(bgp.asNumber) : text(bgp.asNumber);
  const calicoLabels = Object.fromEntries(
    Object.entries(parsed.labels).filter(([k]) => k8sLabels[k] === undefined),
  );
  const annotations: Record<string, string | null> = {
    [IPV4_ADDRESS_ANNOTATION]: followsInternalIP ? null : address,
    [AS_NUMBER_ANNOTATION]: asNumber,
    [RR_CLUSTER_ID_ANNOTATION]: text(bgp.routeReflectorClusterID),
    [IPIP_TUNNEL_ANNOTATION]: text(bgp.ipv4IPIPTunnelAddr),
    [VXLAN_TUNNEL_ANNOTATION]: text(s.ipv4VXLANTunnelAddr),
    [VXLAN_MAC_ANNOTATION]: text(s.vxlanTunnelMACAddr),
    [CALICO_LABELS_ANNOTATION]:
      Object.keys(calicoLabels).length === 0 ? null : JSON.stringify(calicoLabels),
    [CALICO_ANNOTATIONS_ANNOTATION]:
      Object.keys(parsed.annotations).length === 0 ? null : JSON.stringify(parsed.annotations),
  };
  return { mergePatch: { metadata: { uid: current.metadata.uid, annotations } } };
}

export const NODES: KeyMapping = {
  resource: coreResource('nodes', 'Node', false),
  keyPrefix: (prefix) => rangeOf('Node', prefix),
  objectRef: (key, prefix) => keyParts(key, rangeOf('Node', prefix), false),
  toKv: (node, prefix) =>
    kv(`${rangeOf('Node', prefix)}${node.metadata.name}`, nodeToCalicoNode(node)),
  fromPut,
  fromDelete: (_key, current) => ({
    refused: `Node ${current.metadata.name} is the kubelet's: delete it with kubectl delete node ${current.metadata.name} (Kubernetes does when the machine goes away); tortie's routes to it go with it`,
  }),
};
