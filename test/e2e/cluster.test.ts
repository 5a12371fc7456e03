/**
 * The multi-node lab end to end: 2 nodes (namespaces on a bridge underlay), etcd, one
 * agent per node in this process, IPIP and plain (ipipMode Never); 2 pods per node plumbed by the real CNI plugin.
 * Every pod reaches every other across nodes over TCP; a NetworkPolicy applied through
 * the Datastore isolates one pod and the matrix changes exactly there. The lab is removed
 * in afterAll whatever happened.
 *
 * Needs root and `npx tsc -p tsconfig.build.json` first (the plugin and pod process).
 */
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterLab, destroyClusterLab } from '../../src/lab/cluster/cluster-lab.js';
import { newLabId } from '../helpers/netns.js';

const PODS = [
  { namespace: 'x', name: 'a0', labels: { app: 'a' }, node: 0 },
  { namespace: 'x', name: 'b0', labels: { app: 'b' }, node: 0 },
  { namespace: 'x', name: 'a1', labels: { app: 'a' }, node: 1 },
  { namespace: 'x', name: 'iso', labels: { app: 'iso' }, node: 1 },
];

async function eventually<T>(
  what: string,
  get: () => Promise<T>,
  ok: (v: T) => boolean,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await get();
    if (ok(v) || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 200));
  }
}

// Both modes: with ipipMode Never the pods' packets go to the host stack and follow the
// kernel routes the agents keep (`<block> via <node> dev ul proto 177`).
describe.each(['ipip', 'none'] as const)('a 2-node cluster lab, encap %s', (encap) => {
  const id = newLabId('c');
  let lab: ClusterLab | undefined;

  beforeAll(async () => {
    lab = await ClusterLab.up({ id, nodes: 2, encap });
    await lab.createNamespace('x');
    for (const p of PODS) await lab.addPod(p);
  }, 300_000);

  afterAll(async () => {
    await lab?.down().catch(() => undefined);
    await destroyClusterLab(id);
    const left = [
      ...readdirSync('/run/netns').filter((n) => n.startsWith(`tortie-${id}-`)),
      ...readdirSync('/sys/fs/bpf').filter((n) => n.startsWith(`tortie-${id}-`)),
      ...readdirSync(tmpdir()).filter((n) => n.includes(`-${id}-`)),
    ];
    if (left.length > 0) throw new Error(`left behind: ${left.join(', ')}`);
  }, 120_000);

  it('every pod reaches every other, across nodes too (TCP)', async () => {
    const m = await eventually(
      'full mesh',
      () => lab!.matrix(),
      (x) => Object.values(x).every(Boolean),
    );
    expect(Object.keys(m)).toHaveLength(12);
    expect(Object.entries(m).filter(([, v]) => !v)).toEqual([]);
  }, 120_000);

  it('a NetworkPolicy isolating one pod changes exactly its incoming column', async () => {
    const [written] = await lab!.store!.apply([
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name: 'isolate', namespace: 'x' },
        spec: { podSelector: { matchLabels: { app: 'iso' } }, policyTypes: ['Ingress'] },
      },
    ]);
    await lab!.waitForRevision(written!.resource.metadata.resourceVersion!);
    const expected = (key: string) => !key.endsWith('-> x/iso');
    const m = await eventually(
      'iso isolated',
      () => lab!.matrix(),
      (x) => Object.entries(x).every(([k, v]) => v === expected(k)),
    );
    expect(Object.entries(m).filter(([k, v]) => v !== expected(k))).toEqual([]);
  }, 120_000);
});
