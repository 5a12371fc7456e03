import { describe, expect, it } from 'vitest';
import { Cas, runCas } from '../../src/ipam/cas.js';
import { IpamError } from '../../src/ipam/index.js';
import { useEtcd } from './ipam-etcd.js';

const etcd = useEtcd('ipamcas');
const opts = { maxRetries: 3, timeoutMs: 5000 };

async function putMany(prefix: string, n: number): Promise<void> {
  const client = etcd.client();
  for (let at = 0; at < n; at += 100) {
    const ops = Array.from({ length: Math.min(100, n - at) }, (_, k) =>
      client.put(`${prefix}${String(at + k).padStart(5, '0')}`).value('v'),
    );
    await client
      .if(`${prefix}none`, 'Mod', '==', 0)
      .then(...ops)
      .commit();
  }
}

describe('compare-and-swap transactions', () => {
  it('a commit fails when a key read has changed since, and succeeds when nothing has', async () => {
    const client = etcd.client();
    const p = etcd.prefix();
    await client.put(`${p}/a`).value('1');
    const stale = new Cas(client.kv, 5000);
    const [a] = await stale.get([`${p}/a`, `${p}/absent`]);
    expect(a?.value).toBe('1');
    stale.put(`${p}/b`, 'x');
    await client.put(`${p}/a`).value('2');
    expect(await stale.commit()).toBe(false);
    expect(await client.get(`${p}/b`).string()).toBeNull();

    const fresh = new Cas(client.kv, 5000);
    await fresh.get([`${p}/a`, `${p}/absent`]);
    fresh.put(`${p}/b`, 'x');
    expect(await fresh.commit()).toBe(true);
    expect(await client.get(`${p}/b`).string()).toBe('x');
  });

  it('a key read as absent fails the commit once it exists', async () => {
    const client = etcd.client();
    const p = etcd.prefix();
    const tx = new Cas(client.kv, 5000);
    await tx.get([`${p}/new`]);
    tx.put(`${p}/other`, '1');
    await client.put(`${p}/new`).value('someone else');
    expect(await tx.commit()).toBe(false);
  });

  it('a guarded list fails the commit when a key appears under its prefix, not elsewhere', async () => {
    const client = etcd.client();
    const p = etcd.prefix();
    const tx = new Cas(client.kv, 5000);
    expect(await tx.list(`${p}/dir/`, { guard: true })).toEqual([]);
    tx.put(`${p}/out`, '1');
    await client.put(`${p}/elsewhere`).value('x');
    expect(await tx.commit()).toBe(true);

    const tx2 = new Cas(client.kv, 5000);
    await tx2.list(`${p}/dir/`, { guard: true });
    tx2.put(`${p}/out`, '2');
    await client.put(`${p}/dir/new`).value('x');
    expect(await tx2.commit()).toBe(false);
  });

  it('lists past one page and gets more keys than one etcd transaction may hold', async () => {
    const client = etcd.client();
    const p = `${etcd.prefix()}/many/`;
    await putMany(p, 2300);
    const tx = new Cas(client.kv, 5000);
    const all = await tx.list(p, { keysOnly: true });
    expect(all).toHaveLength(2300);
    expect(new Set(all.map((k) => k.key)).size).toBe(2300);
    const keys = all.slice(0, 250).map((k) => k.key);
    const got = await tx.get(keys, { compare: false });
    expect(got.every((kv, i) => kv?.key === keys[i] && kv?.value === 'v')).toBe(true);
  });

  it('runCas retries a lost race on fresh reads, and gives up with conflict after maxRetries', async () => {
    const client = etcd.client();
    const p = etcd.prefix();
    let attempts = 0;
    const result = await runCas(client, opts, 'test', async (tx) => {
      attempts++;
      await tx.get([`${p}/k`]);
      if (attempts === 1) await client.put(`${p}/k`).value('interference');
      tx.put(`${p}/k`, 'mine');
      return attempts;
    });
    expect(result).toBe(2);
    expect(await client.get(`${p}/k`).string()).toBe('mine');

    const e = await runCas(client, opts, 'always losing', async (tx) => {
      await tx.get([`${p}/k`]);
      await client.put(`${p}/k`).value(String(Math.random()));
      tx.put(`${p}/k`, 'never');
    }).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(IpamError);
    expect(e).toMatchObject({
      kind: 'conflict',
      message: expect.stringContaining('always losing'),
    });
  });

  it('an etcd that does not answer is `unavailable`', async () => {
    const { Etcd3 } = await import('etcd3');
    const dead = new Etcd3({ hosts: 'http://127.0.0.1:9' });
    try {
      const e = await runCas(dead, { maxRetries: 0, timeoutMs: 1000 }, 'test', (tx) =>
        tx.get(['/x']),
      ).catch((err: unknown) => err);
      expect(e).toMatchObject({ kind: 'unavailable' });
    } finally {
      dead.close();
    }
  });
});
