/**
 * Watches against a real etcd: initial sync, resume after the member is killed and
 * restarted, resume after a cut connection (a TCP proxy in front of etcd that the test
 * cuts while another client writes), and resync after a real compaction.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startEtcd, type EtcdCluster } from '../../src/lab/etcd.js';
import {
  Datastore,
  isDatastoreError,
  type ResourceWatcher,
  type WatchEvent,
  type WatchStatus,
} from '../../src/datastore/index.js';
import { newRunId } from '../helpers/netns.js';

const run = newRunId();
let cluster: EtcdCluster;
let prefix: string;
let n = 0;
const open: { close(): Promise<void> }[] = [];

const tier = (name: string, order: number) => ({
  apiVersion: 'tortie.io/v1',
  kind: 'Tier',
  metadata: { name },
  spec: { order },
});

/** A TCP relay to etcd that can be cut (every connection reset, new ones refused) and restored. */
class CuttableProxy {
  private readonly sockets = new Set<Socket>();
  private up = true;
  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(target: string): Promise<CuttableProxy> {
    const { hostname, port } = new URL(target);
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    const proxy = new CuttableProxy(
      server,
      `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`,
    );
    server.on('connection', (client) => {
      if (!proxy.up) {
        client.destroy();
        return;
      }
      const upstream = connect(Number(port), hostname);
      for (const s of [client, upstream]) {
        proxy.sockets.add(s);
        s.on('close', () => proxy.sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    return proxy;
  }

  cut(): void {
    this.up = false;
    for (const s of this.sockets) s.resetAndDestroy();
  }

  restore(): void {
    this.up = true;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Collects a watcher's events and statuses, and waits for conditions on them. */
class Recorder {
  readonly events: WatchEvent[] = [];
  readonly statuses: WatchStatus[] = [];
  readonly errors: Error[] = [];
  handler = (e: WatchEvent): void => {
    this.events.push(e);
  };
  onStatus = (s: WatchStatus): void => {
    this.statuses.push(s);
  };
  onError = (e: Error): void => {
    this.errors.push(e);
  };

  async until(
    what: string,
    done: (events: readonly WatchEvent[]) => boolean,
    timeoutMs = 60_000, // a bound for giving up only: the events end the wait
  ): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done(this.events)) {
      if (Date.now() > deadline) {
        throw new Error(
          `timed out waiting for ${what}; events: ${JSON.stringify(this.events.map(brief))}`,
        );
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Replays the events into a name → spec map: what a consumer would believe. */
  state(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const e of this.events) {
      if (e.type === 'put') out[e.resource.metadata.name] = e.resource.spec;
      if (e.type === 'delete') delete out[e.name];
    }
    return out;
  }
}

function brief(e: WatchEvent): string {
  if (e.type === 'synced') return `synced(${e.cause})@${e.revision}`;
  const name = e.type === 'put' ? e.resource.metadata.name : e.name;
  return `${e.type}${e.synthetic ? '*' : ''} ${name}@${e.revision}`;
}

async function connectTo(endpoints: string[]): Promise<Datastore> {
  const ds = await Datastore.connect({ endpoints, prefix, timeoutMs: 3000 });
  open.push(ds);
  return ds;
}

async function storeState(ds: Datastore): Promise<Record<string, unknown>> {
  return Object.fromEntries((await ds.list('Tier')).map((t) => [t.metadata.name, t.spec]));
}

beforeAll(async () => {
  cluster = await startEtcd(`dw${run}`, 1);
});

beforeEach(() => {
  prefix = `/tortie-watch-${run}-${n++}`;
});

afterAll(async () => {
  // Watchers are cancelled by close(), before the clients go.
  for (const c of open.reverse()) await c.close().catch(() => undefined);
  await cluster?.stop();
});

describe('watch', () => {
  it('delivers the existing objects as synthetic puts, then synced, then live changes', async () => {
    const ds = await connectTo(cluster.endpoints);
    await ds.apply([tier('a', 1), tier('b', 2)]);
    const rec = new Recorder();
    await ds.watch('Tier', rec.handler);
    await ds.apply([tier('b', 3), tier('c', 4)]); // one transaction, two events at one revision
    await ds.delete({ kind: 'Tier', name: 'a' });
    await rec.until('the delete', (ev) => ev.some((e) => e.type === 'delete'));
    expect(rec.events.map(brief).map((s) => s.replace(/@\d+/, ''))).toEqual([
      'put* a',
      'put* b',
      'synced(initial)',
      'put b',
      'put c',
      'delete a',
    ]);
    const updateOfB = rec.events[3] as Extract<WatchEvent, { type: 'put' }>;
    expect(updateOfB.previous?.spec).toEqual({ order: 2 });
    expect(rec.state()).toEqual(await storeState(ds));
  });

  it('from a list revision, delivers only the changes made after it, for the kinds asked', async () => {
    const ds = await connectTo(cluster.endpoints);
    await ds.apply(tier('old', 1));
    const { revision } = await ds.listWithRevision('Tier');
    await ds.apply([
      tier('new', 2),
      {
        apiVersion: 'tortie.io/v1',
        kind: 'IPPool',
        metadata: { name: 'p' },
        spec: { cidr: '10.0.0.0/16' },
      },
    ]);
    const rec = new Recorder();
    const w = await ds.watch(['Tier', 'GlobalNetworkPolicy'], rec.handler, { revision });
    await ds.apply({
      apiVersion: 'tortie.io/v1',
      kind: 'GlobalNetworkPolicy',
      metadata: { name: 'g' },
    });
    await rec.until('the policy', (ev) =>
      ev.some((e) => e.type === 'put' && e.kind === 'GlobalNetworkPolicy'),
    );
    expect(
      rec.events.map((e) => (e.type === 'put' ? `${e.kind} ${e.resource.metadata.name}` : e.type)),
    ).toEqual(['Tier new', 'GlobalNetworkPolicy g']);
    await w.cancel();
  });

  it('resumes after the etcd member is killed and restarted, losing and repeating nothing', async () => {
    const ds = await connectTo(cluster.endpoints);
    await ds.apply(tier('a', 1));
    const rec = new Recorder();
    const w = await ds.watch('Tier', rec.handler, { onStatus: rec.onStatus });
    await rec.until('the initial sync', (ev) => ev.some((e) => e.type === 'synced'));
    const member = cluster.members[0]!.name;
    await cluster.kill(member);
    await rec.until('the disconnect', () => rec.statuses.includes('disconnected'));
    await cluster.restart(member);
    // Written right away: most likely before the watcher reconnects, so they come from history.
    const writer = await connectTo(cluster.endpoints);
    await writer.apply(tier('b', 2));
    await writer.apply(tier('a', 5));
    await writer.delete({ kind: 'Tier', name: 'b' });
    await rec.until('the delete of b', (ev) =>
      ev.some((e) => e.type === 'delete' && e.name === 'b'),
    );
    const live = rec.events.filter((e) => e.type !== 'synced' && !e.synthetic).map(brief);
    expect(live.map((s) => s.replace(/@\d+/, ''))).toEqual(['put b', 'put a', 'delete b']);
    const revisions = rec.events
      .filter((e) => e.type !== 'synced' && !e.synthetic)
      .map((e) => BigInt(e.revision));
    expect([...revisions].sort((x, y) => (x < y ? -1 : 1))).toEqual(revisions);
    expect(w.resyncs).toBe(0);
    expect(rec.statuses.at(-1)).toBe('connected');
    expect(rec.state()).toEqual(await storeState(writer));
  });

  it('resumes from the last revision after its connection is cut while others write', async () => {
    const proxy = await CuttableProxy.start(cluster.endpoints[0]!);
    open.push(proxy);
    const watcherStore = await connectTo([proxy.url]);
    const writer = await connectTo(cluster.endpoints);
    await writer.apply([tier('a', 1), tier('b', 1)]);
    const rec = new Recorder();
    const w = await watcherStore.watch('Tier', rec.handler, { onStatus: rec.onStatus });
    await rec.until('the initial sync', (ev) => ev.some((e) => e.type === 'synced'));
    proxy.cut();
    await rec.until('the disconnect', () => rec.statuses.includes('disconnected'));
    await writer.apply(tier('c', 1));
    await writer.apply([tier('a', 2), tier('b', 2)]);
    await writer.delete({ kind: 'Tier', name: 'c' });
    proxy.restore();
    await rec.until('the delete of c', (ev) =>
      ev.some((e) => e.type === 'delete' && e.name === 'c'),
    );
    const live = rec.events.filter((e) => e.type !== 'synced' && !e.synthetic).map(brief);
    expect(live.map((s) => s.replace(/@\d+/, ''))).toEqual(['put c', 'put a', 'put b', 'delete c']);
    expect(w.resyncs).toBe(0);
    expect(rec.state()).toEqual(await storeState(writer));
  });

  it('after a compaction removed its revision, resyncs: synthetic events bring it to the store state', async () => {
    const proxy = await CuttableProxy.start(cluster.endpoints[0]!);
    open.push(proxy);
    const watcherStore = await connectTo([proxy.url]);
    const writer = await connectTo(cluster.endpoints);
    await writer.apply([tier('keep', 1), tier('change', 1), tier('remove', 1)]);
    const rec = new Recorder();
    const w = await watcherStore.watch('Tier', rec.handler, {
      onStatus: rec.onStatus,
      onError: rec.onError,
    });
    await rec.until('the initial sync', (ev) => ev.some((e) => e.type === 'synced'));
    const before = rec.events.length;
    proxy.cut();
    await rec.until('the disconnect', () => rec.statuses.includes('disconnected'));
    await writer.apply(tier('add', 1));
    await writer.apply(tier('change', 2));
    await writer.delete({ kind: 'Tier', name: 'remove' });
    const { revision } = await writer.listWithRevision('Tier');
    await writer.etcd.kv.compact({ revision, physical: true });
    proxy.restore();
    await rec.until('the resync', (ev) =>
      ev.some((e) => e.type === 'synced' && e.cause === 'compacted'),
    );
    const after = rec.events
      .slice(before)
      .map(brief)
      .map((s) => s.replace(/@\d+/, ''));
    expect(after.sort()).toEqual([
      'delete* remove',
      'put* add',
      'put* change',
      'synced(compacted)',
    ]);
    const change = rec.events
      .slice(before)
      .find((e) => e.type === 'put' && e.resource.metadata.name === 'change');
    expect(change?.type === 'put' && change.previous?.spec).toEqual({ order: 1 });
    expect(w.resyncs).toBe(1);
    expect(rec.state()).toEqual(await storeState(writer));
    // And it keeps following afterwards.
    await writer.apply(tier('later', 9));
    await rec.until('a change after the resync', (ev) =>
      ev.some((e) => e.type === 'put' && e.resource.metadata.name === 'later'),
    );
    expect(rec.errors).toEqual([]);
  });

  it('refuses to start from a revision that was compacted, saying to list again', async () => {
    const ds = await connectTo(cluster.endpoints);
    await ds.apply(tier('a', 1));
    const { revision: old } = await ds.listWithRevision('Tier');
    await ds.apply(tier('a', 2));
    const { revision } = await ds.listWithRevision('Tier');
    await ds.etcd.kv.compact({ revision, physical: true });
    const e = await ds
      .watch('Tier', () => undefined, { revision: String(BigInt(old) - 1n) })
      .catch((x: unknown) => x);
    expect(isDatastoreError(e, 'conflict')).toBe(true);
    expect((e as Error).message).toContain('has been compacted away; list again');
  });

  it('a handler that throws is reported and the next events still arrive', async () => {
    const ds = await connectTo(cluster.endpoints);
    const rec = new Recorder();
    let first = true;
    const w: ResourceWatcher = await ds.watch(
      'Tier',
      (e) => {
        if (e.type === 'put' && first) {
          first = false;
          throw new Error('handler bug');
        }
        rec.handler(e);
      },
      { onError: rec.onError },
    );
    await ds.apply(tier('a', 1));
    await ds.apply(tier('b', 1));
    await rec.until('b', (ev) =>
      ev.some((e) => e.type === 'put' && e.resource.metadata.name === 'b'),
    );
    expect(rec.errors.map((e) => e.message)).toEqual(['handler bug']);
    await w.cancel();
  });
});
