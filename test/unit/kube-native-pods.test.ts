/**
 * Pods as WorkloadEndpoints on the Kubernetes datastore (src/datastore/kubernetes/native/
 * pods.ts): Calico's conversion one way, the CNI plugin's writes as pod annotation patches
 * the other, and the writes that belong to kubectl refused.
 */
import { describe, expect, it } from 'vitest';
import { wepToEndpoint, type WorkloadEndpoint } from '../../src/agent/model.js';
import { encodeResource, type StoredResource } from '../../src/datastore/index.js';
import {
  modRevisionOf,
  PODS,
  parseWorkloadEndpointName,
  workloadEndpointName,
} from '../../src/datastore/kubernetes/native/index.js';
import type { KubeObject } from '../../src/datastore/kubernetes/mapping.js';
import { decoded, mergePatch, pod, validationProblems } from '../helpers/kube-native.js';

const PREFIX = '/calico';
const RANGE = '/calico/resources/v3/projectcalico.org/workloadendpoints/';

/** A pod the CNI plugin has wired: Calico's annotations and tortie's. */
function wired(extra: Partial<Parameters<typeof pod>[0]> = {}): KubeObject {
  return pod({
    name: 'web-0',
    namespace: 'prod',
    node: 'node-1',
    labels: { app: 'web' },
    serviceAccountName: 'api',
    annotations: {
      'cni.projectcalico.org/podIP': '10.65.0.7/32',
      'cni.projectcalico.org/podIPs': '10.65.0.7/32',
      'cni.projectcalico.org/containerID': 'c0ffee',
      'tortie.io/interfaceName': 'tor0123456789ab',
      'tortie.io/mac': 'aa:bb:cc:dd:ee:01',
      'tortie.io/network': 'k8s-pod-network',
    },
    containers: [
      {
        name: 'main',
        ports: [
          { name: 'http', containerPort: 8080, protocol: 'TCP' },
          { name: 'dns', containerPort: 53, protocol: 'UDP' },
          { containerPort: 9090 },
          { containerPort: 9443, hostPort: 443 },
        ],
      },
    ],
    ...extra,
  });
}

function wepOf(p: KubeObject): WorkloadEndpoint {
  const entry = PODS.toKv(p, PREFIX);
  if (entry === undefined) throw new Error('no WorkloadEndpoint');
  return decoded(entry, PREFIX).resource as unknown as WorkloadEndpoint;
}

/** What the store would put after changing a read endpoint with `change`. */
function putOf(p: KubeObject, change: (r: StoredResource) => StoredResource): [string, string] {
  const entry = PODS.toKv(p, PREFIX)!;
  return [entry.key, encodeResource(change(decoded(entry, PREFIX).resource))];
}

describe('endpoint names', () => {
  it("joins node, k8s, pod and interface with '-', doubling the dashes inside each part", () => {
    expect(workloadEndpointName('node-1', 'web-0', 'eth0')).toBe('node--1-k8s-web--0-eth0');
    expect(parseWorkloadEndpointName('node--1-k8s-web--0-eth0')).toEqual({
      node: 'node-1',
      pod: 'web-0',
      endpoint: 'eth0',
    });
    expect(parseWorkloadEndpointName('a----b-k8s-c-eth0')).toEqual({
      node: 'a--b',
      pod: 'c',
      endpoint: 'eth0',
    });
  });

  it('knows no other orchestrator and no ambiguous spelling', () => {
    expect(parseWorkloadEndpointName('node1-cni-c0ffee-eth0')).toBeUndefined();
    expect(parseWorkloadEndpointName('node1-k8s-web')).toBeUndefined();
    expect(parseWorkloadEndpointName('node1-k8s-web-eth0-x')).toBeUndefined();
    expect(PODS.objectRef(`${RANGE}prod/node1-cni-c0ffee-eth0`, PREFIX)).toBeUndefined();
    expect(PODS.objectRef(`${RANGE}prod/node--1-k8s-web--0-eth0`, PREFIX)).toEqual({
      namespace: 'prod',
      name: 'web-0',
    });
    expect(PODS.objectRef(`/calico/resources/v3/projectcalico.org/nodes/x`, PREFIX)).toBe(
      undefined,
    );
  });
});

