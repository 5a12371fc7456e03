/**
 * The datastore against a real etcd (one member, started here, stopped in afterAll):
 * refusals leave the store byte-for-byte unchanged, multi-object calls are all or
 * nothing, optimistic concurrency, server-owned metadata, reads, deletes and labels.
 */
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startEtcd, type EtcdCluster } from '../../src/lab/etcd.js';
import {
  Datastore,
  DatastoreError,
  isDatastoreError,
  kindPrefix,
  resourceKey,
  type StoredResource,
} from '../../src/datastore/index.js';
import {
  guardedWrite,
  prefixUnchangedSince,
  putOp,
  readSnapshot,
} from '../../src/datastore/txn.js';
import { INVALID_CASES, VALID_EXAMPLES } from '../unit/datastore-cases.js';
import { newRunId } from '../helpers/netns.js';

const run = newRunId();
let cluster: EtcdCluster;
let ds: Datastore;
let prefix: string;
let n = 0;

const T = 'tortie.io/v1';
const pool = (name: string, cidr: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: T,
  kind: 'IPPool',
  metadata: { name },
  spec: { cidr, ...extra },
});
const tier = (name: string, order: number, metadata: Record<string, unknown> = {}) => ({
  apiVersion: T,
  kind: 'Tier',
  metadata: { name, ...metadata },
  spec: { order },
});

/** Every key and value under the test's prefix, with revisions: the store's full state. */
async function dump(): Promise<string[]> {
  const res = await ds.etcd.getAll().prefix(`${prefix}/`).exec();
  return res.kvs.map((kv) => `${kv.key.toString()} @${kv.mod_revision} ${kv.value.toString()}`);
}

async function refusal(p: Promise<unknown>): Promise<DatastoreError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof DatastoreError) return e;
    throw e;
  }
  throw new Error('the call succeeded but should have been refused');
}

beforeAll(async () => {
  cluster = await startEtcd(`ds${run}`, 1);
});

afterAll(async () => {
  await ds?.close();
  await cluster?.stop();
});

beforeEach(async () => {
  // A fresh prefix per test: tests never see each other's objects.
  await ds?.close();
  prefix = `/tortie-test-${run}-${n++}`;
  ds = await Datastore.connect({ endpoints: cluster.endpoints, prefix, timeoutMs: 3000 });
});

describe('refused objects leave the store unchanged', () => {
  it.each(INVALID_CASES.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    await ds.apply(VALID_EXAMPLES.slice(0, 3));
    const before = await dump();
    for (const write of [
      () => ds.apply([c.object]),
      () => ds.create([VALID_EXAMPLES[3], c.object]),
    ]) {
      const e = await refusal(write());
      expect(e.kind).toBe('invalid');
      expect(e.message).toContain(c.path === '' ? c.reason : `${c.path}: `);
      expect(e.message).toContain(c.reason);
    }
    expect(await dump()).toEqual(before);
  });
});

