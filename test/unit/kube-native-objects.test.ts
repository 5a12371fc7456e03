/**
 * Namespaces, NetworkPolicies, ServiceAccounts and Nodes on the Kubernetes datastore
 * (src/datastore/kubernetes/native/): what tortie reads from each, what its agent's
 * writes become, and the writes refused because kubectl (or kubelet) owns them.
 */
import { describe, expect, it } from 'vitest';
import { buildWorld, ClusterModel } from '../../src/agent/model.js';
import { encodeResource, type KindName, type StoredResource } from '../../src/datastore/index.js';
import {
  NAMESPACES,
  NATIVE_MAPPINGS,
  NETWORK_POLICIES,
  NODES,
  PODS,
  SERVICE_ACCOUNTS,
} from '../../src/datastore/kubernetes/native/index.js';
import { parseAsNumber } from '../../src/datastore/kubernetes/native/nodes.js';
import type { KubeObject } from '../../src/datastore/kubernetes/mapping.js';
import { evaluate } from '../../src/policy/evaluate.js';
import { PROTOCOLS } from '../../src/policy/model.js';
import { parseResource } from '../../src/policy/resources.js';
import { decoded, mergePatch, pod, validationProblems } from '../helpers/kube-native.js';

const PREFIX = '/calico';
const refusal = (w: unknown): string => (w as { refused?: string }).refused ?? '(not refused)';

function meta(name: string, namespace?: string, labels?: Record<string, string>) {
  return {
    name,
    ...(namespace === undefined ? {} : { namespace }),
    uid: `uid-${name}`,
    resourceVersion: '42',
    creationTimestamp: '2026-12-07T06:00:00Z',
    ...(labels === undefined ? {} : { labels }),
  };
}

const namespace: KubeObject = {
  apiVersion: 'v1',
  kind: 'Namespace',
  metadata: {
    ...meta('prod', undefined, { 'kubernetes.io/metadata.name': 'prod', env: 'prod' }),
    annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{}' },
  },
  spec: { finalizers: ['kubernetes'] },
  status: { phase: 'Active' },
};

/** As the API server returns it: podSelector and policyTypes defaulted, protocols filled in. */
const policy: KubeObject = {
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: meta('allow-front', 'prod', { team: 'web' }),
  spec: {
    podSelector: { matchLabels: { app: 'web' } },
    ingress: [
      {
        from: [{ podSelector: { matchLabels: { app: 'front' } } }],
        ports: [{ protocol: 'TCP', port: 'http' }],
      },
    ],
    policyTypes: ['Ingress'],
  },
};

const account: KubeObject = {
  apiVersion: 'v1',
  kind: 'ServiceAccount',
  metadata: meta('api', 'prod', { team: 'payments' }),
};

describe('Namespaces', () => {
  it("are tortie's Namespace kind with the namespace's labels", () => {
    const entry = NAMESPACES.toKv(namespace, PREFIX)!;
    expect(entry.key).toBe('/calico/resources/v3/tortie.io/namespaces/prod');
    const { kind, resource } = decoded(entry, PREFIX);
    expect(kind).toBe('Namespace');
    expect(resource.metadata).toMatchObject({
      name: 'prod',
      uid: 'uid-prod',
      labels: { 'kubernetes.io/metadata.name': 'prod', env: 'prod' },
    });
    expect(resource.metadata.annotations).toBeUndefined();
    const parsed = parseResource({
      ...resource,
      metadata: { name: 'prod', labels: resource.metadata.labels },
    });
    expect(parsed.kind === 'Namespace' && parsed.namespace.labels).toMatchObject({ env: 'prod' });
    expect(NAMESPACES.objectRef(entry.key, PREFIX)).toEqual({ name: 'prod' });
  });

  it('are written with kubectl only', () => {
    const key = '/calico/resources/v3/tortie.io/namespaces/prod';
    expect(refusal(NAMESPACES.fromPut(key, '{}', namespace, PREFIX))).toContain(
      'kubectl label namespace prod',
    );
    expect(refusal(NAMESPACES.fromPut(key, '{}', undefined, PREFIX))).toContain(
      'kubectl create namespace prod',
    );
    expect(refusal(NAMESPACES.fromDelete(key, namespace, PREFIX))).toContain(
      'kubectl delete namespace prod',
    );
  });
});