describe('a pod as its WorkloadEndpoint', () => {
  it("carries Calico's labels, profiles, named ports, the plugin's address, container and interface", () => {
    const entry = PODS.toKv(wired(), PREFIX)!;
    expect(entry.key).toBe(`${RANGE}prod/node--1-k8s-web--0-eth0`);
    const { kind, resource } = decoded(entry, PREFIX);
    expect(kind).toBe('WorkloadEndpoint');
    expect(resource.metadata).toMatchObject({
      name: 'node--1-k8s-web--0-eth0',
      namespace: 'prod',
      uid: 'uid-web-0',
      resourceVersion: '100',
      labels: {
        app: 'web',
        'projectcalico.org/namespace': 'prod',
        'projectcalico.org/orchestrator': 'k8s',
        'projectcalico.org/serviceaccount': 'api',
      },
    });
    expect(resource.spec).toEqual({
      node: 'node-1',
      orchestrator: 'k8s',
      endpoint: 'eth0',
      containerID: 'c0ffee',
      network: 'k8s-pod-network',
      interfaceName: 'tor0123456789ab',
      mac: 'aa:bb:cc:dd:ee:01',
      ipNetworks: ['10.65.0.7/32'],
      profiles: ['kns.prod', 'ksa.prod.api'],
      ports: [
        { name: 'http', protocol: 'TCP', port: 8080 },
        { name: 'dns', protocol: 'UDP', port: 53 },
        { name: '', protocol: 'TCP', port: 9443, hostPort: 443 },
      ],
      pod: 'web-0',
      serviceAccountName: 'api',
    });
    expect(validationProblems(resource)).toEqual([]);
  });

  it("is the endpoint the agent's policy model sees: address, labels, named ports", () => {
    const endpoint = wepToEndpoint(wepOf(wired()));
    expect(endpoint).toMatchObject({
      key: 'prod/node--1-k8s-web--0-eth0',
      ip: '10.65.0.7',
      labels: { app: 'web', 'projectcalico.org/serviceaccount': 'api' },
      profiles: ['kns.prod', 'ksa.prod.api'],
    });
    expect(endpoint?.ports.map((p) => p.name)).toEqual(['http', 'dns']);
  });

  it("takes the address from the pod's status where no plugin annotated it; IPv6 left out", () => {
    const wep = wepOf(
      pod({ name: 'db', node: 'n1', podIP: '10.0.0.9', podIPs: ['10.0.0.9', 'fd00::9'] }),
    );
    expect(wep.spec.ipNetworks).toEqual(['10.0.0.9/32']);
    // A pod tortie did not wire: Calico's veth name, no MAC, no container ID.
    expect(wep.spec.interfaceName).toMatch(/^cali[0-9a-f]{11}$/);
    expect(wep.spec.mac).toBeUndefined();
    expect(wep.spec.containerID).toBeUndefined();
    expect(wep.spec.profiles).toEqual(['kns.default']);
    expect(wep.metadata.labels).toEqual({
      'projectcalico.org/namespace': 'default',
      'projectcalico.org/orchestrator': 'k8s',
    });
    expect(validationProblems(wep as unknown as StoredResource)).toEqual([]);
  });

  it("uses the plugin's annotations over the status, so its DEL ('') takes the address away", () => {
    const released = pod({
      name: 'db',
      node: 'n1',
      podIP: '10.0.0.9',
      annotations: { 'cni.projectcalico.org/podIP': '', 'cni.projectcalico.org/podIPs': '' },
    });
    expect(PODS.toKv(released, PREFIX)).toBeUndefined();
    const moved = pod({
      name: 'db',
      node: 'n1',
      podIP: '10.0.0.9',
      annotations: { 'cni.projectcalico.org/podIP': '10.0.0.12/32' },
    });
    expect(wepOf(moved).spec.ipNetworks).toEqual(['10.0.0.12/32']);
  });

  it('does not exist for pods that are unscheduled, on the host network, finished or without an address', () => {
    const ip = { podIP: '10.0.0.9' };
    expect(PODS.toKv(pod({ name: 'a', ...ip }), PREFIX)).toBeUndefined();
    expect(PODS.toKv(pod({ name: 'a', node: 'n', hostNetwork: true, ...ip }), PREFIX)).toBe(
      undefined,
    );
    expect(PODS.toKv(pod({ name: 'a', node: 'n', phase: 'Succeeded', ...ip }), PREFIX)).toBe(
      undefined,
    );
    expect(PODS.toKv(pod({ name: 'a', node: 'n', phase: 'Failed', ...ip }), PREFIX)).toBe(
      undefined,
    );
    expect(PODS.toKv(pod({ name: 'a', node: 'n', phase: 'Pending' }), PREFIX)).toBeUndefined();
    expect(PODS.toKv(pod({ name: 'a', node: 'n', podIPs: ['fd00::1'] }), PREFIX)).toBeUndefined();
  });

  it('leaves the service-account label off a name of 63 characters or more, as Calico does', () => {
    const long = 'a'.repeat(63);
    const wep = wepOf(pod({ name: 'x', node: 'n', podIP: '10.0.0.1', serviceAccountName: long }));
    expect(wep.metadata.labels?.['projectcalico.org/serviceaccount']).toBeUndefined();
    expect(wep.spec.serviceAccountName).toBe(long);
  });
});

