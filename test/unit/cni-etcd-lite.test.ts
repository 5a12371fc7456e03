/**
 * The plugin's JSON-gateway etcd client against a real etcd, side by side with the
 * `etcd3` package it stands in for: the same requests must give the same answers, the same
 * error classes, and the datastore and IPAM must work on it unchanged.
 */
import { createServer, type Server } from 'node:net';
import { Etcd3 as GrpcEtcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CompareResult,
  CompareTarget,
  Etcd3 as LiteEtcd3,
  GRPCDeadlineExceededError,
  GRPCOutOfRangeError,
  GRPCUnavailableError,
} from '../../src/cni/etcd-lite/client.js';
import { Datastore } from '../../src/datastore/index.js';
import { Ipam } from '../../src/ipam/index.js';
import { freePort, startEtcd, type EtcdCluster } from '../../src/lab/etcd.js';

let etcd: EtcdCluster | undefined;
let grpc: GrpcEtcd3;
let lite: LiteEtcd3;
const prefix = `/lite-${Math.random().toString(16).slice(2, 8)}`;
const key = (k: string): Buffer => Buffer.from(`${prefix}/${k}`);

beforeAll(async () => {
  etcd = await startEtcd(`lite${Math.random().toString(16).slice(2, 8)}`);
  grpc = new GrpcEtcd3({ hosts: etcd.endpoints });
  lite = new LiteEtcd3({ hosts: etcd.endpoints });
});

afterAll(async () => {
  lite?.close();
  grpc?.close();
  await etcd?.stop();
});

/** Both clients' answers with the member-specific header fields they share. */
async function both<T>(call: (client: { kv: LiteEtcd3['kv'] }) => Promise<T>): Promise<[T, T]> {
  return [await call(grpc as unknown as { kv: LiteEtcd3['kv'] }), await call(lite)];
}

describe('the JSON-gateway etcd client', () => {
  it('answers range, put, txn and deleteRange exactly as etcd3 does', async () => {
    await lite.kv.put({ key: key('a'), value: Buffer.from('1') });
    await grpc.kv.put({ key: key('b'), value: Buffer.from('2') });
    const end = Buffer.from(`${prefix}0`);

    const [g1, l1] = await both((c) => c.kv.range({ key: key(''), range_end: end }));
    expect(l1).toEqual(g1);
    expect(l1.kvs.map((kv: { value: Buffer }) => kv.value.toString())).toEqual(['1', '2']);

    const [gMissing, lMissing] = await both((c) => c.kv.range({ key: key('nope') }));
    expect(lMissing).toEqual(gMissing);

    const mod = l1.kvs[0].mod_revision as string;
    const txn = (result: unknown, target: unknown) => ({
      compare: [{ key: key('a'), result, target, mod_revision: mod }],
      success: [{ request_range: { key: key('a') } }],
      failure: [{ request_range: { key: key('b') } }],
    });
    // Both spellings of the enums the callers use: etcd3's numbers and the names.
    for (const [result, target] of [
      [CompareResult.Equal, CompareTarget.Mod],
      ['Equal', 'Mod'],
      [CompareResult.NotEqual, 'Mod'],
    ]) {
      const [g, l] = await both((c) => c.kv.txn(txn(result, target)));
      expect(l).toEqual(g);
    }

    const [gDel, lDel] = await Promise.all([
      grpc.kv.deleteRange({ key: key('a') }),
      lite.kv.deleteRange({ key: key('b') }),
    ]);
    expect(lDel.deleted).toBe(gDel.deleted);
  });

  it('throws the etcd3 error class for etcd refusals, unreachable endpoints and deadlines', async () => {
    await expect(lite.kv.range({ key: key('a'), revision: '99999999' })).rejects.toBeInstanceOf(
      GRPCOutOfRangeError,
    );
    await expect(lite.kv.range({ key: key('a'), revision: '99999999' })).rejects.toThrow(
      /11 OUT_OF_RANGE: .*future revision/,
    );

    const closed = new LiteEtcd3({ hosts: [`http://127.0.0.1:${await freePort()}`] });
    await expect(closed.kv.range({ key: key('a') })).rejects.toBeInstanceOf(GRPCUnavailableError);
    closed.close();

    // A server that accepts and never answers: the deadline ends the call.
    const silent: Server = createServer(() => undefined);
    const port = await new Promise<number>((resolve) =>
      silent.listen(0, '127.0.0.1', () => resolve((silent.address() as { port: number }).port)),
    );
    const stuck = new LiteEtcd3({ hosts: [`http://127.0.0.1:${port}`] });
    const started = Date.now();
    await expect(
      stuck.kv.range({ key: key('a') }, { deadline: Date.now() + 300 }),
    ).rejects.toBeInstanceOf(GRPCDeadlineExceededError);
    expect(Date.now() - started).toBeLessThan(2000);
    stuck.close();
    silent.close();
  });

  it('tries the next endpoint when one refuses connections', async () => {
    const multi = new LiteEtcd3({
      hosts: [`http://127.0.0.1:${await freePort()}`, ...(etcd as EtcdCluster).endpoints],
    });
    await expect(multi.kv.range({ key: key('a') })).resolves.toMatchObject({ kvs: [] });
    multi.close();
  });

  it('carries the datastore and IPAM unchanged', async () => {
    const client = lite as unknown as GrpcEtcd3;
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
});
