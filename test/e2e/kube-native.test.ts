/**
 * The native mappings against a real kube-apiserver (1.34, on its own etcd 3.6): objects
 * made with kubectl as a user makes them (a Namespace, a ServiceAccount, a Node, a Pod on
 * it whose status the test writes as kubelet would, a NetworkPolicy) are read back as the
 * API serves them, and what each mapping stores decodes (decodeKeyValue) into a resource
 * tortie's own validation accepts. The writes the mappings make (the CNI plugin's pod
 * annotation patches, the agent's node annotation patch) are sent to the API server as
 * merge patches and read back; the pod's uid in a patch refuses a pod made again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildWorld, ClusterModel } from '../../src/agent/model.js';
import { encodeResource, type KindName, type StoredResource } from '../../src/datastore/index.js';
import type { KeyMapping, KubeObject } from '../../src/datastore/kubernetes/mapping.js';
import {
  NAMESPACES,
  NETWORK_POLICIES,
  NODES,
  PODS,
  SERVICE_ACCOUNTS,
} from '../../src/datastore/kubernetes/native/index.js';
import {
  KUBE_START_TIMEOUT_MS,
  startTestKubeApiserver,
  type KubeApiserver,
} from '../helpers/kube-api.js';
import { evaluate } from '../../src/policy/evaluate.js';
import { PROTOCOLS } from '../../src/policy/model.js';
import { decoded, validationProblems } from '../helpers/kube-native.js';

const PREFIX = '/calico';

let api: KubeApiserver;

function kubectl(args: readonly string[], input?: string): Promise<string> {
  return api.kubectlOk(args, input === undefined ? {} : { input });
}

async function getObject(args: readonly string[]): Promise<KubeObject> {
  return JSON.parse(await kubectl(['get', ...args, '-o', 'json'])) as KubeObject;
}

async function patch(what: readonly string[], body: unknown, subresource?: string) {
  return kubectl([
    'patch',
    ...what,
    '--type=merge',
    ...(subresource === undefined ? [] : [`--subresource=${subresource}`]),
    '-p',
    JSON.stringify(body),
  ]);
}

function stored(entry: { key: string; value: string } | undefined, rv: string): StoredResource {
  if (entry === undefined) throw new Error('the mapping gave no key for the object');
  const { resource } = decoded(entry, PREFIX, rv);
  expect(validationProblems(resource)).toEqual([]);
  return resource;
}

const MANIFESTS = `
apiVersion: v1
kind: Namespace
metadata: {name: prod, labels: {env: prod}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: api, namespace: prod, labels: {team: payments}}
---
apiVersion: v1
kind: Node
metadata: {name: node-1, labels: {zone: a}}
---
apiVersion: v1
kind: Pod
metadata: {name: web-0, namespace: prod, labels: {app: web}}
spec:
  nodeName: node-1
  serviceAccountName: api
  automountServiceAccountToken: false
  containers:
    - name: main
      image: registry.invalid/web:1
      ports:
        - {name: http, containerPort: 8080}
        - {name: dns, containerPort: 53, protocol: UDP}
        - {containerPort: 9090}
---
apiVersion: v1
kind: Pod
metadata: {name: front-0, namespace: prod, labels: {app: front}}
spec:
  nodeName: node-1
  serviceAccountName: api
  automountServiceAccountToken: false
  containers: [{name: main, image: registry.invalid/front:1}]
---
apiVersion: v1
kind: Pod
metadata: {name: other-0, namespace: prod, labels: {app: other}}
spec:
  nodeName: node-1
  serviceAccountName: api
  automountServiceAccountToken: false
  containers: [{name: main, image: registry.invalid/other:1}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-front, namespace: prod}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
    - from:
        - podSelector: {matchLabels: {app: front}}
          namespaceSelector: {matchLabels: {env: prod}}
      ports:
        - {port: http}
        - {port: 9000, endPort: 9010}
  egress:
    - to: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}]
`;

beforeAll(async () => {
  api = await startTestKubeApiserver();
  await kubectl(['apply', '-f', '-'], MANIFESTS);
  // No kubelet runs: write the node's address and the pod's as kubelet would.
  await patch(
    ['node', 'node-1'],
    { status: { addresses: [{ type: 'InternalIP', address: '192.168.5.11' }] } },
    'status',
  );
  for (const [name, ip] of [
    ['web-0', '10.65.0.7'],
    ['front-0', '10.65.0.20'],
    ['other-0', '10.65.0.30'],
  ] as const) {
    await patch(
      ['pod', '-n', 'prod', name],
      { status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] } },
      'status',
    );
  }
}, KUBE_START_TIMEOUT_MS);

afterAll(async () => {
  await api?.stop();
});

describe('objects made with kubectl, as the mappings store them', () => {
  it("a Namespace is tortie's Namespace with its labels (the API server's name label too)", async () => {
    const ns = await getObject(['namespace', 'prod']);
    const r = stored(NAMESPACES.toKv(ns, PREFIX), ns.metadata.resourceVersion!);
    expect(r.metadata.uid).toBe(ns.metadata.uid);
    expect(r.metadata.labels).toEqual({ env: 'prod', 'kubernetes.io/metadata.name': 'prod' });
  });

  it('a ServiceAccount is the ksa. Profile whose labelsToApply are its labels', async () => {
    const sa = await getObject(['serviceaccount', '-n', 'prod', 'api']);
    const entry = SERVICE_ACCOUNTS.toKv(sa, PREFIX);
    expect(entry?.key).toBe('/calico/resources/v3/projectcalico.org/profiles/ksa.prod.api');
    const r = stored(entry, sa.metadata.resourceVersion!);
    expect(r.spec).toEqual({
      labelsToApply: { 'pcsa.team': 'payments', 'pcsa.projectcalico.org/name': 'api' },
    });
  });

  it("a NetworkPolicy, defaults filled in by the API server, is tortie's K8sNetworkPolicy", async () => {
    const np = await getObject(['networkpolicy', '-n', 'prod', 'allow-front']);
    const r = stored(NETWORK_POLICIES.toKv(np, PREFIX), np.metadata.resourceVersion!);
    expect(r.kind).toBe('NetworkPolicy');
    expect((r.spec as { policyTypes?: string[] }).policyTypes).toEqual(['Ingress', 'Egress']);
    expect(r.metadata.annotations).toBeUndefined();
  });

  it("a Pod on a node, with kubelet's status, is a WorkloadEndpoint as Calico shows it", async () => {
    const p = await getObject(['pod', '-n', 'prod', 'web-0']);
    const entry = PODS.toKv(p, PREFIX);
    expect(entry?.key).toBe(
      '/calico/resources/v3/projectcalico.org/workloadendpoints/prod/node--1-k8s-web--0-eth0',
    );
    const r = stored(entry, p.metadata.resourceVersion!);
    expect(r.metadata.labels).toEqual({
      app: 'web',
      'projectcalico.org/namespace': 'prod',
      'projectcalico.org/orchestrator': 'k8s',
      'projectcalico.org/serviceaccount': 'api',
    });
    expect(r.spec).toMatchObject({
      node: 'node-1',
      ipNetworks: ['10.65.0.7/32'],
      profiles: ['kns.prod', 'ksa.prod.api'],
      ports: [
        { name: 'http', protocol: 'TCP', port: 8080 },
        { name: 'dns', protocol: 'UDP', port: 53 },
      ],
      serviceAccountName: 'api',
    });
  });

  it('a Node is a Calico Node addressed by its InternalIP until something writes its own', async () => {
    const n = await getObject(['node', 'node-1']);
    const r = stored(NODES.toKv(n, PREFIX), n.metadata.resourceVersion!);
    expect(r.spec).toEqual({
      bgp: { ipv4Address: '192.168.5.11/32' },
      orchRefs: [{ nodeName: 'node-1', orchestrator: 'k8s' }],
    });
    expect(r.metadata.labels).toEqual({ zone: 'a' });
  });
});

describe("the agent's model of what the API serves", () => {
  it('enforces the NetworkPolicy on the pods as Kubernetes means it', async () => {
    const model = new ClusterModel();
    const feed = (mapping: KeyMapping, items: KubeObject[]) => {
      for (const o of items) {
        const entry = mapping.toKv(o, PREFIX);
        if (entry === undefined) continue;
        const { kind, resource } = decoded(entry, PREFIX, o.metadata.resourceVersion);
        model.apply({
          type: 'put',
          kind: kind as KindName,
          resource,
          revision: o.metadata.resourceVersion!,
          synthetic: true,
        });
      }
    };
    const list = async (args: readonly string[]) =>
      (JSON.parse(await kubectl(['get', ...args, '-o', 'json'])) as { items: KubeObject[] }).items;
    feed(NAMESPACES, await list(['namespaces']));
    feed(SERVICE_ACCOUNTS, await list(['serviceaccounts', '-A']));
    feed(NETWORK_POLICIES, await list(['networkpolicies', '-A']));
    feed(PODS, await list(['pods', '-A']));
    feed(NODES, await list(['nodes']));
    const { world, endpoints, problems } = buildWorld(model);
    expect(problems).toEqual([]);
    expect(model.list('Node').map((n) => n.metadata.name)).toEqual(['node-1']);
    const web = [...endpoints.values()].find((e) => e.endpoint.ip === '10.65.0.7')!.endpoint;
    const to = (saddr: string, dport: number) => ({
      saddr,
      daddr: '10.65.0.7',
      protocol: PROTOCOLS.TCP,
      sport: 40000,
      dport,
    });
    // From app=front in a namespace labelled env=prod, to the named port http (8080).
    expect(evaluate(world, web, 'ingress', to('10.65.0.20', 8080)).action).toBe('allow');
    expect(evaluate(world, web, 'ingress', to('10.65.0.20', 9005)).action).toBe('allow');
    expect(evaluate(world, web, 'ingress', to('10.65.0.20', 9011)).action).toBe('deny');
    expect(evaluate(world, web, 'ingress', to('10.65.0.30', 8080)).action).toBe('deny');
  });
});

describe('the writes, sent to the API server', () => {
  it("the CNI plugin's endpoint put patches the pod's annotations; its delete takes the address away", async () => {
    const before = await getObject(['pod', '-n', 'prod', 'web-0']);
    const entry = PODS.toKv(before, PREFIX)!;
    const read = decoded(entry, PREFIX).resource;
    const put = {
      ...read,
      spec: {
        ...read.spec,
        containerID: 'c0ffee',
        network: 'k8s-pod-network',
        interfaceName: 'tor0123456789ab',
        mac: 'aa:bb:cc:dd:ee:01',
        ipNetworks: ['10.65.0.8/32'],
      },
    };
    const write = PODS.fromPut(entry.key, encodeResource(put), before, PREFIX);
    if (!('mergePatch' in write)) throw new Error(JSON.stringify(write));
    await patch(['pod', '-n', 'prod', 'web-0'], write.mergePatch);
    const after = await getObject(['pod', '-n', 'prod', 'web-0']);
    const r = stored(PODS.toKv(after, PREFIX), after.metadata.resourceVersion!);
    expect(r.spec).toMatchObject({
      containerID: 'c0ffee',
      network: 'k8s-pod-network',
      interfaceName: 'tor0123456789ab',
      mac: 'aa:bb:cc:dd:ee:01',
      ipNetworks: ['10.65.0.8/32'],
    });

    const del = PODS.fromDelete(entry.key, after, PREFIX);
    if (!('mergePatch' in del)) throw new Error(JSON.stringify(del));
    await patch(['pod', '-n', 'prod', 'web-0'], del.mergePatch);
    const gone = await getObject(['pod', '-n', 'prod', 'web-0']);
    // kubelet's status still names an address; the plugin's "" says it is gone.
    expect((gone.status as { podIP?: string }).podIP).toBe('10.65.0.7');
    expect(PODS.toKv(gone, PREFIX)).toBeUndefined();
  });

  it("a patch carrying the pod's uid is refused (422, metadata.uid immutable) once the pod is made again", async () => {
    const old = await getObject(['pod', '-n', 'prod', 'web-0']);
    await kubectl(['delete', 'pod', '-n', 'prod', 'web-0', '--grace-period=0', '--force']);
    await kubectl(['apply', '-f', '-'], MANIFESTS);
    const write = PODS.fromDelete('', old, PREFIX);
    if (!('mergePatch' in write)) throw new Error(JSON.stringify(write));
    await expect(patch(['pod', '-n', 'prod', 'web-0'], write.mergePatch)).rejects.toThrow(
      /metadata\.uid: Invalid value: .*field is immutable/,
    );
    // With the resourceVersion the kv adds as its guard, the precondition fails first (409).
    const guarded = {
      ...write.mergePatch,
      metadata: {
        ...(write.mergePatch.metadata as object),
        resourceVersion: old.metadata.resourceVersion,
      },
    };
    await expect(patch(['pod', '-n', 'prod', 'web-0'], guarded)).rejects.toThrow(
      /the object has been modified/,
    );
  });

  it("the agent's Node registration is an annotation patch, read back as written", async () => {
    const current = await getObject(['node', 'node-1']);
    const entry = NODES.toKv(current, PREFIX)!;
    const read = decoded(entry, PREFIX).resource;
    const put = {
      ...read,
      metadata: { ...read.metadata, labels: { ...read.metadata.labels, 'tortie.io/edge': 'yes' } },
      spec: { ...read.spec, bgp: { ipv4Address: '192.168.5.11/24', asNumber: 64512 } },
    };
    const write = NODES.fromPut(entry.key, encodeResource(put), current, PREFIX);
    if (!('mergePatch' in write)) throw new Error(JSON.stringify(write));
    await patch(['node', 'node-1'], write.mergePatch);
    const after = await getObject(['node', 'node-1']);
    expect(after.metadata.labels).toEqual(current.metadata.labels);
    const r = stored(NODES.toKv(after, PREFIX), after.metadata.resourceVersion!);
    expect(r.spec).toEqual(put.spec);
    expect(r.metadata.labels).toEqual(put.metadata.labels);
    // kubectl label reaches tortie's view; a label only Calico's Node has stays.
    await kubectl(['label', 'node', 'node-1', 'zone=b', '--overwrite']);
    const relabelled = await getObject(['node', 'node-1']);
    expect(decoded(NODES.toKv(relabelled, PREFIX)!, PREFIX).resource.metadata.labels).toEqual({
      zone: 'b',
      'tortie.io/edge': 'yes',
    });
  });
});