describe("the CNI plugin's writes", () => {
  /** A scheduled pod before its sandbox is wired: no annotations, no status address. */
  const fresh = pod({
    name: 'web-0',
    namespace: 'prod',
    node: 'node-1',
    labels: { app: 'web' },
    serviceAccountName: 'api',
    phase: 'Pending',
  });
  const key = `${RANGE}prod/node--1-k8s-web--0-eth0`;
  /** The endpoint as tortie's CNI plugin writes it after ADD. */
  const cniPut = {
    apiVersion: 'projectcalico.org/v3',
    kind: 'WorkloadEndpoint',
    metadata: {
      name: 'node--1-k8s-web--0-eth0',
      namespace: 'prod',
      uid: 'random',
      creationTimestamp: '2026-12-07T06:01:00Z',
      labels: { app: 'web' },
    },
    spec: {
      node: 'node-1',
      orchestrator: 'k8s',
      workload: 'web-0',
      endpoint: 'eth0',
      containerID: 'c0ffee',
      network: 'k8s-pod-network',
      interfaceName: 'tor0123456789ab',
      mac: 'aa:bb:cc:dd:ee:01',
      ipNetworks: ['10.65.0.7/32'],
      profiles: ['kns.prod', 'ksa.prod.api'],
      ports: [],
      pod: 'web-0',
      serviceAccountName: 'api',
    },
  };

  it("an endpoint's put becomes a merge patch of the pod's annotations, guarded by its uid", () => {
    const write = PODS.fromPut(key, JSON.stringify(cniPut), fresh, PREFIX);
    expect(write).toEqual({
      mergePatch: {
        metadata: {
          uid: 'uid-web-0',
          annotations: {
            'cni.projectcalico.org/podIP': '10.65.0.7/32',
            'cni.projectcalico.org/podIPs': '10.65.0.7/32',
            'cni.projectcalico.org/containerID': 'c0ffee',
            'tortie.io/interfaceName': 'tor0123456789ab',
            'tortie.io/mac': 'aa:bb:cc:dd:ee:01',
            'tortie.io/network': 'k8s-pod-network',
            'tortie.io/endpoint': null,
          },
        },
      },
    });
    // Read back after the patch: the endpoint the plugin wrote, with the pod's identity.
    const patched = mergePatch(fresh, (write as { mergePatch: unknown }).mergePatch);
    const wep = wepOf(patched);
    expect(wep.metadata.name).toBe('node--1-k8s-web--0-eth0');
    expect(wep.spec).toMatchObject({
      containerID: 'c0ffee',
      network: 'k8s-pod-network',
      interfaceName: 'tor0123456789ab',
      mac: 'aa:bb:cc:dd:ee:01',
      ipNetworks: ['10.65.0.7/32'],
    });
  });

  it('a put of the endpoint as read writes the same annotations again', () => {
    const [k, value] = putOf(wired(), (r) => r);
    const write = PODS.fromPut(k, value, wired(), PREFIX);
    expect('mergePatch' in write).toBe(true);
    expect(wepOf(mergePatch(wired(), (write as { mergePatch: unknown }).mergePatch))).toEqual(
      wepOf(wired()),
    );
  });

  it("a put listing the pod's named ports in another order, without its host-port entries, is the plugin's", () => {
    const [k, value] = putOf(wired(), (r) => ({
      ...r,
      spec: {
        ...r.spec,
        ports: [
          { name: 'dns', protocol: 'UDP', port: 53 },
          { name: 'http', protocol: 'TCP', port: 8080 },
        ],
      },
    }));
    expect('mergePatch' in PODS.fromPut(k, value, wired(), PREFIX)).toBe(true);
  });

  it('a delete sets the address annotations to "" and keeps the container ID, as Calico\'s plugin does', () => {
    const p = wired({ podIP: '10.65.0.7' });
    const del = PODS.fromDelete(key, p, PREFIX);
    expect(del).toEqual({
      mergePatch: {
        metadata: {
          uid: 'uid-web-0',
          annotations: {
            'cni.projectcalico.org/podIP': '',
            'cni.projectcalico.org/podIPs': '',
            'tortie.io/interfaceName': null,
            'tortie.io/mac': null,
            'tortie.io/network': null,
            'tortie.io/endpoint': null,
          },
        },
      },
    });
    const after = mergePatch(p, (del as { mergePatch: unknown }).mergePatch);
    // Gone, although kubelet's status still names the address.
    expect(PODS.toKv(after, PREFIX)).toBeUndefined();
    expect(after.metadata.annotations?.['cni.projectcalico.org/containerID']).toBe('c0ffee');
  });

  it('an endpoint on another interface keeps its name through tortie.io/endpoint', () => {
    const put = {
      ...cniPut,
      metadata: { ...cniPut.metadata, name: 'node--1-k8s-web--0-net1' },
      spec: { ...cniPut.spec, endpoint: 'net1' },
    };
    const k = `${RANGE}prod/node--1-k8s-web--0-net1`;
    const write = PODS.fromPut(k, JSON.stringify(put), fresh, PREFIX) as { mergePatch: unknown };
    expect(PODS.toKv(mergePatch(fresh, write.mergePatch), PREFIX)?.key).toBe(k);
  });
});

