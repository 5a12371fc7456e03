/**
 * The datastore's JSON-gateway etcd client (the CNI plugin's) against a real etcd, side
 * by side with the `etcd3` package it stands in for: the same requests must give the same
 * answers, failures classified alike, and the datastore and IPAM must work on it when it
 * is passed to them.
 */
import { createServer, type Server } from 'node:net';
import { CompareResult, CompareTarget, Etcd3 as GrpcEtcd3, type ICompare } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import {
  classifyEtcdError,
  EtcdRefusedError,
  EtcdTimeoutError,
  EtcdUnavailableError,
} from '../../src/datastore/etcd/errors.js';
import { EtcdGatewayClient } from '../../src/datastore/etcd/gateway.js';
import { Datastore, type EtcdKvClient } from '../../src/datastore/index.js';
import { Cas } from '../../src/ipam/cas.js';
import { Ipam } from '../../src/ipam/index.js';
import { freePort, startEtcd, type EtcdCluster } from '../../src/lab/etcd.js';
import { newRunId } from '../helpers/netns.js';

let etcd: EtcdCluster | undefined;
let grpc: GrpcEtcd3;
let lite: EtcdGatewayClient;
const run = newRunId();
const prefix = `/lite-${run}`;
const key = (k: string): Buffer => Buffer.from(`${prefix}/${k}`);

beforeAll(async () => {
  etcd = await startEtcd(`lite${run}`);
  grpc = new GrpcEtcd3({ hosts: etcd.endpoints });
  lite = new EtcdGatewayClient({ hosts: etcd.endpoints });
});

afterAll(async () => {
  lite?.close();
  grpc?.close();
  await etcd?.stop();
});

/** Both clients' answers with the member-specific header fields they share. */
async function both<T>(
  call: (client: { kv: EtcdGatewayClient['kv'] }) => Promise<T>,
): Promise<[T, T]> {
  return [await call(grpc), await call(lite)];
}

