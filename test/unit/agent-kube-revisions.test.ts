/**
 * Exact waits per kind: on the Kubernetes datastore the watch delivers several API
 * resources whose resourceVersions are not ordered across them, so the model keeps the
 * highest revision per kind and a wait that names a kind is answered by that kind only.
 * On etcd (one revision order) the global revision answers every wait, as before.
 */
import { describe, expect, it } from 'vitest';
import { ClusterModel } from '../../src/agent/model.js';
import { RevisionWaits } from '../../src/agent/revision-waits.js';
import type { StoredResource, WatchEvent } from '../../src/datastore/index.js';

const late = () => 'late';

function put(kind: 'K8sNetworkPolicy' | 'WorkloadEndpoint', name: string, rev: string): WatchEvent {
  const resource = {
    apiVersion: 'projectcalico.org/v3',
    kind,
    metadata: { name, namespace: 'default', resourceVersion: rev },
    spec: {},
  } as unknown as StoredResource;
  return { type: 'put', kind, resource, revision: rev, synthetic: false };
}

describe('programmed revision per kind', () => {
  it('the model keeps the highest revision of each kind, whatever order they arrive in', () => {
    const m = new ClusterModel();
    m.apply(put('WorkloadEndpoint', 'a', '130'));
    m.apply(put('K8sNetworkPolicy', 'p', '120')); // older, another resource's watch
    m.apply(put('WorkloadEndpoint', 'b', '125'));
    expect(m.kindRevisions.get('WorkloadEndpoint')).toBe(130n);
    expect(m.kindRevisions.get('K8sNetworkPolicy')).toBe(120n);
    m.apply({
      type: 'delete',
      kind: 'K8sNetworkPolicy',
      name: 'p',
      namespace: 'default',
      revision: '140',
      synthetic: false,
    });
    expect(m.kindRevisions.get('K8sNetworkPolicy')).toBe(140n);
  });

  it('Kubernetes: a wait for a kind is not answered by another kind or the global revision', async () => {
    const w = new RevisionWaits('node-a', false);
    w.reached(130n, new Map([['WorkloadEndpoint', 130n]]));
    expect(w.has(125n, 'K8sNetworkPolicy')).toBe(false);
    let done = false;
    const pending = w.wait(125n, 60_000, late, 'K8sNetworkPolicy').then(() => (done = true));
    w.reached(131n, new Map([['WorkloadEndpoint', 131n]]));
    await Promise.resolve();
    expect(done).toBe(false);
    w.reached(131n, new Map([['K8sNetworkPolicy', 125n]]));
    await pending;
    expect(done).toBe(true);
    expect(w.kinds).toEqual({ K8sNetworkPolicy: '125', WorkloadEndpoint: '131' });
    // A wait without a kind still compares the global revision.
    await w.wait(131n, 60_000, late);
  });

  it('etcd: the global revision answers a wait that names a kind (one revision order)', async () => {
    const w = new RevisionWaits('node-a', true);
    w.reached(130n, new Map([['WorkloadEndpoint', 130n]]));
    await w.wait(125n, 60_000, late, 'K8sNetworkPolicy');
    expect(w.revisionOf('K8sNetworkPolicy')).toBe(0n);
  });

  it('a kind wait rejects when the agent stops, and at once after', async () => {
    const w = new RevisionWaits('node-a', false);
    const pending = w.wait(3n, 60_000, late, 'Namespace');
    w.stop();
    await expect(pending).rejects.toThrow('node-a: agent stopped');
    await expect(w.wait(3n, 3_600_000, late, 'Namespace')).rejects.toThrow('agent stopped');
  });

  it('a kind wait past its timeout says what was late', async () => {
    const w = new RevisionWaits('node-a', false);
    await expect(w.wait(3n, 1, () => 'Namespace 3 not programmed', 'Namespace')).rejects.toThrow(
      'Namespace 3 not programmed',
    );
  });
});
