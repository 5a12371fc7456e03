/**
 * `tortie datastore migrate` against a real etcd (one member, started here): a store in
 * tortie's layout before Calico's, written key by key as the older tortie wrote it, moves
 * into Calico's layout; the CLI and agent hint at the command until it has; twice changes
 * nothing; a differing object or an old IPAM record that does not convert refuses with
 * nothing written.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEtcd, type EtcdCluster } from '../../src/lab/etcd.js';
import { Datastore, findLegacyLayout, migrateHint } from '../../src/datastore/index.js';
import { migrateStore } from '../../src/cli/datastore-migrate.js';
import { newRunId } from '../helpers/netns.js';
import { runTortie } from '../helpers/cli.js';

const run = newRunId();
let cluster: EtcdCluster;
let ds: Datastore;
let n = 0;

/** Fresh old and new prefixes per test: the tests share one etcd. */
function prefixes(): { from: string; to: string } {
  n++;
  return { from: `/old-${run}-${n}`, to: `/new-${run}-${n}` };
}

const meta = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  uid: `uid-${name}`,
  creationTimestamp: '2026-01-02T03:04:05.000Z',
  ...extra,
});

/** What the older tortie stored: tortie.io/v1, names as written, `<from>/resources/<plural>/…`. */
function oldStore(from: string): Record<string, unknown> {
  return {
    [`${from}/resources/ippools/pool-a`]: {
      apiVersion: 'tortie.io/v1',
      kind: 'IPPool',
      metadata: meta('pool-a'),
      spec: {
        cidr: '10.244.0.0/16',
        blockSize: 26,
        ipipMode: 'Always',
        vxlanMode: 'Never',
        natOutgoing: true,
        disabled: false,
        nodeSelector: 'all()',
      },
    },
    [`${from}/resources/globalnetworkpolicies/allow-db`]: {
      apiVersion: 'tortie.io/v1',
      kind: 'GlobalNetworkPolicy',
      metadata: meta('allow-db', { labels: { team: 'db' } }),
      spec: {
        selector: "role == 'database'",
        ingress: [{ action: 'Allow', protocol: 'TCP', destination: { ports: [6379] } }],
      },
    },
    [`${from}/resources/networkpolicies/prod/allow-dns`]: {
      apiVersion: 'tortie.io/v1',
      kind: 'NetworkPolicy',
      metadata: meta('allow-dns', { namespace: 'prod' }),
      spec: { selector: 'all()', egress: [{ action: 'Allow', protocol: 'UDP' }] },
    },
    [`${from}/resources/k8snetworkpolicies/prod/deny`]: {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: meta('deny', { namespace: 'prod' }),
      spec: { podSelector: {}, policyTypes: ['Ingress'] },
    },
    [`${from}/resources/agentconfigurations/default`]: {
      apiVersion: 'tortie.io/v1',
      kind: 'AgentConfiguration',
      metadata: meta('default'),
      spec: {},
    },
  };
}

async function putAll(kvs: Record<string, unknown>): Promise<void> {
  for (const [k, v] of Object.entries(kvs)) await ds.etcd.put(k).value(JSON.stringify(v));
}

async function dump(prefix: string): Promise<Record<string, string>> {
  return ds.etcd.getAll().prefix(`${prefix}/`).strings();
}

beforeAll(async () => {
  cluster = await startEtcd(`mg${run}`, 1);
  ds = await Datastore.connect({ endpoints: cluster.endpoints });
});

afterAll(async () => {
  await ds?.close();
  await cluster?.stop();
});