describe('the JSON-gateway etcd client', () => {
  it('answers range, put, txn and deleteRange exactly as etcd3 does', async () => {
    await lite.kv.put({ key: key('a'), value: Buffer.from('1') });
    await grpc.kv.put({ key: key('b'), value: Buffer.from('2') });
    const end = Buffer.from(`${prefix}0`);

    const [g1, l1] = await both((c) => c.kv.range({ key: key(''), range_end: end }));
    expect(l1).toEqual(g1);
    expect(l1.kvs.map((kv) => kv.value.toString())).toEqual(['1', '2']);

    const [gMissing, lMissing] = await both((c) => c.kv.range({ key: key('nope') }));
    expect(lMissing).toEqual(gMissing);

    const mod = l1.kvs[0]!.mod_revision;
    const txn = (result: ICompare['result'], target: ICompare['target']) => ({
      compare: [{ key: key('a'), result, target, mod_revision: mod }],
      success: [{ request_range: { key: key('a') } }],
      failure: [{ request_range: { key: key('b') } }],
    });
    // Both spellings of the enums ICompare allows: etcd3's numbers and the names.
    const spellings: Array<[ICompare['result'], ICompare['target']]> = [
      [CompareResult.Equal, CompareTarget.Mod],
      ['Equal', 'Mod'],
      [CompareResult.NotEqual, 'Mod'],
    ];
    for (const [result, target] of spellings) {
      const [g, l] = await both((c) => c.kv.txn(txn(result, target)));
      expect(l).toEqual(g);
    }

    const [gDel, lDel] = await Promise.all([
      grpc.kv.deleteRange({ key: key('a') }),
      lite.kv.deleteRange({ key: key('b') }),
    ]);
    expect(lDel.deleted).toBe(gDel.deleted);
  });

  it('throws its own etcd errors, of their kind, for etcd refusals, unreachable endpoints and deadlines', async () => {
    const future = lite.kv.range({ key: key('a'), revision: '99999999' });
    await expect(future).rejects.toBeInstanceOf(EtcdRefusedError);
    await expect(future).rejects.toMatchObject({ kind: 'future-revision', status: 11 });
    await expect(lite.kv.range({ key: key('a'), revision: '99999999' })).rejects.toThrow(
      /11 OUT_OF_RANGE: .*future revision/,
    );

    const closed = new EtcdGatewayClient({ hosts: [`http://127.0.0.1:${await freePort()}`] });
    const refused = closed.kv.range({ key: key('a') });
    await expect(refused).rejects.toBeInstanceOf(EtcdUnavailableError);
    await expect(refused).rejects.toMatchObject({ kind: 'unavailable', status: 14 });
    closed.close();

    // A server that accepts and never answers: the deadline ends the call when the clock
    // (a fake one the test moves) reaches it, and not before.
    const silent: Server = createServer(() => undefined);
    const connected = new Promise<void>((resolve) => silent.once('connection', () => resolve()));
    const port = await new Promise<number>((resolve) =>
      silent.listen(0, '127.0.0.1', () => resolve((silent.address() as { port: number }).port)),
    );
    const stuck = new EtcdGatewayClient({ hosts: [`http://127.0.0.1:${port}`] });
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    try {
      const call = stuck.kv.range({ key: key('a') }, { deadline: Date.now() + 300 });
      let settled = false;
      call.then(
        () => (settled = true),
        () => (settled = true),
      );
      await connected; // the request is with the server
      await vi.advanceTimersByTimeAsync(299);
      expect(settled).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      await expect(call).rejects.toBeInstanceOf(EtcdTimeoutError);
    } finally {
      vi.useRealTimers();
      stuck.close();
      silent.close();
    }
  });

  it('tries the next endpoint when one refuses connections', async () => {
    const multi = new EtcdGatewayClient({
      hosts: [`http://127.0.0.1:${await freePort()}`, ...(etcd as EtcdCluster).endpoints],
    });
    await expect(multi.kv.range({ key: key('a') })).resolves.toMatchObject({ kvs: [] });
    multi.close();
  });

  it('carries the datastore and IPAM when passed to them', async () => {
    const client: EtcdKvClient = lite;
    const store = Datastore.fromClient(client, {
      prefix: `${prefix}-store`,
      endpoints: (etcd as EtcdCluster).endpoints,
    });
    await store.apply([
      {
        apiVersion: 'tortie.io/v1',
        kind: 'IPPool',
        metadata: { name: 'p' },
        spec: { cidr: '10.9.0.0/24', blockSize: 28 },
      },
    ]);
    expect((await store.list('IPPool')).map((p) => p.spec.cidr)).toEqual(['10.9.0.0/24']);
    // Types only (never run): a store on a client without etcd's watch stream cannot watch.
    const neverRun = (): unknown =>
      // @ts-expect-error -- the gateway client has no watchClient
      store.watch('IPPool', () => undefined);
    expect(typeof neverRun).toBe('function');
    const ipam = new Ipam(client, store.prefix);
    const pools = [{ name: 'p', cidr: '10.9.0.0/24', blockSize: 28 }];
    const handles = Array.from({ length: 20 }, (_, i) => `h.${i}`);
    const ips = await Promise.all(
      handles.map((handle) => ipam.autoAssign({ handle, node: 'n1', pools })),
    );
    expect(new Set(ips.map((a) => a.ip)).size).toBe(20);
    expect((await ipam.autoAssign({ handle: 'h.0', node: 'n1', pools })).ip).toBe(ips[0]?.ip);
    for (const handle of handles) await ipam.releaseByHandle(handle);
    expect((await ipam.check({ handles: new Set(), graceMs: 0 })).counts.allocations).toBe(0);
  });

  it('is made by Datastore.connect from its normalised settings when given as the factory', async () => {
    const [host] = (etcd as EtcdCluster).endpoints;
    const made: EtcdGatewayClient[] = [];
    const store = await Datastore.connect(
      // A bare host:port: the datastore adds the scheme before the factory sees it.
      { endpoints: [host!.replace(/^http:\/\//, '')], prefix: `${prefix}-conn`, timeoutMs: 2000 },
      (options) => {
        expect(options.hosts).toEqual([host]);
        const c = new EtcdGatewayClient(options);
        made.push(c);
        return c;
      },
    );
    expect(store.etcd).toBe(made[0]);
    expect(await store.list('IPPool')).toEqual([]);
    await store.close();
    // connect() made the client, so close() closed it.
    await expect(store.etcd.kv.range({ key: key('a') })).rejects.toThrow(/closed/);

    const dead = await Datastore.connect(
      { endpoints: [`http://127.0.0.1:${await freePort()}`], timeoutMs: 1000 },
      (options) => new EtcdGatewayClient(options),
    );
    await expect(dead.list('Node')).rejects.toMatchObject({
      name: 'DatastoreError',
      kind: 'unavailable',
    });
    await dead.close();
  });

  it('has its refusals classified as etcd3 ones are: IPAM `invalid`, not `unavailable`', async () => {
    // Larger than etcd's --max-request-bytes (1.5 MiB by default).
    const huge = 'x'.repeat(2 * 1024 * 1024);
    for (const client of [grpc, lite] as EtcdKvClient[]) {
      const tx = new Cas(client.kv, 5000);
      tx.put(`${prefix}/huge`, huge);
      await expect(tx.commit()).rejects.toMatchObject({ name: 'IpamError', kind: 'invalid' });
    }
  });

  it('gives each failure etcd reports the same kind as etcd3 does: future, compacted, too many ops', async () => {
    // A fresh etcd3 client: the one above has its circuit breaker open after the huge request.
    const grpc = new GrpcEtcd3({ hosts: (etcd as EtcdCluster).endpoints });
    onTestFinished(() => grpc.close());
    const kindFrom = async (call: (c: EtcdKvClient) => Promise<unknown>) => {
      const kinds: Array<string | undefined> = [];
      for (const client of [grpc, lite] as EtcdKvClient[]) {
        const e = await call(client).then(
          () => undefined,
          (x: unknown) => x,
        );
        kinds.push(classifyEtcdError(e)?.kind);
      }
      return kinds;
    };
    expect(await kindFrom((c) => c.kv.range({ key: key('c'), revision: '99999999' }))).toEqual([
      'future-revision',
      'future-revision',
    ]);
    const first = await grpc.kv.put({ key: key('c'), value: Buffer.from('1') });
    const last = await grpc.kv.put({ key: key('c'), value: Buffer.from('2') });
    // This etcd is the test's own: compacting its history touches no one else.
    await grpc.kv.compact({ revision: last.header.revision, physical: true });
    expect(
      await kindFrom((c) => c.kv.range({ key: key('c'), revision: first.header.revision })),
    ).toEqual(['compacted', 'compacted']);
    const ops = Array.from({ length: 200 }, (_, i) => ({
      request_put: { key: key(`many/${i}`), value: Buffer.from('x') },
    }));
    expect(await kindFrom((c) => c.kv.txn({ success: ops }))).toEqual([
      'too-many-ops',
      'too-many-ops',
    ]);
  });
});
