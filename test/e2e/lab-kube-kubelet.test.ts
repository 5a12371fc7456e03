/**
 * The lab's control plane on the Kubernetes datastore and its kubelet, against a real
 * kube-apiserver 1.34 (with etcd 3.6) — the parts that need no agent, no CNI plugin and no
 * network namespace:
 *
 *   - startLabKube: manifests/ applied, the CRDs established, the agents' kubeconfig is
 *     exactly the tortie-node ServiceAccount's token (the API says who it is, and refuses a
 *     verb its ClusterRole does not grant), the IPPool as Calico's CRD, a Node object per
 *     lab node with Calico's address annotation;
 *   - the kubelet's writes: a Pod bound to its node with its service account and named
 *     container ports, its status Running with podIP/podIPs, labels replaced exactly,
 *     the Pod deleted at once;
 *   - the exact wait's delete revision: a NetworkPolicy deleted through the API is noted
 *     at the revision of its DELETED event, above its last write.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeApi, KubeApiError, resourcePath } from '../../src/lab/cluster/kube-api.js';
import { startLabKube, type LabKube } from '../../src/lab/cluster/kube-lab.js';
import { KubeSettle } from '../../src/lab/cluster/kube-settle.js';
import {
  CALICO_IPV4_ANNOTATION,
  createPodObject,
  deletePodObject,
  labelsPatch,
  markPodRunning,
  paths,
} from '../../src/lab/cluster/kubelet.js';
import { KUBE_START_TIMEOUT_MS, testKubeBinaries } from '../helpers/kube-api.js';
import { newRunId } from '../helpers/netns.js';

const labId = `lk${newRunId().slice(0, 6)}`;
const nodes = [
  { name: `${labId}-n0`, underlayIp: '192.168.240.1' },
  { name: `${labId}-n1`, underlayIp: '192.168.240.2' },
];

describe('the lab on the Kubernetes datastore: control plane and kubelet', () => {
  let kube: LabKube | undefined;
  let agentApi: KubeApi | undefined;
  const dir = mkdtempSync(join(tmpdir(), `tortie-cluster-${labId}-`));

  beforeAll(async () => {
    // Built (or taken from the cache) first: a cold build is not the lab's start.
    await testKubeBinaries();
    kube = await startLabKube({
      labId,
      dir: join(dir, 'kube'),
      detached: false,
      podCidr: '10.240.0.0/16',
      encap: 'ipip',
      nodes,
    });
    agentApi = KubeApi.fromKubeconfig(kube.agentKubeconfig);
  }, KUBE_START_TIMEOUT_MS);

  afterAll(async () => {
    agentApi?.close();
    kube?.api.close();
    await kube?.server.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('the agents run as the tortie-node ServiceAccount, and its role holds', async () => {
    expect(kube!.agentUser).toBe('system:serviceaccount:kube-system:tortie-node');
    const review = await agentApi!.request<{ status?: { userInfo?: { username?: string } } }>(
      'POST',
      '/apis/authentication.k8s.io/v1/selfsubjectreviews',
      { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
    );
    expect(review.status?.userInfo?.username).toBe(kube!.agentUser);
    // Granted: read the Nodes. Not granted: write a NetworkPolicy (a user's job).
    expect((await agentApi!.list(paths.nodes())).items.length).toBe(2);
    const refused = await agentApi!
      .create(paths.networkPolicies('default'), {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name: 'nope', namespace: 'default' },
        spec: { podSelector: {} },
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(refused).toBeInstanceOf(KubeApiError);
    expect((refused as KubeApiError).status).toBe(403);
  });

  it("registers a Node per lab node with Calico's address annotation, and the pool", async () => {
    for (const n of nodes) {
      const node = await kube!.api.get(paths.node(n.name));
      expect(node.metadata.annotations?.[CALICO_IPV4_ANNOTATION]).toBe(`${n.underlayIp}/24`);
      expect(node.metadata.labels?.['kubernetes.io/hostname']).toBe(n.name);
    }
    const pool = await kube!.api.get(
      resourcePath('crd.projectcalico.org/v1', 'ippools', undefined, 'lab'),
    );
    expect(pool.spec).toMatchObject({ cidr: '10.240.0.0/16', blockSize: 26, ipipMode: 'Always' });
  });

  it('writes a pod as kubelet does: bound, Running with its address, relabelled, deleted', async () => {
    const api = kube!.api;
    const pod = await createPodObject(api, {
      namespace: 'shop',
      name: 'web',
      labels: { app: 'web', tier: 'front' },
      nodeName: nodes[1]!.name,
      serviceAccount: 'web-sa',
      ports: [{ name: 'http', containerPort: 80, protocol: 'TCP' }],
    });
    expect(pod.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
    const spec = pod.spec as {
      nodeName: string;
      serviceAccountName: string;
      containers: { ports: unknown[] }[];
    };
    expect(spec.nodeName).toBe(nodes[1]!.name);
    expect(spec.serviceAccountName).toBe('web-sa');
    expect(spec.containers[0]!.ports).toEqual([
      { name: 'http', containerPort: 80, protocol: 'TCP' },
    ]);

    const running = await markPodRunning(api, 'shop', 'web', '10.240.1.5', nodes[1]!.underlayIp);
    expect(running.status).toMatchObject({
      phase: 'Running',
      podIP: '10.240.1.5',
      podIPs: [{ ip: '10.240.1.5' }],
      hostIP: nodes[1]!.underlayIp,
    });
    expect(BigInt(running.metadata.resourceVersion!)).toBeGreaterThan(
      BigInt(pod.metadata.resourceVersion!),
    );

    // `kubectl label` to exactly {app: web, role: db}: tier goes.
    const relabelled = await api.mergePatch(
      paths.pod('shop', 'web'),
      labelsPatch(running.metadata.labels, { app: 'web', role: 'db' }),
    );
    expect(relabelled.metadata.labels).toEqual({ app: 'web', role: 'db' });

    expect(await deletePodObject(api, 'shop', 'web')).toBe(true);
    expect(await api.find(paths.pod('shop', 'web'))).toBeUndefined();
    expect(await deletePodObject(api, 'shop', 'web')).toBe(false);
  });

  it("notes a NetworkPolicy's delete at the revision of its DELETED event", async () => {
    const api = kube!.api;
    const settle = await KubeSettle.start(api, () => []);
    try {
      const written = await api.apply(paths.networkPolicy('default', 'deny'), {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name: 'deny', namespace: 'default' },
        spec: { podSelector: {}, policyTypes: ['Ingress'] },
      });
      settle.note('K8sNetworkPolicy', written.metadata.resourceVersion);
      const before = BigInt(written.metadata.resourceVersion!);
      expect(settle.revisions.get('K8sNetworkPolicy')).toBe(before);
      expect(await api.delete(paths.networkPolicy('default', 'deny'))).toBe(true);
      await settle.noteNetworkPolicyDelete('default', 'deny', String(before));
      expect(settle.revisions.get('K8sNetworkPolicy')!).toBeGreaterThan(before);
    } finally {
      settle.close();
    }
  });
});