describe('writes', () => {
  it("stores one object of every kind in Calico's layout: <prefix>/resources/v3/<group>/<plural>/[<namespace>/]<name>", async () => {
    const results = await ds.apply(VALID_EXAMPLES);
    expect(results.map((r) => r.action)).toEqual(VALID_EXAMPLES.map(() => 'created'));
    const keys = (await dump()).map((l) => l.split(' ')[0]);
    const calico = `${prefix}/resources/v3/projectcalico.org`;
    expect(keys).toContain(`${calico}/ippools/pool-ok`);
    // Policy names carry Calico's tier prefix in the store.
    expect(keys).toContain(`${calico}/networkpolicies/prod/default.web`);
    expect(keys).toContain(`${calico}/workloadendpoints/prod/node--1-cni-abc-eth0`);
    // tortie's own kinds: beside Calico's, in a group calicoctl never lists.
    const tortie = `${prefix}/resources/v3/tortie.io`;
    expect(keys).toContain(`${tortie}/k8snetworkpolicies/prod/deny-ingress`);
    expect(keys).toContain(`${tortie}/namespaces/prod`);
    expect(keys).toContain(resourceKey('AgentConfiguration', 'node.node-1', undefined, prefix));
    expect(keys).toHaveLength(VALID_EXAMPLES.length);
  });

  it('a multi-document apply with one bad document writes nothing, and names that document', async () => {
    const before = await dump();
    const e = await refusal(
      ds.apply([
        pool('a', '10.1.0.0/16'),
        tier('t', 10),
        pool('b', '10.2.0.0/16', { blockSize: 33 }),
      ]),
    );
    expect(e.kind).toBe('invalid');
    expect(e.details).toHaveLength(1);
    expect(e.details[0]).toMatchObject({ index: 2, path: 'spec.blockSize' });
    expect(e.message).toBe('IPPool b: spec.blockSize: 33 is out of range 20-32');
    expect(await dump()).toEqual(before);
  });

  it('every refused document of a call is reported, not just the first', async () => {
    const e = await refusal(ds.apply([pool('a', '10.1.0.0/33'), tier('t', 10), tier('T', 1)]));
    expect(e.details.map((d) => d.index)).toEqual([0, 2]);
  });

  it('the same object twice in one call is refused', async () => {
    const e = await refusal(ds.apply([tier('t', 1), tier('t', 2)]));
    expect(e.message).toContain('appears twice in one call (objects 1 and 2)');
    expect(await dump()).toEqual([]);
  });

  it('create refuses an object that exists, and then writes none of the call', async () => {
    await ds.create(tier('old', 1));
    const before = await dump();
    const e = await refusal(ds.create([tier('new', 2), tier('old', 3)]));
    expect(e.kind).toBe('already-exists');
    expect(e.message).toBe('Tier old: already exists (use replace or apply to change it)');
    expect(await dump()).toEqual(before);
  });

  it('replace refuses a missing object, and then writes none of the call', async () => {
    await ds.create(tier('here', 1));
    const before = await dump();
    const e = await refusal(ds.replace([tier('here', 5), tier('gone', 2)]));
    expect(e.kind).toBe('not-found');
    expect(e.message).toContain('Tier gone: does not exist');
    expect(await dump()).toEqual(before);
  });

  it('uid and creationTimestamp are kept across updates; resourceVersion is the mod revision', async () => {
    const [created] = await ds.create(tier('t', 1));
    // The update must happen at a later timestamp than the creation, or a creationTimestamp
    // overwritten with the update's time would go unnoticed: wait for the clock to move on.
    const createdAt = created!.resource.metadata.creationTimestamp;
    while (new Date().toISOString() <= createdAt) await new Promise((r) => setImmediate(r));
    // A creationTimestamp in the input is the server's business: ignored.
    const [updated] = await ds.apply(tier('t', 2, { creationTimestamp: '1999-01-01T00:00:00Z' }));
    const got = (await ds.get('Tier', 't'))!;
    expect(got.metadata.uid).toBe(created!.resource.metadata.uid);
    expect(got.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(got.metadata.creationTimestamp).toBe(created!.resource.metadata.creationTimestamp);
    expect(got.spec).toEqual({ order: 2 });
    const raw = await ds.etcd.get(resourceKey('Tier', 't', undefined, prefix)).exec();
    expect(got.metadata.resourceVersion).toBe(raw.kvs[0]!.mod_revision);
    expect(updated!.resource.metadata.resourceVersion).toBe(raw.kvs[0]!.mod_revision);
    expect(JSON.parse(raw.kvs[0]!.value.toString()).metadata).not.toHaveProperty('resourceVersion');
  });

  it('apply with seenAbsent creates in one write, and updates (keeping the uid) when the object appeared meanwhile', async () => {
    const [fresh] = await ds.apply(tier('sa', 1), { seenAbsent: true });
    expect(fresh!.action).toBe('created');
    // Wrongly "seen absent": the guarded write fails and the usual read-plan-write updates.
    const [stale] = await ds.apply(tier('sa', 2), { seenAbsent: true });
    expect(stale!.action).toBe('updated');
    const got = (await ds.get('Tier', 'sa'))!;
    expect(got.spec).toEqual({ order: 2 });
    expect(got.metadata.uid).toBe(fresh!.resource.metadata.uid);
    expect(got.metadata.resourceVersion).toBe(stale!.resource.metadata.resourceVersion);
  });

  it('a uid that does not match the stored object is a conflict (it was recreated)', async () => {
    await ds.create(tier('t', 1));
    const e = await refusal(ds.apply(tier('t', 2, { uid: 'someone-elses' })));
    expect(e.kind).toBe('conflict');
    expect(e.message).toContain('metadata.uid');
  });

  it('applying an object unchanged writes nothing and says so', async () => {
    await ds.apply(pool('p', '10.9.0.0/16'));
    const before = await dump();
    const [r] = await ds.apply(pool('p', '10.9.0.0/16', { blockSize: 26 }));
    expect(r!.action).toBe('unchanged');
    expect(await dump()).toEqual(before);
  });
});

describe('optimistic concurrency', () => {
  it('replace with the stored resourceVersion succeeds; with a stale one it is a conflict and writes nothing', async () => {
    await ds.create(tier('t', 1));
    const read = (await ds.get('Tier', 't'))!;
    const edit = (order: number): StoredResource => ({ ...read, spec: { order } });
    await ds.replace(edit(2)); // someone else's update, from the same read
    const before = await dump();
    const e = await refusal(ds.replace(edit(3)));
    expect(e.kind).toBe('conflict');
    expect(e.message).toMatch(
      /Tier t: metadata.resourceVersion: is \d+ but the stored object is at \d+/,
    );
    expect(await dump()).toEqual(before);
    const fresh = (await ds.get('Tier', 't'))!;
    await ds.replace({ ...fresh, spec: { order: 3 } });
    expect((await ds.get('Tier', 't'))!.spec).toEqual({ order: 3 });
  });

  it('a multi-object replace is all or nothing: one stale object and no object changes', async () => {
    await ds.create([tier('a', 1), tier('b', 1)]);
    const [a, b] = [(await ds.get('Tier', 'a'))!, (await ds.get('Tier', 'b'))!];
    await ds.apply(tier('b', 7));
    const before = await dump();
    const e = await refusal(
      ds.replace([
        { ...a, spec: { order: 2 } },
        { ...b, spec: { order: 2 } },
      ]),
    );
    expect(e.kind).toBe('conflict');
    expect(e.details.map((d) => d.index)).toEqual([1]);
    expect(await dump()).toEqual(before);
  });

  it('racing writers of overlapping pools: exactly one pool is stored', async () => {
    const other = await Datastore.connect({ endpoints: cluster.endpoints, prefix });
    try {
      const outcomes = await Promise.allSettled([
        ds.create(pool('left', '10.20.0.0/16')),
        other.create(pool('right', '10.20.128.0/17')),
        ds.create(pool('wide', '10.0.0.0/8')),
      ]);
      expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
      for (const o of outcomes) {
        if (o.status === 'rejected') expect(isDatastoreError(o.reason, 'invalid')).toBe(true);
      }
      expect(await ds.list('IPPool')).toHaveLength(1);
    } finally {
      await other.close();
    }
  });
});

describe('pools', () => {
  it('the pool guard holds while no pool changed, and fails once one appears after the read', async () => {
    const pools = kindPrefix('IPPool', undefined, prefix);
    await ds.apply(pool('a', '10.1.0.0/16'));
    const snap = await readSnapshot(ds.etcd, { prefixes: [pools] }, {});
    await ds.apply(tier('unrelated', 1));
    const probe = putOp(`${prefix}/probe`, 'x');
    expect(
      (await guardedWrite(ds.etcd, [prefixUnchangedSince(pools, snap.revision)], [probe], {}))
        .succeeded,
    ).toBe(true);
    await ds.apply(pool('b', '10.2.0.0/16'));
    expect(
      (await guardedWrite(ds.etcd, [prefixUnchangedSince(pools, snap.revision)], [probe], {}))
        .succeeded,
    ).toBe(false);
  });

  it('an overlapping pool is refused, naming the pool it overlaps', async () => {
    await ds.apply(pool('default', '10.65.0.0/16'));
    const e = await refusal(ds.apply(pool('inner', '10.65.4.0/24')));
    expect(e.message).toBe(
      'IPPool inner: spec.cidr: 10.65.4.0/24 overlaps IPPool default (10.65.0.0/16); pools must not share addresses',
    );
  });

  it('two overlapping pools in one call are refused together', async () => {
    const e = await refusal(ds.apply([pool('a', '10.0.0.0/16'), pool('b', '10.0.0.0/17')]));
    expect(e.details).toMatchObject([{ index: 1, path: 'spec.cidr' }]);
    expect(await ds.list('IPPool')).toEqual([]);
  });

  it("a pool's cidr and blockSize cannot change; its other fields can", async () => {
    await ds.apply(pool('p', '10.65.0.0/16'));
    expect((await refusal(ds.apply(pool('p', '10.66.0.0/16')))).message).toContain(
      'spec.cidr: cannot change',
    );
    expect(
      (await refusal(ds.apply(pool('p', '10.65.0.0/16', { blockSize: 24 })))).message,
    ).toContain('spec.blockSize: cannot change');
    const [r] = await ds.apply(pool('p', '10.65.0.0/16', { disabled: true }));
    expect(r!.action).toBe('updated');
  });
});

describe('reads and deletes', () => {
  it('get returns the object, or undefined when it does not exist', async () => {
    await ds.apply(VALID_EXAMPLES);
    expect((await ds.get('NetworkPolicy', 'web', 'prod'))?.spec).toMatchObject({
      selector: 'app == "web"',
    });
    expect(await ds.get('NetworkPolicy', 'web', 'other')).toBeUndefined();
    expect(await ds.get('IPPool', 'nope')).toBeUndefined();
  });

  it('list narrows to a namespace, or spans all of them', async () => {
    const np = (name: string, namespace: string) => ({
      apiVersion: T,
      kind: 'NetworkPolicy',
      metadata: { name, namespace },
    });
    await ds.apply([np('a', 'prod'), np('b', 'prod'), np('a', 'dev')]);
    expect(
      (await ds.list('NetworkPolicy', { namespace: 'prod' })).map((p) => p.metadata.name),
    ).toEqual(['a', 'b']);
    const all = await ds.list('NetworkPolicy');
    expect(all.map((p) => `${p.metadata.namespace}/${p.metadata.name}`)).toEqual([
      'dev/a',
      'prod/a',
      'prod/b',
    ]);
    const { revision } = await ds.listWithRevision('NetworkPolicy');
    expect(BigInt(revision)).toBeGreaterThanOrEqual(BigInt(all[2]!.metadata.resourceVersion!));
  });

  it('delete by reference and by object; a missing one is not-found and nothing is deleted', async () => {
    await ds.apply([tier('a', 1), tier('b', 2), pool('p', '10.1.0.0/16')]);
    const [deleted] = await ds.delete({ kind: 'Tier', name: 'a' });
    expect(deleted).toMatchObject({ action: 'deleted', resource: { metadata: { name: 'a' } } });
    const before = await dump();
    const e = await refusal(ds.delete([tier('b', 0), { kind: 'Tier', name: 'a' }]));
    expect(e.kind).toBe('not-found');
    expect(e.message).toBe('Tier a: not found');
    expect(await dump()).toEqual(before);
    await ds.delete([tier('b', 0), { kind: 'ippool', name: 'p' }]);
    expect(await dump()).toEqual([]);
    expect(await ds.delete({ kind: 'Tier', name: 'a' }, { ignoreNotFound: true })).toEqual([]);
  });

  it('delete with a stale resourceVersion is a conflict', async () => {
    await ds.apply(tier('a', 1));
    const read = (await ds.get('Tier', 'a'))!;
    await ds.apply(tier('a', 2));
    expect((await refusal(ds.delete(read))).kind).toBe('conflict');
    expect(await ds.get('Tier', 'a')).toBeDefined();
  });
});

describe('labels', () => {
  it('adds, refuses to change without overwrite, overwrites, removes', async () => {
    await ds.apply({
      apiVersion: T,
      kind: 'Node',
      metadata: { name: 'n1', labels: { zone: 'a' } },
    });
    let r = await ds.label('Node', 'n1', undefined, { rack: 'r1' });
    expect(r).toMatchObject({
      changed: true,
      resource: { metadata: { labels: { zone: 'a', rack: 'r1' } } },
    });
    const before = await dump();
    const e = await refusal(ds.label('Node', 'n1', undefined, { zone: 'b' }));
    expect(e.kind).toBe('conflict');
    expect(e.message).toContain('label zone already has the value "a"');
    expect(await dump()).toEqual(before);
    r = await ds.label('Node', 'n1', undefined, { zone: 'b' }, { overwrite: true });
    expect(r.resource.metadata.labels).toEqual({ zone: 'b', rack: 'r1' });
    r = await ds.label('Node', 'n1', undefined, { zone: null });
    expect((await ds.get('Node', 'n1'))!.metadata.labels).toEqual({ rack: 'r1' });
    expect((await ds.label('Node', 'n1', undefined, { rack: 'r1' })).changed).toBe(false);
  });

  it('labels a namespaced object; a missing object is not-found; a bad key is invalid', async () => {
    await ds.apply({
      apiVersion: T,
      kind: 'NetworkSet',
      metadata: { name: 's', namespace: 'prod' },
    });
    await ds.label('NetworkSet', 's', 'prod', { role: 'db' });
    expect((await ds.get('NetworkSet', 's', 'prod'))!.metadata.labels).toEqual({ role: 'db' });
    expect((await refusal(ds.label('NetworkSet', 's', 'dev', { a: 'b' }))).kind).toBe('not-found');
    expect((await refusal(ds.label('NetworkSet', 's', 'prod', { 'no spaces': 'x' }))).kind).toBe(
      'invalid',
    );
  });
});

describe('availability', () => {
  it('a refused connection fails a call with unavailable, naming the endpoint and the refusal', async () => {
    // A deadline far off: the refusal, not the deadline, must end the call.
    const dead = await Datastore.connect({ endpoints: ['http://127.0.0.1:1'], timeoutMs: 60_000 });
    try {
      const e = await refusal(dead.list('IPPool'));
      expect(e.kind).toBe('unavailable');
      expect(e.message).toContain(
        'etcd at http://127.0.0.1:1 is unavailable (cannot connect: ECONNREFUSED 127.0.0.1:1)',
      );
    } finally {
      await dead.close();
    }
  });

  it('an endpoint that accepts but never answers fails a call with unavailable at its deadline', async () => {
    // A listener that takes the connection and says nothing: only the call's deadline can
    // end the call. That it ends at all (and why) is the evidence, not how long it took.
    const sockets = new Set<Socket>();
    const silent = createServer((s) => {
      sockets.add(s);
      s.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const endpoint = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const dead = await Datastore.connect({ endpoints: [endpoint], timeoutMs: 2000 });
    try {
      const e = await refusal(dead.list('IPPool'));
      expect(e.kind).toBe('unavailable');
      expect(e.message).toContain(`etcd at ${endpoint} is unavailable (4 DEADLINE_EXCEEDED`);
    } finally {
      await dead.close();
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});
