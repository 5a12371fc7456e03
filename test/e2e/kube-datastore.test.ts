/**
 * The Kubernetes datastore against a real kube-apiserver 1.34 and its etcd 3.6, started by
 * this file: tortie's store (apply/get/list/label/delete of Calico kinds as
 * crd.projectcalico.org objects), resourceVersion conflicts, watches (changes, an API
 * server restart, 410 Gone forced by compacting etcd behind a stopped API server), and
 * IPAM through the emulated etcd client under concurrency.
 *
 * The binaries: TORTIE_KUBE_APISERVER / TORTIE_KUBE_ETCD (default /tmp/kas/kube-apiserver,
 * /tmp/etcdb/etcd as built by scripts/build-peers.sh). A missing one fails naming it.
 * (Until src/lab/kube's launcher is on main, the start is here: CA, admin client
 * certificate, serving certificate and service-account key made with openssl.)
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  connectKubernetesDatastore,
  crdManifests,
  type KubernetesDatastore,
} from '../../src/datastore/kubernetes/index.js';
import { KubeClient } from '../../src/datastore/kubernetes/client.js';
import { isDatastoreError, type WatchEvent } from '../../src/datastore/index.js';
import { Ipam, type PoolSpec } from '../../src/ipam/index.js';
import { newRunId } from '../helpers/netns.js';
import { until } from '../helpers/wait.js';

const exec = promisify(execFile);
const APISERVER = process.env.TORTIE_KUBE_APISERVER ?? '/tmp/kas/kube-apiserver';
const ETCD = process.env.TORTIE_KUBE_ETCD ?? '/tmp/etcdb/etcd';

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

async function openssl(dir: string, args: string[]): Promise<void> {
  await exec('openssl', args, { cwd: dir });
}

interface ApiServer {
  readonly port: number;
  readonly kubeconfig: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** etcd once; API servers on it (each restartable on its own port). */
class Cluster {
  readonly dir: string;
  etcdUrl = '';
  private etcd: ChildProcess | undefined;
  private readonly servers: ApiServer[] = [];

  constructor(readonly id: string) {
    this.dir = join(tmpdir(), `tortie-kvds-${id}`);
  }

