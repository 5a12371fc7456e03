/**
 * `kubectl` against the lab on the Kubernetes datastore reaches the dataplane: a lab of 2
 * nodes (real kube-apiserver, agents on the Kubernetes datastore as the tortie-node
 * ServiceAccount, the lab playing kubelet), two pods on different nodes, then — with
 * Debian's kubectl and the lab's admin kubeconfig, as a user would —
 *
 *   kubectl apply -f examples/kube-policy.yaml   → client can no longer reach web
 *   kubectl label pod client role=trusted        → it can again
 *   kubectl apply (egress only to namespaces labelled team=open) → blocked
 *   kubectl label ns default team=open           → allowed
 *
 * Each wait is exact: the resourceVersion of the object kubectl wrote, programmed
 * by every agent for that kind (their /status programmedRevisions). Then a pod deleted as
 * kubelet does (CNI DEL, the Pod object gone), and the lab's removal (API server, etcd,
 * directories) leaving nothing.
 *
 * `kubectl label … -o json` prints the object as it was before the label (its old
 * resourceVersion; kubectl 1.32 here): waiting on that returns before the agents saw the
 * change, and the first SYN after it was dropped. A label's revision is therefore read
 * back with `kubectl get` (at least the label's own), and a door it opens must answer
 * within the same 1 s as any probe: no retransmission allowed.
 */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterLab, destroyClusterLab } from '../../src/lab/cluster/cluster-lab.js';
import { paths } from '../../src/lab/cluster/kubelet.js';
import { pidsMatching } from '../../src/util/proc.js';
import { KUBE_START_TIMEOUT_MS, testKubeBinaries } from '../helpers/kube-api.js';
import { newRunId } from '../helpers/netns.js';

const id = `kc${newRunId().slice(0, 6)}`;

describe('kubectl reaches the dataplane of a lab on the Kubernetes datastore', () => {
  let lab: ClusterLab | undefined;

  /** `kubectl ARGS -o json` as the lab's admin; the resourceVersion of what it wrote. */
  async function kubectl(args: string[], input?: string): Promise<string> {
    const out = await lab!.kube!.server.kubectlOk([...args, '-o', 'json'], {
      ...(input === undefined ? {} : { input }),
    });
    const o = JSON.parse(out) as { metadata: { resourceVersion: string } };
    return o.metadata.resourceVersion;
  }

  /** Every agent has programmed `kind` at `rv`. */
  async function programmed(kind: string, rv: string): Promise<void> {
    await Promise.all(
      lab!.nodes.map((n) => n.process!.waitForKindRevisions(new Map([[kind, BigInt(rv)]]))),
    );
  }

  /**
   * `kubectl label ARGS`, then the object's resourceVersion read back: kubectl label's own
   * output shows the object before the change.
   */
  async function label(resource: string[], labels: string): Promise<string> {
    await lab!.kube!.server.kubectlOk(['label', ...resource, labels]);
    return lab!.kube!.server.kubectlOk([
      'get',
      ...resource,
      '-o',
      'jsonpath={.metadata.resourceVersion}',
    ]);
  }

  /** client → web answers within 1 s: no SYN dropped (one would wait 1 s to be sent again). */
  const reach = () => lab!.probe('default/client', 'default/web', 80, 'tcp', 1000);

  beforeAll(async () => {
    await testKubeBinaries();
    lab = await ClusterLab.up({ id, nodes: 2, encap: 'ipip', datastore: 'kubernetes' });
    await lab.addPod({ namespace: 'default', name: 'web', labels: { app: 'web' }, node: 0 });
    await lab.addPod({ namespace: 'default', name: 'client', labels: { app: 'client' }, node: 1 });
  }, KUBE_START_TIMEOUT_MS);

  afterAll(async () => {
    await lab?.down().catch(() => undefined);
    await destroyClusterLab(id);
  }, 120_000);

  it('the agents run as the ServiceAccount, the pods are Running on their nodes', async () => {
    expect(lab!.kube!.agentUser).toBe('system:serviceaccount:kube-system:tortie-node');
    const web = await lab!.kube!.api.get(paths.pod('default', 'web'));
    expect((web.spec as { nodeName: string }).nodeName).toBe(lab!.nodes[0]!.name);
    expect(web.status).toMatchObject({ phase: 'Running', podIP: lab!.pod('default/web').ip });
    expect(await reach()).toBe(true);
  });

  it('kubectl apply of a NetworkPolicy, then kubectl label pod', async () => {
    await programmed(
      'K8sNetworkPolicy',
      await kubectl(['apply', '-f', 'examples/kube-policy.yaml']),
    );
    expect(await reach()).toBe(false);
    await programmed(
      'WorkloadEndpoint',
      await label(['pod', '-n', 'default', 'client'], 'role=trusted'),
    );
    expect(await reach()).toBe(true);
  });

  it('kubectl label ns opens what a namespaceSelector guards', async () => {
    const egress = {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'client-to-open-namespaces', namespace: 'default' },
      spec: {
        podSelector: { matchLabels: { app: 'client' } },
        policyTypes: ['Egress'],
        egress: [{ to: [{ namespaceSelector: { matchLabels: { team: 'open' } } }] }],
      },
    };
    await programmed(
      'K8sNetworkPolicy',
      await kubectl(['apply', '-f', '-'], JSON.stringify(egress)),
    );
    expect(await reach()).toBe(false);
    await programmed('Namespace', await label(['ns', 'default'], 'team=open'));
    expect(await reach()).toBe(true);
  });

  it('a pod deleted as kubelet does: CNI DEL, then the Pod object gone', async () => {
    await lab!.removePod('default/client');
    expect(await lab!.kube!.api.find(paths.pod('default', 'client'))).toBeUndefined();
    expect(lab!.pods.map((p) => p.key)).toEqual(['default/web']);
  });

  it('down removes the API server, its etcd and their directory', async () => {
    const dir = lab!.kube!.server.dir;
    await lab!.down();
    lab = undefined;
    expect(existsSync(dir)).toBe(false);
    expect(pidsMatching(`--name=tortie-kube-${id}-etcd`)).toEqual([]);
    expect(pidsMatching(dir)).toEqual([]);
    expect(existsSync(`/run/netns/tortie-${id}-ul`)).toBe(false);
  });
});
