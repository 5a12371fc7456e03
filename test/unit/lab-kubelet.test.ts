/**
 * The lab's kubelet on the Kubernetes datastore, in pure parts: the objects it writes, the
 * CNI_ARGS it calls the plugin with, the label patches, the agents' command line, the
 * manifests' ServiceAccounts, a kubeconfig read as kubectl reads it, and the refusals of
 * policies that cannot go through the API. No API server, nothing started.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseCniArgs } from '../../src/cni/cni-args.js';
import { labAgentSettings, nodeRunArgs } from '../../src/lab/cluster/agent-settings.js';
import { readKubeconfig, resourcePath } from '../../src/lab/cluster/kube-api.js';
import { networkPolicyRef } from '../../src/lab/cluster/kube-conformance.js';
import { ipPoolObject, manifestAccounts, manifestFiles } from '../../src/lab/cluster/kube-lab.js';
import {
  CALICO_IPV4_ANNOTATION,
  kubeletCniArgs,
  labelsPatch,
  nodeObject,
  podObject,
  runningStatus,
  sandboxId,
} from '../../src/lab/cluster/kubelet.js';
import { checkUpOptions } from '../../src/lab/cluster/options.js';

const dir = mkdtempSync(join(tmpdir(), 'tortie-unit-kubelet-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the Kubernetes objects the lab writes', () => {
  it("a Node carries Calico's address annotation and kubelet's labels", () => {
    const n = nodeObject('lab-n0', '192.168.231.1/24');
    expect(n.metadata.annotations).toEqual({ [CALICO_IPV4_ANNOTATION]: '192.168.231.1/24' });
    expect(n.metadata.labels).toMatchObject({
      'kubernetes.io/hostname': 'lab-n0',
      'kubernetes.io/os': 'linux',
    });
  });

  it('a Pod is bound to its node, with its service account and container ports', () => {
    const p = podObject({
      namespace: 'x',
      name: 'a',
      labels: { pod: 'a' },
      nodeName: 'lab-n1',
      serviceAccount: 'sa1',
      ports: [
        { name: 'serve-80-tcp', containerPort: 80, protocol: 'TCP' },
        { containerPort: 81, protocol: 'UDP' },
      ],
    });
    expect(p.metadata).toEqual({ name: 'a', namespace: 'x', labels: { pod: 'a' } });
    expect(p.spec).toMatchObject({
      nodeName: 'lab-n1',
      serviceAccountName: 'sa1',
      containers: [
        {
          ports: [
            { name: 'serve-80-tcp', containerPort: 80, protocol: 'TCP' },
            { containerPort: 81, protocol: 'UDP' },
          ],
        },
      ],
    });
    expect(podObject({ namespace: 'x', name: 'b', labels: {}, nodeName: 'n' }).spec).toMatchObject({
      serviceAccountName: 'default',
    });
  });

  it("kubelet's CNI_ARGS, as the plugin parses them", () => {
    const uid = '0b1c6f0e-7f5e-4c1d-9a57-2f7f3b1e9d21';
    const containerId = sandboxId(uid);
    expect(containerId).toMatch(/^[0-9a-f]{64}$/);
    expect(sandboxId(uid)).toBe(containerId);
    const args = parseCniArgs(kubeletCniArgs({ namespace: 'x', name: 'a', uid, containerId }));
    expect(args).toMatchObject({
      podNamespace: 'x',
      podName: 'a',
      podUid: uid,
      infraContainerId: containerId,
    });
  });

  it('the status kubelet writes: Running, podIP and podIPs, hostIP, Ready', () => {
    const s = runningStatus('10.231.0.5', '192.168.231.2', new Date('2026-01-02T03:04:05.678Z'));
    expect(s.status).toMatchObject({
      phase: 'Running',
      podIP: '10.231.0.5',
      podIPs: [{ ip: '10.231.0.5' }],
      hostIP: '192.168.231.2',
      startTime: '2026-01-02T03:04:05Z',
    });
    const conds = (s.status as { conditions: { type: string; status: string }[] }).conditions;
    expect(conds.find((c) => c.type === 'Ready')?.status).toBe('True');
  });

  it('a label patch makes the labels exactly the wanted map (removed keys null)', () => {
    expect(labelsPatch({ a: '1', b: '2' }, { a: '3', c: '4' })).toEqual({
      metadata: { labels: { a: '3', c: '4', b: null } },
    });
    expect(
      labelsPatch({ 'kubernetes.io/metadata.name': 'y', ns: 'y' }, {}, [
        'kubernetes.io/metadata.name',
      ]),
    ).toEqual({ metadata: { labels: { ns: null } } });
    expect(labelsPatch(undefined, { a: '1' })).toEqual({ metadata: { labels: { a: '1' } } });
  });

  it('the pool, as a user would apply it', () => {
    expect(ipPoolObject('10.231.0.0/16', 'ipip')).toMatchObject({
      kind: 'IPPool',
      spec: { cidr: '10.231.0.0/16', blockSize: 26, ipipMode: 'Always' },
    });
  });

  it('paths of core and grouped resources', () => {
    expect(resourcePath('v1', 'pods', 'x', 'a')).toBe('/api/v1/namespaces/x/pods/a');
    expect(resourcePath('networking.k8s.io/v1', 'networkpolicies')).toBe(
      '/apis/networking.k8s.io/v1/networkpolicies',
    );
  });
});

describe("the agents' credentials and command line", () => {
  it("the manifests' tortie-node ServiceAccount runs the agents (and the plugin)", () => {
    const accounts = manifestAccounts(manifestFiles());
    expect(accounts.agent).toEqual({ namespace: 'kube-system', name: 'tortie-node' });
    expect(accounts.cni).toBeUndefined();
  });

  it('manifests without a ServiceAccount are refused, naming the files', () => {
    const f = join(dir, 'only-crd.yaml');
    writeFileSync(f, 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n');
    expect(() => manifestAccounts([f])).toThrow(/no ServiceAccount for the agents/);
  });

  it('an agent on Kubernetes runs --datastore kubernetes --kubeconfig, without etcd flags', () => {
    const s = labAgentSettings(
      {
        id: 'k1',
        etcdEndpoints: [],
        agentKubeconfig: '/run/tortie/labs/k1/kube/agent.kubeconfig',
        etcdTls: undefined,
        routing: 'static',
        bgpRunDir: '/tmp/x/bird',
        bgpHoldTimeSeconds: 6,
        dataplane: 'bpf',
        endpointToHostAction: undefined,
      },
      {
        name: 'k1-n0',
        netns: '/run/netns/tortie-k1-n0',
        underlayIp: '192.168.231.1',
        pinRoot: '/p',
      },
      { logFile: '/tmp/x.log' },
    );
    const args = nodeRunArgs(s);
    const at = args.indexOf('--datastore');
    expect(args.slice(at, at + 4)).toEqual([
      '--datastore',
      'kubernetes',
      '--kubeconfig',
      '/run/tortie/labs/k1/kube/agent.kubeconfig',
    ]);
    expect(args).not.toContain('--etcd-endpoints');
  });

  it('a kubeconfig with a token and a CA file, as kubectl reads it', () => {
    writeFileSync(join(dir, 'ca.pem'), 'CA');
    const kc = join(dir, 'sa.kubeconfig');
    writeFileSync(
      kc,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443/", certificate-authority: ca.pem}}]',
        'users: [{name: u, user: {token: "abc.def"}}]',
        'contexts: [{name: ctx, context: {cluster: c, user: u}}]',
        'current-context: ctx',
      ].join('\n'),
    );
    const c = readKubeconfig(kc);
    expect(c.server).toBe('https://127.0.0.1:6443');
    expect(c.token).toBe('abc.def');
    expect(c.ca?.toString()).toBe('CA');
    writeFileSync(kc, 'current-context: nowhere\ncontexts: []\n');
    expect(() => readKubeconfig(kc)).toThrow(/no context "nowhere"/);
  });

  it('up options refuse what the Kubernetes datastore has not', () => {
    const base = { id: 'k1', nodes: 2, encap: 'ipip' as const, datastore: 'kubernetes' as const };
    expect(() => checkUpOptions({ ...base, agents: 'inline' })).toThrow(/processes/);
    expect(() => checkUpOptions({ ...base, etcdTls: true })).toThrow(/etcdTls/);
    expect(() => checkUpOptions({ ...base, routing: 'bgp' })).toThrow(/routing 'bgp'/);
    expect(() => checkUpOptions(base)).not.toThrow();
  });
});

describe('policies through the API', () => {
  const np = {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: 'deny', namespace: 'x', resourceVersion: '7', uid: 'u' },
    spec: { podSelector: {} },
  };

  it('a NetworkPolicy is applied without the fields the server owns', () => {
    const ref = networkPolicyRef(np, 0);
    expect(ref).toMatchObject({ namespace: 'x', name: 'deny' });
    expect(ref.object.metadata).toEqual({ name: 'deny', namespace: 'x' });
    expect(np.metadata.resourceVersion).toBe('7');
  });

  it('anything else is refused, naming the field', () => {
    expect(() =>
      networkPolicyRef({ ...np, apiVersion: 'tortie.io/v1', kind: 'GlobalNetworkPolicy' }, 2),
    ).toThrow(/policies\[2\]: tortie.io\/v1 GlobalNetworkPolicy/);
    expect(() => networkPolicyRef({ ...np, metadata: { name: 'deny' } }, 0)).toThrow(
      /policies\[0\]\.metadata\.namespace: required/,
    );
  });
});