describe('tortie datastore migrate', () => {
  it("moves every object into Calico's layout, keeping uid and creationTimestamp; twice changes nothing", async () => {
    const { from, to } = prefixes();
    await putAll(oldStore(from));
    const before = await dump(from);

    expect(await migrateStore(ds, from, to)).toEqual({ created: 5, unchanged: 0, ipamWritten: 0 });
    const after = await dump(to);
    expect(Object.keys(after).sort()).toEqual([
      `${to}/resources/v3/projectcalico.org/globalnetworkpolicies/default.allow-db`,
      `${to}/resources/v3/projectcalico.org/ippools/pool-a`,
      `${to}/resources/v3/projectcalico.org/networkpolicies/prod/default.allow-dns`,
      `${to}/resources/v3/tortie.io/agentconfigurations/default`,
      `${to}/resources/v3/tortie.io/k8snetworkpolicies/prod/deny`,
    ]);
    const gnp = JSON.parse(
      after[`${to}/resources/v3/projectcalico.org/globalnetworkpolicies/default.allow-db`]!,
    );
    expect(gnp).toEqual({
      kind: 'GlobalNetworkPolicy',
      apiVersion: 'projectcalico.org/v3',
      metadata: {
        name: 'default.allow-db',
        uid: 'uid-allow-db',
        creationTimestamp: '2026-01-02T03:04:05.000Z',
        labels: { team: 'db' },
      },
      spec: {
        selector: "role == 'database'",
        types: ['Ingress'],
        ingress: [{ action: 'Allow', protocol: 'TCP', source: {}, destination: { ports: [6379] } }],
      },
    });
    // Read through the store, the names are the ones written.
    const store = Datastore.fromClient(ds.etcd, { prefix: to });
    expect(
      (await store.list('NetworkPolicy', { namespace: 'prod' })).map((p) => p.metadata.name),
    ).toEqual(['allow-dns']);
    expect((await store.get('K8sNetworkPolicy', 'deny', 'prod'))?.metadata.uid).toBe('uid-deny');

    expect(await migrateStore(ds, from, to)).toEqual({ created: 0, unchanged: 5, ipamWritten: 0 });
    expect(await dump(to)).toEqual(after);
    // The old store stays as it was (a rollback finds it).
    expect(await dump(from)).toEqual(before);
  });

  it('says which command moves a store left in the old layout, until it has been moved', async () => {
    const { from } = prefixes();
    await putAll(oldStore(from));
    const found = await findLegacyLayout(ds.etcd, from, {});
    expect(found?.fromPrefix).toBe(from);
    expect(found?.kinds.map((k) => k.kind).sort()).toEqual([
      'AgentConfiguration',
      'GlobalNetworkPolicy',
      'IPPool',
      'K8sNetworkPolicy',
      'NetworkPolicy',
    ]);
    expect(migrateHint(found!, from)).toContain(
      `tortie datastore migrate --from-prefix ${from} --to-prefix ${from}`,
    );

    // The CLI, on an empty kind, points at the old store.
    const env = { TORTIE_ETCD_ENDPOINTS: cluster.endpoints.join(','), TORTIE_ETCD_PREFIX: from };
    const get = await runTortie(['get', 'ippools'], env);
    expect(get.code).toBe(0);
    expect(get.stderr).toContain(`tortie datastore migrate --from-prefix ${from}`);

    // The CLI migrates (into the same prefix here: the old and new layouts do not meet).
    const mig = await runTortie(['datastore', 'migrate', '--from-prefix', from], env);
    expect(mig.stderr).toBe('');
    expect(mig.stdout).toBe('resources: 5 created, 0 unchanged\nIPAM records: 0 written\n');
    expect(await findLegacyLayout(ds.etcd, from, {})).toBeUndefined();
    const listed = await runTortie(['get', 'ippools'], env);
    expect(listed.stdout).toContain('pool-a');
    expect(listed.stderr).not.toContain('migrate');
  });

  it('refuses, writing nothing, when the new layout holds a different object of the same name', async () => {
    const { from, to } = prefixes();
    await putAll(oldStore(from));
    const store = Datastore.fromClient(ds.etcd, { prefix: to });
    await store.apply({
      apiVersion: 'projectcalico.org/v3',
      kind: 'IPPool',
      metadata: { name: 'pool-a' },
      spec: { cidr: '10.99.0.0/16' },
    });
    const before = await dump(to);
    await expect(migrateStore(ds, from, to)).rejects.toThrow(
      /nothing was written.*\n.*IPPool pool-a: .*ippools\/pool-a holds another object/,
    );
    expect(await dump(to)).toEqual(before);
  });

  it("moves the old store's IPAM records into Calico's ipam/v2 records, which IPAM then reads", async () => {
    const { from, to } = prefixes();
    await putAll(oldStore(from));
    await putAll({
      [`${from}/ipam/v1/blocks/10.99.0.0-26`]: {
        cidr: '10.99.0.0/26',
        affinity: 'host:node-a',
        allocations: [
          {
            ordinal: 3,
            handle: 'h1',
            node: 'node-a',
            allocatedAt: '2026-12-01T10:00:00.000Z',
            seq: 7,
            attrs: { workload: 'web-1' },
          },
        ],
        nextOrdinal: 4,
        seq: 7,
      },
      [`${from}/ipam/v1/handles/h1`]: { handle: 'h1', blocks: { '10.99.0.0/26': [3] } },
      [`${from}/ipam/v1/affinity/node-a/10.99.0.0-26`]: {
        node: 'node-a',
        cidr: '10.99.0.0/26',
        claimedAt: '2026-12-01T09:00:00.000Z',
      },
    });

    expect(await migrateStore(ds, from, to)).toEqual({ created: 5, unchanged: 0, ipamWritten: 3 });
    const after = await dump(to);
    const block = JSON.parse(after[`${to}/ipam/v2/assignment/ipv4/block/10.99.0.0-26`]!) as {
      cidr: string;
      affinity: string;
      allocations: (number | null)[];
      attributes: { handle_id: string; secondary: Record<string, string> }[];
    };
    expect(block.cidr).toBe('10.99.0.0/26');
    expect(block.affinity).toBe('host:node-a');
    const attr = block.attributes[block.allocations[3]!]!;
    expect(attr.handle_id).toBe('h1');
    expect(attr.secondary).toMatchObject({ node: 'node-a', pod: 'web-1' });
    expect(JSON.parse(after[`${to}/ipam/v2/handle/h1`]!)).toMatchObject({
      block: { '10.99.0.0/26': 1 },
    });
    expect(after).toHaveProperty([`${to}/ipam/v2/host/node-a/ipv4/block/10.99.0.0-26`]);
    // Twice: nothing changes.
    expect(await migrateStore(ds, from, to)).toEqual({ created: 0, unchanged: 5, ipamWritten: 0 });
    expect(await dump(to)).toEqual(after);
  });

  it('refuses, writing nothing, an old IPAM record that does not convert, naming it', async () => {
    const { from, to } = prefixes();
    await putAll(oldStore(from));
    await ds.etcd.put(`${from}/ipam/v1/handles/h1`).value('{"handle":"h2","blocks":{}}');
    await expect(migrateStore(ds, from, to)).rejects.toThrow(
      new RegExp(`nothing was written[^]*${from}/ipam/v1/handles/h1 names handle h2`),
    );
    expect(await dump(to)).toEqual({});
  });

  it('refuses an old object that does not read, naming its key', async () => {
    const { from, to } = prefixes();
    await putAll({
      ...oldStore(from),
      [`${from}/resources/ippools/bad`]: {
        apiVersion: 'tortie.io/v1',
        kind: 'IPPool',
        metadata: meta('bad'),
        spec: { cidr: 'not-a-cidr' },
      },
    });
    await expect(migrateStore(ds, from, to)).rejects.toThrow(
      new RegExp(`nothing was written[^]*${from}/resources/ippools/bad: .*spec.cidr`),
    );
    expect(await dump(to)).toEqual({});
  });
});
