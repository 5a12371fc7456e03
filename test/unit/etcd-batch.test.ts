/**
 * Batched reads (src/datastore/etcd/batch.ts) against a real etcd: reads started
 * together go as one transaction and each caller gets exactly the answer its own call
 * would have; writes and pinned reads go as they came.
 */
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { batchingReads } from '../../src/datastore/etcd/batch.js';
import { startEtcd, type EtcdCluster } from '../../src/lab/etcd.js';
import { newRunId } from '../helpers/netns.js';

let etcd: EtcdCluster | undefined;
let client: Etcd3;
const run = newRunId();
const prefix = `/batch-${run}`;
const key = (k: string): Buffer => Buffer.from(`${prefix}/${k}`);

beforeAll(async () => {
  etcd = await startEtcd(`batch${run}`);
  client = new Etcd3({ hosts: etcd.endpoints });
  await client.put(`${prefix}/a`).value('1');
  await client.put(`${prefix}/b`).value('2');
  await client.put(`${prefix}/c`).value('3');
});

afterAll(async () => {
  client?.close();
  await etcd?.stop();
});

describe('batched etcd reads', () => {
  it('reads started together are one transaction, each answered as alone', async () => {
    const alone = await Promise.all([
      client.kv.range({ key: key('a') }),
      client.kv.range({ key: key(''), range_end: Buffer.from(`${prefix}0`) }),
      client.kv.txn({
        success: [{ request_range: { key: key('b') } }, { request_range: { key: key('x') } }],
      }),
    ]);
    const batched = batchingReads(client);
    const txn = vi.spyOn(client.kv, 'txn');
    const range = vi.spyOn(client.kv, 'range');
    try {
      const together = await Promise.all([
        batched.kv.range({ key: key('a') }),
        batched.kv.range({ key: key(''), range_end: Buffer.from(`${prefix}0`) }),
        batched.kv.txn({
          success: [{ request_range: { key: key('b') } }, { request_range: { key: key('x') } }],
        }),
      ]);
      expect(range).not.toHaveBeenCalled();
      expect(txn).toHaveBeenCalledTimes(1);
      expect(txn.mock.calls[0]![0].success).toHaveLength(4);
      // The same keys and values, each at the batch's one revision.
      const kvs = (r: { kvs: { key: Buffer; value: Buffer }[] }) =>
        r.kvs.map((kv) => `${kv.key.toString()}=${kv.value.toString()}`);
      expect(kvs(together[0])).toEqual(kvs(alone[0]));
      expect(kvs(together[1])).toEqual(['a=1', 'b=2', 'c=3'].map((s) => `${prefix}/${s}`));
      expect(together[2].succeeded).toBe(true);
      expect(together[2].responses.map((r) => kvs(r.response_range))).toEqual(
        alone[2].responses.map((r) => kvs(r.response_range)),
      );
      expect(together[0].header.revision).toBe(together[2].header.revision);
    } finally {
      txn.mockRestore();
      range.mockRestore();
    }
  });

  it('writes, compares and pinned reads go as they came; the batch is not held by them', async () => {
    const batched = batchingReads(client);
    const txn = vi.spyOn(client.kv, 'txn');
    const range = vi.spyOn(client.kv, 'range');
    try {
      const { header } = await client.kv.range({ key: key('a') });
      const [pinned, cas, write] = await Promise.all([
        batched.kv.range({ key: key('a'), revision: header.revision }),
        batched.kv.txn({
          compare: [{ key: key('a'), target: 'Value', result: 'Equal', value: Buffer.from('1') }],
          success: [{ request_range: { key: key('a') } }],
        }),
        batched.kv.txn({ success: [{ request_put: { key: key('d'), value: Buffer.from('4') } }] }),
      ]);
      expect(pinned.kvs[0]!.value.toString()).toBe('1');
      expect(cas.succeeded).toBe(true);
      expect(write.succeeded).toBe(true);
      // Each its own call (the pinned range itself, the two transactions as given).
      expect(range).toHaveBeenCalledTimes(2);
      expect(txn).toHaveBeenCalledTimes(2);
      expect((await client.get(`${prefix}/d`).string()) ?? '').toBe('4');
    } finally {
      txn.mockRestore();
      range.mockRestore();
    }
  });
});