describe('NetworkPolicies', () => {
  it("are tortie's K8sNetworkPolicy kind, spec as the API server returns it, valid as tortie reads it", () => {
    const entry = NETWORK_POLICIES.toKv(policy, PREFIX)!;
    expect(entry.key).toBe('/calico/resources/v3/tortie.io/k8snetworkpolicies/prod/allow-front');
    const { kind, resource } = decoded(entry, PREFIX);
    expect(kind).toBe('K8sNetworkPolicy');
    expect(resource.spec).toEqual(policy.spec);
    expect(validationProblems(resource)).toEqual([]);
    const parsed = parseResource({
      apiVersion: resource.apiVersion,
      kind: resource.kind,
      metadata: { name: 'allow-front', namespace: 'prod', labels: resource.metadata.labels },
      spec: resource.spec,
    });
    expect(parsed.kind === 'NetworkPolicy' && parsed.policy.name).toBe('knp.default.allow-front');
  });

  it('are written with kubectl only', () => {
    const key = '/calico/resources/v3/tortie.io/k8snetworkpolicies/prod/allow-front';
    expect(refusal(NETWORK_POLICIES.fromPut(key, '{}', undefined, PREFIX))).toContain(
      'kubectl apply -f',
    );
    expect(refusal(NETWORK_POLICIES.fromDelete(key, policy, PREFIX))).toContain(
      'kubectl delete networkpolicy -n prod allow-front',
    );
  });
});

describe('ServiceAccounts', () => {
  it("are the Profiles ksa.<namespace>.<account> whose labelsToApply carry the account's labels", () => {
    const entry = SERVICE_ACCOUNTS.toKv(account, PREFIX)!;
    expect(entry.key).toBe('/calico/resources/v3/projectcalico.org/profiles/ksa.prod.api');
    const { kind, resource } = decoded(entry, PREFIX);
    expect(kind).toBe('Profile');
    expect(resource.spec).toEqual({
      labelsToApply: { 'pcsa.team': 'payments', 'pcsa.projectcalico.org/name': 'api' },
    });
    expect(validationProblems(resource)).toEqual([]);
    expect(SERVICE_ACCOUNTS.objectRef(entry.key, PREFIX)).toEqual({
      namespace: 'prod',
      name: 'api',
    });
    expect(
      SERVICE_ACCOUNTS.objectRef(
        '/calico/resources/v3/projectcalico.org/profiles/kns.prod',
        PREFIX,
      ),
    ).toBeUndefined();
  });

  it("let a policy's serviceAccountSelector select the pods of the account", () => {
    const model = new ClusterModel();
    let revision = 1;
    const put = (entry: { key: string; value: string } | undefined) => {
      const { kind, resource } = decoded(entry!, PREFIX, String(++revision));
      model.apply({
        type: 'put',
        kind: kind as KindName,
        resource,
        revision: String(revision),
        synthetic: false,
      });
    };
    put(NAMESPACES.toKv(namespace, PREFIX));
    put(SERVICE_ACCOUNTS.toKv(account, PREFIX));
    const pods = [
      pod({
        name: 'api-0',
        namespace: 'prod',
        node: 'n1',
        podIP: '10.0.0.2',
        serviceAccountName: 'api',
      }),
      pod({
        name: 'c',
        namespace: 'prod',
        node: 'n1',
        podIP: '10.0.0.3',
        serviceAccountName: 'other',
      }),
    ];
    for (const p of pods) put(PODS.toKv(p, PREFIX));
    model.apply({
      type: 'put',
      kind: 'GlobalNetworkPolicy',
      resource: {
        apiVersion: 'projectcalico.org/v3',
        kind: 'GlobalNetworkPolicy',
        metadata: { name: 'payments', uid: 'g', creationTimestamp: '', resourceVersion: '9' },
        spec: { serviceAccountSelector: 'team == "payments"', ingress: [{ action: 'Deny' }] },
      },
      revision: '9',
      synthetic: false,
    });
    const { world, endpoints, problems } = buildWorld(model);
    expect(problems).toEqual([]);
    const byIp = (ip: string) =>
      [...endpoints.values()].find((e) => e.endpoint.ip === ip)!.endpoint;
    const packet = (daddr: string) => ({
      saddr: '10.0.0.9',
      daddr,
      protocol: PROTOCOLS.TCP,
      sport: 40000,
      dport: 80,
    });
    expect(byIp('10.0.0.2').labels['pcsa.team']).toBe('payments');
    expect(evaluate(world, byIp('10.0.0.2'), 'ingress', packet('10.0.0.2')).action).toBe('deny');
    expect(evaluate(world, byIp('10.0.0.3'), 'ingress', packet('10.0.0.3')).action).toBe('allow');
  });

  it('are written with kubectl only; no other Profiles exist on Kubernetes', () => {
    const key = '/calico/resources/v3/projectcalico.org/profiles/ksa.prod.api';
    expect(refusal(SERVICE_ACCOUNTS.fromPut(key, '{}', account, PREFIX))).toContain(
      'kubectl label serviceaccount -n prod api',
    );
    expect(refusal(SERVICE_ACCOUNTS.fromDelete(key, account, PREFIX))).toContain(
      'kubectl delete serviceaccount -n prod api',
    );
    expect(
      refusal(
        SERVICE_ACCOUNTS.fromPut(
          '/calico/resources/v3/projectcalico.org/profiles/open',
          '{}',
          undefined,
          PREFIX,
        ),
      ),
    ).toContain('profiles are made from service accounts');
  });
});