describe('the revision of a key held by a native object', () => {
  it("is the object's resourceVersion only when the object's counterpart is that key", () => {
    const key = `${RANGE}prod/node--1-k8s-web--0-eth0`;
    expect(modRevisionOf(PODS, key, wired(), PREFIX)).toBe('100');
    // The pod exists but has no endpoint yet: the key is absent (a put of it is a create).
    expect(modRevisionOf(PODS, key, wired({ annotations: {} }), PREFIX)).toBe('0');
    expect(modRevisionOf(PODS, `${RANGE}prod/node--1-k8s-web--0-net1`, wired(), PREFIX)).toBe('0');
    expect(modRevisionOf(PODS, key, undefined, PREFIX)).toBe('0');
  });
});

describe('writes that are not the plugin’s are refused, naming what to do', () => {
  const refusal = (w: unknown): string => (w as { refused?: string }).refused ?? '(not refused)';

  it('a label change through the endpoint (tortie label / calicoctl label) says kubectl label pod', () => {
    const [k, value] = putOf(wired(), (r) => ({
      ...r,
      metadata: { ...r.metadata, labels: { ...r.metadata.labels, tier: 'front' } },
    }));
    expect(refusal(PODS.fromPut(k, value, wired(), PREFIX))).toContain(
      'use kubectl label pod -n prod web-0',
    );
    const [k2, removed] = putOf(wired(), (r) => ({
      ...r,
      metadata: { ...r.metadata, labels: { 'projectcalico.org/namespace': 'prod' } },
    }));
    expect(refusal(PODS.fromPut(k2, removed, wired(), PREFIX))).toContain('kubectl label pod');
  });

  it("a Calico label with another value than the pod's is refused; leaving it out is not", () => {
    const [k, value] = putOf(wired(), (r) => ({
      ...r,
      metadata: {
        ...r.metadata,
        labels: { ...r.metadata.labels, 'projectcalico.org/namespace': 'other' },
      },
    }));
    expect(refusal(PODS.fromPut(k, value, wired(), PREFIX))).toContain(
      'metadata.labels["projectcalico.org/namespace"]',
    );
    const [k2, without] = putOf(wired(), (r) => ({
      ...r,
      metadata: { ...r.metadata, labels: { app: 'web' } },
    }));
    expect('mergePatch' in PODS.fromPut(k2, without, wired(), PREFIX)).toBe(true);
  });

  it("the pod's own fields (service account, ports, profiles, node) cannot be changed through it", () => {
    const cases: [string, (s: Record<string, unknown>) => Record<string, unknown>][] = [
      ['spec.serviceAccountName', (s) => ({ ...s, serviceAccountName: 'other' })],
      ['spec.ports', (s) => ({ ...s, ports: [{ name: 'x', protocol: 'TCP', port: 1 }] })],
      ['spec.profiles', (s) => ({ ...s, profiles: ['kns.prod'] })],
      ['spec.node', (s) => ({ ...s, node: 'node-2' })],
      ['spec.ipNATs', (s) => ({ ...s, ipNATs: [] })],
    ];
    for (const [f, change] of cases) {
      const [k, value] = putOf(wired(), (r) => ({ ...r, spec: change(r.spec) }));
      expect(refusal(PODS.fromPut(k, value, wired(), PREFIX)), f).toContain(f);
    }
    const [k, annotated] = putOf(wired(), (r) => ({
      ...r,
      metadata: { ...r.metadata, annotations: { note: 'x' } },
    }));
    expect(refusal(PODS.fromPut(k, annotated, wired(), PREFIX))).toContain('kubectl annotate pod');
  });

  it('an endpoint of a pod that does not exist, is on the host network or elsewhere is refused', () => {
    const [k, value] = putOf(wired(), (r) => r);
    expect(refusal(PODS.fromPut(k, value, undefined, PREFIX))).toContain(
      'pod prod/web-0 does not exist',
    );
    expect(refusal(PODS.fromPut(k, value, wired({ hostNetwork: true }), PREFIX))).toContain(
      "host's network",
    );
    expect(refusal(PODS.fromPut(k, value, wired({ node: 'node-2' }), PREFIX))).toContain(
      'runs on node-2',
    );
    expect(
      refusal(PODS.fromPut(`${RANGE}prod/node1-cni-c0ffee-eth0`, value, wired(), PREFIX)),
    ).toContain('<node>-k8s-<pod>-<interface>');
  });

  it('an endpoint without an address is refused (it would not exist once written)', () => {
    const [k, value] = putOf(wired(), (r) => ({ ...r, spec: { ...r.spec, ipNetworks: [] } }));
    expect(refusal(PODS.fromPut(k, value, wired(), PREFIX))).toContain('spec.ipNetworks');
  });
});