  async start(): Promise<void> {
    for (const [what, file] of [
      ['kube-apiserver (scripts/build-peers.sh, or TORTIE_KUBE_APISERVER)', APISERVER],
      ['etcd 3.6 (scripts/build-peers.sh, or TORTIE_KUBE_ETCD)', ETCD],
    ] as const)
      if (!existsSync(file)) throw new Error(`${file} is missing: build ${what}`);
    mkdirSync(this.dir, { recursive: true });
    const d = this.dir;
    await openssl(d, [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
      '-days',
      '2',
      '-subj',
      '/CN=tortie-test-ca',
    ]);
    await openssl(d, [
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'admin.key',
      '-out',
      'admin.csr',
      '-subj',
      '/O=system:masters/CN=admin',
    ]);
    await openssl(d, [
      'x509',
      '-req',
      '-in',
      'admin.csr',
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      'admin.crt',
      '-days',
      '2',
    ]);
    writeFileSync(join(d, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
    await openssl(d, [
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'server.key',
      '-out',
      'server.csr',
      '-subj',
      '/CN=kube-apiserver',
    ]);
    await openssl(d, [
      'x509',
      '-req',
      '-in',
      'server.csr',
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      'server.crt',
      '-days',
      '2',
      '-extfile',
      'san.ext',
    ]);
    await openssl(d, ['genrsa', '-out', 'sa.key', '2048']);
    await openssl(d, ['rsa', '-in', 'sa.key', '-pubout', '-out', 'sa.pub']);
    const [client, peer] = [await freePort(), await freePort()];
    this.etcdUrl = `http://127.0.0.1:${client}`;
    this.etcd = spawn(
      ETCD,
      [
        '--name',
        'kvds',
        '--data-dir',
        join(d, 'etcd'),
        '--listen-client-urls',
        this.etcdUrl,
        '--advertise-client-urls',
        this.etcdUrl,
        '--listen-peer-urls',
        `http://127.0.0.1:${peer}`,
        '--initial-advertise-peer-urls',
        `http://127.0.0.1:${peer}`,
        '--initial-cluster',
        `kvds=http://127.0.0.1:${peer}`,
        '--log-level',
        'warn',
      ],
      { stdio: 'ignore' },
    );
    const e = new Etcd3({ hosts: this.etcdUrl });
    try {
      await until('etcd answers', async () => (await e.maintenance.status(), true), 60_000, 100);
    } finally {
      e.close();
    }
  }

  /** An API server on this etcd; started. */
  async apiServer(name: string): Promise<ApiServer> {
    const port = await freePort();
    const d = this.dir;
    const kubeconfig = join(d, `${name}.kubeconfig`);
    writeFileSync(
      kubeconfig,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        `- name: c`,
        `  cluster: {server: "https://127.0.0.1:${port}", certificate-authority: ca.crt}`,
        'users:',
        `- name: admin`,
        `  user: {client-certificate: admin.crt, client-key: admin.key}`,
        'contexts:',
        `- name: admin`,
        `  context: {cluster: c, user: admin}`,
        'current-context: admin',
        '',
      ].join('\n'),
    );
    let proc: ChildProcess | undefined;
    const args = [
      `--etcd-servers=${this.etcdUrl}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${port}`,
      `--tls-cert-file=${join(d, 'server.crt')}`,
      `--tls-private-key-file=${join(d, 'server.key')}`,
      `--cert-dir=${join(d, `${name}-certs`)}`,
      `--client-ca-file=${join(d, 'ca.crt')}`,
      '--service-account-issuer=https://kubernetes.default.svc',
      `--service-account-key-file=${join(d, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(d, 'sa.key')}`,
      '--authorization-mode=RBAC',
      '--service-cluster-ip-range=10.96.0.0/24',
      '--profiling=false',
      '--v=0',
    ];
    const server: ApiServer = {
      port,
      kubeconfig,
      start: async () => {
        proc = spawn(APISERVER, args, { stdio: 'ignore' });
        const p = proc;
        const api = new KubeClient({
          server: `https://127.0.0.1:${port}`,
          ca: await readBuf(join(d, 'ca.crt')),
          cert: await readBuf(join(d, 'admin.crt')),
          key: await readBuf(join(d, 'admin.key')),
          source: 'test',
        });
        try {
          await until(
            `kube-apiserver on ${port} ready`,
            async () => {
              if (p.exitCode !== null) throw new Error(`kube-apiserver exited (${p.exitCode})`);
              await api.request('GET', '/readyz');
              return true;
            },
            120_000,
            200,
          );
        } finally {
          api.close();
        }
      },
      stop: async () => {
        const p = proc;
        proc = undefined;
        if (!p || p.exitCode !== null) return;
        const exited = new Promise((r) => p.once('exit', r));
        p.kill('SIGTERM');
        await exited;
      },
    };
    this.servers.push(server);
    await server.start();
    return server;
  }

  async stop(): Promise<void> {
    for (const s of this.servers) await s.stop();
    const e = this.etcd;
    if (e && e.exitCode === null) {
      const exited = new Promise((r) => e.once('exit', r));
      e.kill('SIGTERM');
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

async function readBuf(path: string): Promise<Buffer> {
  const { readFile } = await import('node:fs/promises');
  return readFile(path);
}

/** The CRDs of crdManifests(), created and established. */
async function installCrds(kubeconfig: string): Promise<void> {
  const api = await KubeClient.connect({ kubeconfig });
  try {
    for (const crd of crdManifests())
      await api.request('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', {
        body: crd,
      });
    for (const crd of crdManifests()) {
      const name = (crd.metadata as { name: string }).name;
      await until(`CRD ${name} established`, async () => {
        const got = await api.request<{
          status?: { conditions?: { type: string; status: string }[] };
        }>('GET', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`);
        return (
          got.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') ===
          true
        );
      });
    }
  } finally {
    api.close();
  }
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
  const cluster = new Cluster(newRunId());
  let a: ApiServer;
  let k: KubernetesDatastore;

  beforeAll(async () => {
    await cluster.start();
    a = await cluster.apiServer('a');
    await installCrds(a.kubeconfig);
    k = await connectKubernetesDatastore({ kubeconfig: a.kubeconfig });
  }, 300_000);

  afterAll(async () => {
    await k?.datastore.close();
    k?.kv.close();
    await cluster.stop();
  }, 120_000);

  it('refuses to connect when the CRDs are missing, naming them', async () => {
    // A prefix does not matter for CRDs: check against a server that has none yet is
    // simulated by asking for resources of a group nobody installed.
    const { missingResources } = await import('../../src/datastore/kubernetes/connect.js');
    const api = await KubeClient.connect({ kubeconfig: a.kubeconfig });
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
    const api = await KubeClient.connect({ kubeconfig: a.kubeconfig });
    try {
      const raw = await api.request<RawObject>(
        'GET',
        '/apis/crd.projectcalico.org/v1/ippools/kv-pool-1',
      );
      expect(raw.kind).toBe('IPPool');
      expect(raw.spec.cidr).toBe('10.70.0.0/16');
      expect(raw.metadata.labels).toEqual({ env: 'test' });
      expect(
        JSON.parse(raw.metadata.annotations['projectcalico.org/metadata'] ?? '{}'),
      ).toMatchObject({
        uid: created!.resource.metadata.uid,
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
    const admin = await KubeClient.connect({ kubeconfig: a.kubeconfig });
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
    const api2 = await KubeClient.connect({ kubeconfig: a.kubeconfig });
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

      await a.stop();
      await a.start();
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
    const b = await cluster.apiServer('b');
    const viaB = await connectKubernetesDatastore({ kubeconfig: b.kubeconfig });
    try {
      await until('the watch has the three pools', () =>
        ['kv-g-keep', 'kv-g-change', 'kv-g-gone'].every((n) => f.state.has(n)),
      );
      await a.stop();
      // While the watcher's API server is down: changes through another one, then etcd
      // compacted past everything the watcher has seen.
      await viaB.datastore.apply(pool('kv-g-new', '10.93.0.0/16'));
      await viaB.datastore.label('IPPool', 'kv-g-change', undefined, { changed: 'yes' });
      await viaB.datastore.delete({ kind: 'IPPool', name: 'kv-g-gone' });
      const e = new Etcd3({ hosts: cluster.etcdUrl });
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

  it('IPAM on the API: 3 nodes × 30 concurrent assigns, no duplicates, all released clean', async () => {
    const perNode = 30;
    const pools: PoolSpec[] = [{ name: 'kvipam', cidr: '10.64.0.0/16', blockSize: 27 }];
    const nodes = ['node-a', 'node-b', 'node-c'];
    // One client per node, as three CNI processes would have.
    const conns = await Promise.all(
      nodes.map(() => connectKubernetesDatastore({ kubeconfig: a.kubeconfig })),
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
  metadata: { labels?: Record<string, string>; annotations: Record<string, string> };
  spec: { cidr?: string; types?: string[] };
}

function sameMap(x: ReadonlyMap<string, string>, y: ReadonlyMap<string, string>): boolean {
  if (x.size !== y.size) return false;
  for (const [key, v] of x) if (y.get(key) !== v) return false;
  return true;
}