describe('Nodes', () => {
  const node = (annotations: Record<string, string> = {}): KubeObject => ({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      ...meta('node-1', undefined, { 'kubernetes.io/hostname': 'node-1', zone: 'a' }),
      annotations,
    },
    spec: {},
    status: {
      addresses: [
        { type: 'InternalIP', address: '192.168.5.11' },
        { type: 'Hostname', address: 'node-1' },
      ],
    },
  });
  const key = '/calico/resources/v3/projectcalico.org/nodes/node-1';

  it("are Calico Nodes: the address and AS number from Calico's annotations, else the InternalIP", () => {
    const bare = decoded(NODES.toKv(node(), PREFIX)!, PREFIX).resource;
    expect(bare.spec).toEqual({
      bgp: { ipv4Address: '192.168.5.11/32' },
      orchRefs: [{ nodeName: 'node-1', orchestrator: 'k8s' }],
    });
    const annotated = decoded(
      NODES.toKv(
        node({
          'projectcalico.org/IPv4Address': '192.168.5.11/24',
          'projectcalico.org/ASNumber': '64512',
          'projectcalico.org/labels': '{"rack":"r1","zone":"shadowed"}',
        }),
        PREFIX,
      )!,
      PREFIX,
    );
    expect(annotated.kind).toBe('Node');
    expect(annotated.resource.spec).toMatchObject({
      bgp: { ipv4Address: '192.168.5.11/24', asNumber: 64512 },
    });
    // Kubernetes' labels win over Calico's own of the same key, as in Calico.
    expect(annotated.resource.metadata.labels).toEqual({
      rack: 'r1',
      zone: 'a',
      'kubernetes.io/hostname': 'node-1',
    });
    expect(annotated.resource.status).toEqual({});
    expect(validationProblems(annotated.resource)).toEqual([]);
  });

  it('read AS numbers plain or dotted, and nothing else', () => {
    expect(parseAsNumber('64512')).toBe(64512);
    expect(parseAsNumber('1.10')).toBe(65546);
    expect(parseAsNumber('0')).toBeUndefined();
    expect(parseAsNumber('4294967296')).toBeUndefined();
    expect(parseAsNumber('x')).toBeUndefined();
  });

  it("the agent's registration becomes an annotation patch; read back it is what the agent wrote", () => {
    const current = node();
    const read = decoded(NODES.toKv(current, PREFIX)!, PREFIX).resource;
    // As the agent registers: the Node read, its address and AS number, its own labels.
    const put: StoredResource = {
      ...read,
      metadata: { ...read.metadata, labels: { ...read.metadata.labels, 'tortie.io/role': 'edge' } },
      spec: { ...read.spec, bgp: { ipv4Address: '192.168.5.11/24', asNumber: 64512 } },
    };
    const write = NODES.fromPut(key, encodeResource(put), current, PREFIX);
    expect(write).toEqual({
      mergePatch: {
        metadata: {
          uid: 'uid-node-1',
          annotations: {
            'projectcalico.org/IPv4Address': '192.168.5.11/24',
            'projectcalico.org/ASNumber': '64512',
            'projectcalico.org/RouteReflectorClusterID': null,
            'projectcalico.org/IPv4IPIPTunnelAddr': null,
            'projectcalico.org/IPv4VXLANTunnelAddr': null,
            'projectcalico.org/VXLANTunnelMACAddr': null,
            'projectcalico.org/labels': '{"tortie.io/role":"edge"}',
            'projectcalico.org/annotations': null,
          },
        },
      },
    });
    const after = mergePatch(current, (write as { mergePatch: unknown }).mergePatch);
    const again = decoded(NODES.toKv(after, PREFIX)!, PREFIX).resource;
    expect(again.spec).toEqual(put.spec);
    expect(again.metadata.labels).toEqual(put.metadata.labels);
  });

  it('an address read from the InternalIP is not pinned by writing it back', () => {
    const current = node();
    const read = decoded(NODES.toKv(current, PREFIX)!, PREFIX).resource;
    const write = NODES.fromPut(key, encodeResource(read), current, PREFIX) as {
      mergePatch: { metadata: { annotations: Record<string, unknown> } };
    };
    expect(write.mergePatch.metadata.annotations['projectcalico.org/IPv4Address']).toBeNull();
  });

  it("refuses a Node Kubernetes has not registered, changes to Kubernetes' labels, and deletes", () => {
    const current = node();
    const read = decoded(NODES.toKv(current, PREFIX)!, PREFIX).resource;
    expect(refusal(NODES.fromPut(key, encodeResource(read), undefined, PREFIX))).toContain(
      'not registered in Kubernetes',
    );
    const relabelled = {
      ...read,
      metadata: { ...read.metadata, labels: { ...read.metadata.labels, zone: 'b' } },
    };
    expect(refusal(NODES.fromPut(key, encodeResource(relabelled), current, PREFIX))).toContain(
      'kubectl label node node-1 zone=b --overwrite',
    );
    const { zone: _zone, ...withoutZone } = read.metadata.labels!;
    const unlabelled = { ...read, metadata: { ...read.metadata, labels: withoutZone } };
    expect(refusal(NODES.fromPut(key, encodeResource(unlabelled), current, PREFIX))).toContain(
      'kubectl label node node-1 zone-',
    );
    const other = { ...read, spec: { ...read.spec, orchRefs: [{ orchestrator: 'openstack' }] } };
    expect(refusal(NODES.fromPut(key, encodeResource(other), current, PREFIX))).toContain(
      'spec.orchRefs',
    );
    expect(refusal(NODES.fromDelete(key, current, PREFIX))).toContain('kubectl delete node node-1');
  });
});

describe('NATIVE_MAPPINGS', () => {
  it('holds one mapping per resource, each with a range of its own', () => {
    const plurals = NATIVE_MAPPINGS.map((m) => m.resource.plural);
    expect(plurals.sort()).toEqual([
      'namespaces',
      'networkpolicies',
      'nodes',
      'pods',
      'serviceaccounts',
    ]);
    const ranges = NATIVE_MAPPINGS.map((m) => m.keyPrefix(PREFIX));
    for (const r of ranges) {
      expect(r.endsWith('/')).toBe(true);
      expect(ranges.filter((o) => o !== r && (o.startsWith(r) || r.startsWith(o)))).toEqual([]);
    }
  });
});
