/**
 * The Kubernetes datastore against a real kube-apiserver 1.34 and its etcd 3.6 (the lab's
 * launcher, test/helpers/kube-api.ts) with the CRDs of manifests/: tortie's store
 * (apply/get/list/label/delete of Calico kinds as crd.projectcalico.org objects),
 * resourceVersion conflicts, a multi-key write undone, watches (changes, an API server
 * restart, 410 Gone forced by compacting etcd behind a stopped API server), etcd3's watch
 * builder, and IPAM through the emulated etcd client under concurrency.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  connectKubernetesDatastore,
  type KubernetesDatastore,
} from '../../src/datastore/kubernetes/index.js';
import { KubeClient } from '../../src/datastore/kubernetes/client.js';
import { isDatastoreError, type WatchEvent } from '../../src/datastore/index.js';
import { Ipam, type PoolSpec } from '../../src/ipam/index.js';
import {
  KUBE_START_TIMEOUT_MS,
  startTestKubeApiserver,
  testKubeBinaries,
  type KubeApiserver,
} from '../helpers/kube-api.js';
import { calicoctlBinary, runCalicoctlKube } from '../helpers/peers.js';
import { until } from '../helpers/wait.js';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** An admin kubeconfig for an API server at `url` with the lab's certificates. */
function writeKubeconfig(path: string, url: string, certs: KubeApiserver['certs']): void {
  writeFileSync(
    path,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: c',
      `  cluster: {server: "${url}", certificate-authority: "${certs.ca}"}`,
      'users:',
      '- name: admin',
      `  user: {client-certificate: "${certs.adminCert}", client-key: "${certs.adminKey}"}`,
      'contexts:',
      '- name: admin',
      '  context: {cluster: c, user: admin}',
      'current-context: admin',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
}

/**
 * A second kube-apiserver on the lab's etcd (the launcher runs one): the 410 test changes
 * objects through it while the first one is down.
 */
async function secondApiServer(
  first: KubeApiserver,
): Promise<{ kubeconfig: string; stop(): Promise<void> }> {
  const port = await freePort();
  const c = first.certs;
  const kubeconfig = join(first.dir, 'second.kubeconfig');
  writeKubeconfig(kubeconfig, `https://127.0.0.1:${port}`, c);
  const proc: ChildProcess = spawn(
    (await testKubeBinaries()).apiserver,
    [
      `--etcd-servers=${first.etcdUrl}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${port}`,
      `--tls-cert-file=${c.serverCert}`,
      `--tls-private-key-file=${c.serverKey}`,
      `--cert-dir=${join(first.dir, 'second-certs')}`,
      `--client-ca-file=${c.ca}`,
      '--service-account-issuer=https://kubernetes.default.svc',
      `--service-account-key-file=${c.saPub}`,
      `--service-account-signing-key-file=${c.saKey}`,
      '--authorization-mode=RBAC',
      '--service-cluster-ip-range=10.96.0.0/24',
      '--profiling=false',
    ],
    { stdio: 'ignore' },
  );
  const api = await KubeClient.connect({ kubeconfig });
  try {
    await until(
      `the second kube-apiserver on ${port} ready`,
      async () => {
        if (proc.exitCode !== null) throw new Error(`kube-apiserver exited (${proc.exitCode})`);
        await api.request('GET', '/readyz');
        return true;
      },
      180_000,
      200,
    );
  } finally {
    api.close();
  }
  return {
    kubeconfig,
    stop: async () => {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
    },
  };
}

/** The CRDs of manifests/ (as users install them), applied and established. */
async function installCrds(api: KubeApiserver): Promise<void> {
  await api.kubectlOk([
    'apply',
    '-f',
    'manifests/00-crds-calico.yaml',
    '-f',
    'manifests/01-crds-tortie.yaml',
  ]);
  await api.kubectlOk(['wait', '--for=condition=Established', '--timeout=120s', 'crd', '--all']);
}

const pool = (name: string, cidr: string, labels?: Record<string, string>) => ({
  apiVersion: 'projectcalico.org/v3',
  kind: 'IPPool',
  metadata: { name, ...(labels ? { labels } : {}) },
  spec: { cidr, blockSize: 26, ipipMode: 'Never', vxlanMode: 'Never', natOutgoing: true },
});

/** What a watcher has delivered: name → resourceVersion, kept from its events. */
function follower() {
  const state = new Map<string, string>();
  const events: WatchEvent[] = [];
  const handler = (ev: WatchEvent) => {
    events.push(ev);
    if (ev.type === 'put')
      state.set(ev.resource.metadata.name, ev.resource.metadata.resourceVersion!);
    else if (ev.type === 'delete') state.delete(ev.name);
  };
  return { state, events, handler };
}

describe('the Kubernetes datastore on a real API server', () => {
  let a: KubeApiserver;
  let k: KubernetesDatastore;

  beforeAll(async () => {
    a = await startTestKubeApiserver();
    await installCrds(a);
    k = await connectKubernetesDatastore({ kubeconfig: a.adminKubeconfig });
  }, KUBE_START_TIMEOUT_MS);

  afterAll(async () => {
    await k?.datastore.close();
    k?.kv.close();
    await a?.stop();
  }, 120_000);

  it('refuses to connect when the CRDs are missing, naming them', async () => {
    // A prefix does not matter for CRDs: check against a server that has none yet is
    // simulated by asking for resources of a group nobody installed.
    const { missingResources } = await import('../../src/datastore/kubernetes/connect.js');
    const api = await KubeClient.connect({ kubeconfig: a.adminKubeconfig });
    try {
      const missing = await missingResources(api, [
        ...k.kv.mappings,
        {
          ...k.kv.mappings[0]!,
          resource: {
            group: 'nothing.example.org',
            version: 'v1',
            plural: 'things',
            kind: 'Thing',
            namespaced: false,
          },
        },
      ]);
      expect(missing).toEqual(['things.nothing.example.org']);
    } finally {
      api.close();
    }
  });

  it('apply, get, list, label and delete Calico kinds as crd.projectcalico.org objects', async () => {
    const ds = k.datastore;
    const [created] = await ds.apply(pool('kv-pool-1', '10.70.0.0/16', { env: 'test' }));
    expect(created!.action).toBe('created');
    const rv = created!.resource.metadata.resourceVersion!;
    expect(rv).toMatch(/^\d+$/);

    const got = await ds.get('IPPool', 'kv-pool-1');
    expect(got?.spec.cidr).toBe('10.70.0.0/16');
    expect(got?.metadata.labels).toEqual({ env: 'test' });
    expect(got?.metadata.resourceVersion).toBe(rv);
    expect(got?.metadata.uid).toBe(created!.resource.metadata.uid);

    // The object as kubectl sees it: Calico's CRD shape.
    const api = await KubeClient.connect({ kubeconfig: a.adminKubeconfig });
    try {
      const raw = await api.request<RawObject>(
        'GET',
        '/apis/crd.projectcalico.org/v1/ippools/kv-pool-1',
      );
      expect(raw.kind).toBe('IPPool');
      expect(raw.spec.cidr).toBe('10.70.0.0/16');
      // Labels in Calico's metadata annotation, as libcalico-go's KDD keeps them.
      expect(raw.metadata.labels).toBeUndefined();
      expect(
        JSON.parse(raw.metadata.annotations['projectcalico.org/metadata'] ?? '{}'),
      ).toMatchObject({
        uid: created!.resource.metadata.uid,
        labels: { env: 'test' },
      });
    } finally {
      api.close();
    }

    const [same] = await ds.apply(pool('kv-pool-1', '10.70.0.0/16', { env: 'test' }));
    expect(same!.action).toBe('unchanged');

    // A policy: stored as Calico's KDD stores it (default.<name>), read back as written;
    // in a namespace that must exist, as on any Kubernetes cluster.
    const policy = {
      apiVersion: 'projectcalico.org/v3',
      kind: 'NetworkPolicy',
      metadata: { name: 'allow-dns', namespace: 'prod' },
      spec: { selector: 'all()' },
    };
    await expect(ds.apply(policy)).rejects.toThrow(/namespaces "prod" not found/);
    const admin = await KubeClient.connect({ kubeconfig: a.adminKubeconfig });
    try {
      await admin.request('POST', '/api/v1/namespaces', {
        body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'prod' } },
      });
    } finally {
      admin.close();
    }
    await ds.apply({
      apiVersion: 'projectcalico.org/v3',
      kind: 'NetworkPolicy',
      metadata: { name: 'allow-dns', namespace: 'prod' },
      spec: {
        selector: 'app == "web"',
        egress: [{ action: 'Allow', protocol: 'UDP', destination: { ports: [53] } }],
      },
    });
    expect(
      (await ds.list('NetworkPolicy', { namespace: 'prod' })).map((p) => p.metadata.name),
    ).toEqual(['allow-dns']);
    const api2 = await KubeClient.connect({ kubeconfig: a.adminKubeconfig });
    try {
      const raw = await api2.request<RawObject>(
        'GET',
        '/apis/crd.projectcalico.org/v1/namespaces/prod/networkpolicies/default.allow-dns',
      );
      expect(raw.spec.types).toEqual(['Egress']);
    } finally {
      api2.close();
    }

    const labelled = await ds.label('IPPool', 'kv-pool-1', undefined, { tier: 'gold' });
    expect(labelled.changed).toBe(true);
    expect((await ds.get('IPPool', 'kv-pool-1'))?.metadata.labels).toEqual({
      env: 'test',
      tier: 'gold',
    });
    await expect(ds.label('IPPool', 'kv-pool-1', undefined, { tier: 'silver' })).rejects.toThrow(
      /overwrite/,
    );

    const listed = await ds.listWithRevision('IPPool');
    expect(listed.items.map((p) => p.metadata.name)).toContain('kv-pool-1');
    expect(BigInt(listed.revision)).toBeGreaterThanOrEqual(
      BigInt(labelled.resource.metadata.resourceVersion!),
    );

    const [deleted] = await ds.delete({ kind: 'IPPool', name: 'kv-pool-1' });
    expect(deleted!.action).toBe('deleted');
    expect(await ds.get('IPPool', 'kv-pool-1')).toBeUndefined();
    await ds.delete({ kind: 'NetworkPolicy', name: 'allow-dns', namespace: 'prod' });
  });

  it('a replace carrying a stale resourceVersion is refused as a conflict', async () => {
    const ds = k.datastore;
    const [first] = await ds.apply(pool('kv-pool-2', '10.71.0.0/16'));
    const stale = first!.resource.metadata.resourceVersion!;
    await ds.apply(pool('kv-pool-2', '10.71.0.0/16', { v: '2' }));
    const err = await ds
      .replace({
        ...pool('kv-pool-2', '10.71.0.0/16', { v: '3' }),
        metadata: { name: 'kv-pool-2', resourceVersion: stale },
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(isDatastoreError(err) && err.kind).toBe('conflict');
    await expect(ds.create(pool('kv-pool-2', '10.71.0.0/16'))).rejects.toThrow(/exists/);
    await ds.delete({ kind: 'IPPool', name: 'kv-pool-2' });
  });

  it('a multi-object apply that loses on a later object leaves the earlier ones as they were', async () => {
    const ds = k.datastore;
    const kv = k.kv;
    // Two pools in one etcd-style transaction, the second guarded by a revision that no
    // longer holds: the first must be undone.
    await ds.apply(pool('kv-pool-3', '10.72.0.0/16'));
    const before = await ds.get('IPPool', 'kv-pool-3');
    const key3 = ds.keyOf('IPPool', 'kv-pool-3');
    const key4 = ds.keyOf('IPPool', 'kv-pool-4');
    const res = await kv.kv.txn({
      compare: [
        {
          key: Buffer.from(key3),
          target: 'Mod',
          result: 'Equal',
          mod_revision: before!.metadata.resourceVersion!,
        },
        { key: Buffer.from(key4), target: 'Mod', result: 'Equal', mod_revision: '12345' },
      ],
      success: [
        {
          request_put: {
            key: Buffer.from(key3),
            value: Buffer.from(
              JSON.stringify({
                ...before,
                metadata: { ...before!.metadata, labels: { changed: 'yes' } },
              }),
            ),
          },
        },
        { request_put: { key: Buffer.from(key4), value: Buffer.from('{}') } },
      ],
      failure: [],
    });
    expect(res.succeeded).toBe(false);
    const after = await ds.get('IPPool', 'kv-pool-3');
    expect(after?.metadata.labels).toBeUndefined();
    expect(await ds.get('IPPool', 'kv-pool-4')).toBeUndefined();
    await ds.delete({ kind: 'IPPool', name: 'kv-pool-3' });
  });

  it('a watch delivers creates, updates and deletes in order, and survives an API server restart', async () => {
    const ds = k.datastore;
    const f = follower();
    const w = await ds.watch('IPPool', f.handler);
    try {
      await ds.apply(pool('kv-w-1', '10.80.0.0/16'));
      await ds.label('IPPool', 'kv-w-1', undefined, { a: 'b' });
      await ds.apply(pool('kv-w-2', '10.81.0.0/16'));
      await ds.delete({ kind: 'IPPool', name: 'kv-w-2' });
      await until('the watch saw kv-w-2 deleted', () =>
        f.events.some((e) => e.type === 'delete' && e.name === 'kv-w-2'),
      );
      const live = f.events.filter((e) => !('synthetic' in e) || !e.synthetic);
      expect(
        live.map((e) =>
          e.type === 'synced'
            ? 'synced'
            : `${e.type} ${e.type === 'put' ? e.resource.metadata.name : e.name}`,
        ),
      ).toEqual(['synced', 'put kv-w-1', 'put kv-w-1', 'put kv-w-2', 'delete kv-w-2']);

      await a.restart();
      // Written after the restart: the watch must deliver it (resumed, or relisted on 410).
      await ds.apply(pool('kv-w-3', '10.82.0.0/16'));
      await ds.label('IPPool', 'kv-w-1', undefined, { a: 'c' }, { overwrite: true });
      const expected = new Map(
        (await ds.list('IPPool')).map((p) => [p.metadata.name, p.metadata.resourceVersion!]),
      );
      await until('the watch state matches the list after the restart', () =>
        sameMap(f.state, expected),
      );
      expect(f.state.has('kv-w-3')).toBe(true);
    } finally {
      await w.cancel();
    }
    await ds.delete([
      { kind: 'IPPool', name: 'kv-w-1' },
      { kind: 'IPPool', name: 'kv-w-3' },
    ]);
  }, 300_000);

  it('410 Gone (etcd compacted behind a stopped API server) makes the watcher relist, dropping nothing', async () => {
    const ds = k.datastore;
    await ds.apply([
      pool('kv-g-keep', '10.90.0.0/16'),
      pool('kv-g-change', '10.91.0.0/16'),
      pool('kv-g-gone', '10.92.0.0/16'),
    ]);
    const f = follower();
    const w = await ds.watch('IPPool', f.handler);
    const b = await secondApiServer(a);
    const viaB = await connectKubernetesDatastore({ kubeconfig: b.kubeconfig });
    try {
      await until('the watch has the three pools', () =>
        ['kv-g-keep', 'kv-g-change', 'kv-g-gone'].every((n) => f.state.has(n)),
      );
      await a.kill();
      // While the watcher's API server is down: changes through another one, then etcd
      // compacted past everything the watcher has seen.
      await viaB.datastore.apply(pool('kv-g-new', '10.93.0.0/16'));
      await viaB.datastore.label('IPPool', 'kv-g-change', undefined, { changed: 'yes' });
      await viaB.datastore.delete({ kind: 'IPPool', name: 'kv-g-gone' });
      const e = new Etcd3({ hosts: a.etcdUrl });
      try {
        const put = await e.put('/tortie-test/bump').value('x').exec();
        await e.kv.compact({ revision: put.header.revision, physical: true });
      } finally {
        e.close();
      }
      const resyncsBefore = w.resyncs;
      await a.start();
      const expected = new Map(
        (await viaB.datastore.list('IPPool')).map((p) => [
          p.metadata.name,
          p.metadata.resourceVersion!,
        ]),
      );
      await until(
        'the watch state matches the list after the 410',
        () => sameMap(f.state, expected),
        120_000,
      );
      expect(w.resyncs).toBeGreaterThan(resyncsBefore);
      expect(f.events.some((ev) => ev.type === 'synced' && ev.cause !== 'initial')).toBe(true);
      expect(f.events.some((ev) => ev.type === 'delete' && ev.name === 'kv-g-gone')).toBe(true);
      expect(f.state.has('kv-g-new')).toBe(true);
    } finally {
      await w.cancel();
      await viaB.datastore.close();
      viaB.kv.close();
      await b.stop();
    }
    await ds.delete(
      ['kv-g-keep', 'kv-g-change', 'kv-g-new'].map((name) => ({ kind: 'IPPool', name })),
    );
  }, 300_000);

  it('calicoctl on the Kubernetes datastore and tortie read and change each other’s objects', async () => {
    const bin = await calicoctlBinary();
    const cc = async (args: string[]) => {
      const r = await runCalicoctlKube(bin, a.adminKubeconfig, args);
      if (r.code !== 0) throw new Error(`calicoctl ${args.join(' ')}: ${r.stderr || r.stdout}`);
      return r.stdout;
    };
    const file = join(a.dir, 'calicoctl-objects.yaml');
    writeFileSync(
      file,
      [
        'apiVersion: projectcalico.org/v3',
        'kind: GlobalNetworkSet',
        'metadata: { name: cc-deny, labels: { deny: "yes" }, annotations: { owner: ops } }',
        'spec: { nets: [192.0.2.0/24] }',
        '---',
        'apiVersion: projectcalico.org/v3',
        'kind: GlobalNetworkPolicy',
        'metadata: { name: cc-deny-listed }',
        'spec:',
        '  order: 10',
        '  selector: all()',
        '  types: [Ingress]',
        '  ingress: [{ action: Deny, source: { selector: deny == "yes" } }]',
        '',
      ].join('\n'),
    );
    await cc(['apply', '-f', file]);

    // calicoctl's writes through tortie: labels and annotations (kept in the metadata
    // annotation), the policy by its name, the uid calicoctl shows.
    const ds = k.datastore;
    const set = await ds.get('GlobalNetworkSet', 'cc-deny');
    expect(set?.metadata.labels).toEqual({ deny: 'yes' });
    expect(set?.metadata.annotations).toEqual({ owner: 'ops' });
    const ccSet = await cc(['get', 'globalnetworkset', 'cc-deny', '-o', 'json']);
    expect(set?.metadata.uid).toBe((JSON.parse(ccSet) as RawObject).metadata.uid);
    const gnp = await ds.get('GlobalNetworkPolicy', 'cc-deny-listed');
    expect(gnp?.spec).toMatchObject({ order: 10, selector: 'all()' });

    // tortie's writes through calicoctl: a label tortie adds, a pool tortie makes.
    await ds.apply({
      ...set!,
      metadata: { ...set!.metadata, labels: { deny: 'yes', tier: 'edge' } },
    });
    const ccLabels = (
      JSON.parse(await cc(['get', 'globalnetworkset', 'cc-deny', '-o', 'json'])) as RawObject
    ).metadata.labels;
    expect(ccLabels).toEqual({ deny: 'yes', tier: 'edge' });
    await ds.apply(pool('cc-pool', '10.71.0.0/16', { zone: 'a' }));
    const ccPool = JSON.parse(await cc(['get', 'ippool', 'cc-pool', '-o', 'json'])) as RawObject;
    expect(ccPool.spec.cidr).toBe('10.71.0.0/16');
    expect(ccPool.metadata.labels).toEqual({ zone: 'a' });

    // calicoctl label / delete, seen by tortie.
    await cc(['label', 'globalnetworkset', 'cc-deny', 'tier', '--remove']);
    expect((await ds.get('GlobalNetworkSet', 'cc-deny'))?.metadata.labels).toEqual({ deny: 'yes' });
    await cc(['delete', 'globalnetworkpolicy', 'cc-deny-listed']);
    expect(await ds.get('GlobalNetworkPolicy', 'cc-deny-listed')).toBeUndefined();
    await ds.delete(
      [
        pool('cc-pool', '10.71.0.0/16'),
        {
          apiVersion: 'projectcalico.org/v3',
          kind: 'GlobalNetworkSet',
          metadata: { name: 'cc-deny' },
        },
      ],
      { ignoreNotFound: true },
    );
  }, 120_000);

  it("with the node's ServiceAccount (manifests/' ClusterRole): IPAM and status work, a pool write is refused naming the role", async () => {
    await a.kubectlOk(['apply', '-f', 'manifests/10-rbac.yaml']);
    const kubeconfig = await a.serviceAccountKubeconfig('kube-system', 'tortie-node');
    const node = await connectKubernetesDatastore({ kubeconfig });
    try {
      const ipam = new Ipam(node.kv, node.datastore.prefix);
      const pools: PoolSpec[] = [{ name: 'kvsa', cidr: '10.67.0.0/16', blockSize: 28 }];
      const got = await ipam.autoAssign({ handle: 'k8s-pod-network.sa', node: 'node-sa', pools });
      expect(await ipam.addressesOf('k8s-pod-network.sa')).toEqual([got.ip]);
      expect(await ipam.releaseByHandle('k8s-pod-network.sa')).toEqual([got.ip]);
      expect(await ipam.releaseBlockAffinity('node-sa')).toEqual([got.block]);
      // A status record, written and read back as the agent and the CNI plugin do.
      const key = `${node.datastore.prefix}/tortie/status/nodes/node-sa`;
      await node.kv.kv.txn({
        success: [
          { request_put: { key: Buffer.from(key), value: Buffer.from('{"node":"node-sa"}') } },
        ],
      });
      const read = await node.kv.kv.range({ key: Buffer.from(key) });
      expect(read.kvs[0]?.value.toString()).toBe('{"node":"node-sa"}');
      await node.kv.kv.txn({ success: [{ request_delete_range: { key: Buffer.from(key) } }] });

      const refused = await node.datastore.apply(pool('kv-sa-pool', '10.68.0.0/16')).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isDatastoreError(refused) && refused.message).toMatch(
        /refused this client.*ClusterRole/,
      );
    } finally {
      await node.datastore.close();
      node.kv.close();
    }
  });

  it("etcd3's watch builder (the agent's prefix followers) sees IPAM blocks change", async () => {
    const prefix = `${k.datastore.prefix}/ipam/v2/assignment/ipv4/block/`;
    const listed = await k.kv.kv.range({
      key: Buffer.from(prefix),
      range_end: Buffer.from(`${prefix.slice(0, -1)}0`),
      keys_only: true,
    });
    const w = await k.kv
      .watch()
      .prefix(prefix)
      .startRevision((BigInt(listed.header.revision) + 1n).toString())
      .create();
    const puts: string[] = [];
    const deletes: string[] = [];
    w.on('put', (kv: { key: Buffer }) => puts.push(kv.key.toString()));
    w.on('delete', (kv: { key: Buffer }) => deletes.push(kv.key.toString()));
    try {
      const ipam = new Ipam(k.kv, k.datastore.prefix);
      const pools: PoolSpec[] = [{ name: 'kvw', cidr: '10.66.0.0/16', blockSize: 28 }];
      const got = await ipam.autoAssign({
        handle: 'k8s-pod-network.watched',
        node: 'node-w',
        pools,
      });
      await until('the follower saw the block written', () =>
        puts.includes(`${prefix}${got.block.replace('/', '-')}`),
      );
      await ipam.releaseByHandle('k8s-pod-network.watched');
      await ipam.releaseBlockAffinity('node-w');
      await until('the follower saw the block deleted', () =>
        deletes.includes(`${prefix}${got.block.replace('/', '-')}`),
      );
    } finally {
      await w.cancel();
    }
  });

  it('IPAM on the API: 3 nodes × 30 concurrent assigns, no duplicates, all released clean', async () => {
    const perNode = 30;
    const pools: PoolSpec[] = [{ name: 'kvipam', cidr: '10.64.0.0/16', blockSize: 27 }];
    const nodes = ['node-a', 'node-b', 'node-c'];
    // One client per node, as three CNI processes would have.
    const conns = await Promise.all(
      nodes.map(() => connectKubernetesDatastore({ kubeconfig: a.adminKubeconfig })),
    );
    try {
      const ipams = conns.map((c) => new Ipam(c.kv, c.datastore.prefix));
      const handles = nodes.flatMap((node) =>
        Array.from({ length: perNode }, (_, i) => ({
          node,
          handle: `k8s-pod-network.${node}-${i}`,
        })),
      );
      const results = await Promise.all(
        handles.map(({ node, handle }) =>
          ipams[nodes.indexOf(node)]!.autoAssign({ handle, node, pools }).then((r) => ({
            node,
            handle,
            ...r,
          })),
        ),
      );
      expect(new Set(results.map((r) => r.ip)).size).toBe(3 * perNode);
      const blocks = await ipams[0]!.blocks();
      const affinityOf = new Map(blocks.map((bl) => [bl.cidr, bl.affinity]));
      for (const r of results) expect(affinityOf.get(r.block)).toBe(r.node);
      expect(blocks.reduce((n, bl) => n + bl.allocated, 0)).toBe(3 * perNode);
      const report = await ipams[1]!.check({
        handles: new Set(handles.map((h) => h.handle)),
        nodes: new Set(nodes),
        graceMs: 0,
      });
      expect(report).toMatchObject({ ok: true, leaks: [], duplicates: [], inconsistencies: [] });

      const released = await Promise.all(
        handles.map(({ node, handle }) => ipams[nodes.indexOf(node)]!.releaseByHandle(handle)),
      );
      expect(released.flat().sort()).toEqual(results.map((r) => r.ip).sort());
      const after = await ipams[2]!.check({
        handles: new Set(),
        nodes: new Set(nodes),
        graceMs: 0,
      });
      expect(after).toMatchObject({ ok: true, leaks: [] });
      expect(after.counts).toMatchObject({ allocations: 0, handles: 0 });
    } finally {
      for (const c of conns) {
        await c.datastore.close();
        c.kv.close();
      }
    }
  }, 300_000);
});

interface RawObject {
  kind: string;
  metadata: { uid?: string; labels?: Record<string, string>; annotations: Record<string, string> };
  spec: { cidr?: string; types?: string[] };
}

function sameMap(x: ReadonlyMap<string, string>, y: ReadonlyMap<string, string>): boolean {
  if (x.size !== y.size) return false;
  for (const [key, v] of x) if (y.get(key) !== v) return false;
  return true;
}
