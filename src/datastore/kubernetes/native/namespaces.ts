/**
 * Namespaces as tortie's Namespace kind (its labels are what namespaceSelectors match),
 * and NetworkPolicies (networking.k8s.io/v1) as tortie's K8sNetworkPolicy kind: read from
 * the API as they are. Both are Kubernetes' own objects, written with kubectl: a put or a
 * delete through tortie is refused and says which kubectl command does it.
 */
import type { KeyMapping, KubeObject } from '../mapping.js';
import {
  coreResource,
  field,
  identityOf,
  isRecord,
  keyParts,
  kv,
  rangeOf,
  someLabels,
} from './common.js';

export const NAMESPACES: KeyMapping = {
  resource: coreResource('namespaces', 'Namespace', false),
  keyPrefix: (prefix) => rangeOf('Namespace', prefix),
  objectRef: (key, prefix) => keyParts(key, rangeOf('Namespace', prefix), false),
  toKv(ns: KubeObject, prefix: string) {
    const name = ns.metadata.name;
    return kv(`${rangeOf('Namespace', prefix)}${name}`, {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { ...identityOf(ns, name), ...someLabels(ns.metadata.labels) },
      spec: {},
    });
  },
  fromPut(key, _value, current, prefix) {
    const name = keyParts(key, rangeOf('Namespace', prefix), false)?.name ?? key;
    return {
      refused:
        current === undefined
          ? `Namespace ${name}: on the Kubernetes datastore namespaces are Kubernetes' own; create it with kubectl create namespace ${name}`
          : `Namespace ${name}: on the Kubernetes datastore namespaces are Kubernetes' own; change it with kubectl (kubectl label namespace ${name} KEY=VALUE for its labels)`,
    };
  },
  fromDelete(_key, current) {
    return {
      refused: `Namespace ${current.metadata.name}: on the Kubernetes datastore namespaces are Kubernetes' own; delete it with kubectl delete namespace ${current.metadata.name}`,
    };
  },
};

export const NETWORK_POLICIES: KeyMapping = {
  resource: {
    group: 'networking.k8s.io',
    version: 'v1',
    plural: 'networkpolicies',
    kind: 'NetworkPolicy',
    namespaced: true,
  },
  keyPrefix: (prefix) => rangeOf('K8sNetworkPolicy', prefix),
  objectRef: (key, prefix) => keyParts(key, rangeOf('K8sNetworkPolicy', prefix), true),
  toKv(np: KubeObject, prefix: string) {
    const namespace = np.metadata.namespace ?? 'default';
    const name = np.metadata.name;
    const spec = field(np, 'spec');
    return kv(`${rangeOf('K8sNetworkPolicy', prefix)}${namespace}/${name}`, {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { ...identityOf(np, name, namespace), ...someLabels(np.metadata.labels) },
      spec: isRecord(spec) ? spec : {},
    });
  },
  fromPut(key, _value, current, prefix) {
    const ref = keyParts(key, rangeOf('K8sNetworkPolicy', prefix), true);
    const shown = ref === undefined ? key : `${ref.namespace}/${ref.name}`;
    return {
      refused: `NetworkPolicy.networking.k8s.io ${shown}: on the Kubernetes datastore Kubernetes NetworkPolicies are the API server's; ${current === undefined ? 'create' : 'change'} it with kubectl apply -f`,
    };
  },
  fromDelete(_key, current) {
    return {
      refused: `NetworkPolicy.networking.k8s.io ${current.metadata.namespace}/${current.metadata.name}: on the Kubernetes datastore Kubernetes NetworkPolicies are the API server's; delete it with kubectl delete networkpolicy -n ${current.metadata.namespace} ${current.metadata.name}`,
    };
  },
};
