/**
 * The datastore on a 3-member etcd cluster: it keeps working with one member killed,
 * a watcher whose member is killed catches up on what the others wrote meanwhile, and
 * without quorum calls fail at their deadline instead of hanging.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEtcd, type EtcdCluster } from '../../src/lab/etcd.js';
import { Datastore, DatastoreError, type WatchEvent } from '../../src/datastore/index.js';
import { newRunId } from '../helpers/netns.js';

const run = newRunId();
const prefix = `/tortie-cluster-${run}`;
let cluster: EtcdCluster;
const stores: Datastore[] = [];

const tier = (name: string, order: number) => ({
  apiVersion: 'tortie.io/v1',
  kind: 'Tier',
  metadata: { name },
  spec: { order },
});

async function connectTo(endpoints: string[], timeoutMs = 3000): Promise<Datastore> {
  const ds = await Datastore.connect({ endpoints, prefix, timeoutMs });
  stores.push(ds);
  return ds;
}

async function until(what: string, done: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeAll(async () => {
  cluster = await startEtcd(`dc${run}`, 3);
});

afterAll(async () => {
  for (const ds of stores) await ds.close().catch(() => undefined);
  await cluster?.stop();
});

describe('a 3-member etcd cluster', () => {
  it('with one member killed, writes and reads still succeed', async () => {
    const ds = await connectTo(cluster.endpoints);
    await ds.apply(tier('before', 1));
    const victim = cluster.members[0]!.name;
    await cluster.kill(victim);
    try {
      for (let i = 0; i < 10; i++) await ds.apply(tier(`during-${i}`, i));
      await ds.apply([tier('before', 2), tier('batch', 3)]);
      expect((await ds.list('Tier')).length).toBe(12);
      expect((await ds.get('Tier', 'before'))!.spec).toEqual({ order: 2 });
    } finally {
      await cluster.restart(victim);
    }
  });

  it('a watcher on a killed member catches up, from its last revision, on what the others wrote meanwhile', async () => {
    const member = cluster.members[1]!;
    const others = cluster.members.filter((m) => m !== member).map((m) => m.clientUrl);
    const watcherStore = await connectTo([member.clientUrl]);
    const writer = await connectTo(others);
    await writer.apply(tier('w-a', 1));
    const events: WatchEvent[] = [];
    const statuses: string[] = [];
    const w = await watcherStore.watch('Tier', (e) => void events.push(e), {
      onStatus: (s) => statuses.push(s),
    });
    await until('the initial sync', () => events.some((e) => e.type === 'synced'));
    const initial = events.length;
    await cluster.kill(member.name);
    await until('the disconnect', () => statuses.includes('disconnected'));
    await writer.apply(tier('w-b', 1));
    await writer.apply(tier('w-a', 2));
    await writer.delete({ kind: 'Tier', name: 'w-b' });
    await cluster.restart(member.name);
    await until('the delete of w-b', () =>
      events.some((e) => e.type === 'delete' && e.name === 'w-b'),
    );
    const caughtUp = events
      .slice(initial)
      .map((e) =>
        e.type === 'synced'
          ? 'synced'
          : `${e.type}${e.synthetic ? '*' : ''} ${e.type === 'put' ? e.resource.metadata.name : e.name}`,
      );
    expect(caughtUp).toEqual(['put w-b', 'put w-a', 'delete w-b']);
    expect(w.resyncs).toBe(0);
  });

  it('without quorum, a write fails with unavailable at its deadline instead of hanging', async () => {
    const ds = await connectTo(cluster.endpoints, 1500);
    await ds.apply(tier('q', 1));
    const [a, b] = [cluster.members[0]!.name, cluster.members[2]!.name];
    await cluster.kill(a);
    await cluster.kill(b);
    try {
      // That the call comes back at all is the point (a deadline-less call waits for quorum
      // forever); how it fails is the evidence: the deadline (the live member never
      // answers) or, once the client has marked every endpoint failed, at once.
      const e = await ds.apply(tier('q', 2)).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(DatastoreError);
      expect((e as DatastoreError).kind).toBe('unavailable');
      expect((e as Error).message).toMatch(/\((4 DEADLINE_EXCEEDED|14 UNAVAILABLE|cannot connect)/);
      expect((e as Error).message).toContain('check the endpoints and that etcd runs with quorum');
      const r = await ds.get('Tier', 'q').catch((x: unknown) => x);
      expect((r as DatastoreError).kind).toBe('unavailable');
    } finally {
      await cluster.restart(a);
      await cluster.restart(b);
    }
    // Quorum back: the store answers again.
    const again = await connectTo(cluster.endpoints);
    expect((await again.get('Tier', 'q'))!.spec).toEqual({ order: 1 });
  });
});
