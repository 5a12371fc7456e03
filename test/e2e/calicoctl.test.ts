/**
 * calicoctl as a real client: the calicoctl of a pinned Calico release (built from Calico's Go
 * module by scripts/build-peers.sh, cached outside the repo; see docs/peers.md) against a real
 * etcd started by the lab's startEtcd. It applies Calico documents, reads them back, and what
 * it wrote to etcd is recorded in test/fixtures/calico-etcd/layout.json: Calico's own etcd
 * layout (keys and stored JSON), the reference for storing Calico kinds the way Calico does.
 * The volatile fields (uid, creationTimestamp, resourceVersion, clusterGUID) are masked.
 *
 * Needs etcd (etcd-server) and, for a cold cache, Go (scripts/build-peers.sh names what to
 * install): a missing one fails the test, never skips it.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Etcd3 } from 'etcd3';
import { format, resolveConfig } from 'prettier';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Datastore, ensureClusterInformation } from '../../src/datastore/index.js';
import { startEtcd, type EtcdCluster } from '../../src/lab/etcd.js';
import { newRunId } from '../helpers/netns.js';
import {
  calicoctlBinary,
  CALICOCTL_RELEASE,
  PEER_BUILD_TIMEOUT_MS,
  runCalicoctl,
  type CalicoctlRun,
} from '../helpers/peers.js';
import { requireCommand } from '../helpers/tools.js';

const run = newRunId();
let calicoctl = '';
let cluster: EtcdCluster | undefined;
let etcd: Etcd3 | undefined;
let dir = '';

// Calico documents as a Calico user writes them (the shapes of Calico's documentation:
// a GlobalNetworkPolicy, a namespaced NetworkPolicy, an IPPool, a Node).
const DOCUMENTS = `apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: allow-tcp-6379
spec:
  selector: role == 'database'
  types:
  - Ingress
  ingress:
  - action: Allow
    protocol: TCP
    source:
      selector: role == 'frontend'
    destination:
      ports:
      - 6379
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  name: allow-dns
  namespace: prod
spec:
  selector: all()
  types:
  - Egress
  egress:
  - action: Allow
    protocol: UDP
    destination:
      ports:
      - 53
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: pool-a
spec:
  cidr: 10.244.0.0/16
  ipipMode: Always
  natOutgoing: true
---
apiVersion: projectcalico.org/v3
kind: Node
metadata:
  name: node-a
spec:
  bgp:
    ipv4Address: 192.0.2.10/24
`;

function calico(args: string[]): Promise<CalicoctlRun> {
  return runCalicoctl(calicoctl, cluster!, args);
}

async function calicoctlOk(args: string[]): Promise<string> {
  const r = await calico(args);
  expect(r.code, `calicoctl ${args.join(' ')}: ${r.stderr}${r.stdout}`).toBe(0);
  return r.stdout;
}

/** Fields that differ on every run (clusterGUID: ClusterInformation's random id). */
const VOLATILE = ['uid', 'creationTimestamp', 'resourceVersion', 'clusterGUID'];

/** The stored object with the fields that differ on every run masked. */
function masked(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(masked);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    out[k] = VOLATILE.includes(k) ? `<${k}>` : masked(v);
  }
  return out;
}

beforeAll(async () => {
  requireCommand('etcd');
  calicoctl = await calicoctlBinary();
  dir = await mkdtemp(join(tmpdir(), `tortie-calicoctl-${run}-`));
  cluster = await startEtcd(`cc${run}`, 1);
  etcd = new Etcd3({ hosts: cluster.endpoints });
}, PEER_BUILD_TIMEOUT_MS);

afterAll(async () => {
  etcd?.close();
  await cluster?.stop();
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

describe('calicoctl against a real etcd', () => {
  it('refuses `version` on an empty store: no ClusterInformation default yet', async () => {
    const r = await calico(['version']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(new RegExp(`^Client Version: +${CALICOCTL_RELEASE}$`, 'm'));
    expect(r.stderr).toContain('resource does not exist: ClusterInformation(default)');
  });

  it('applies Calico documents and reads them back as written', async () => {
    const file = join(dir, 'documents.yaml');
    await writeFile(file, DOCUMENTS);
    expect(await calicoctlOk(['apply', '-f', file])).toContain(
      'Successfully applied 4 resource(s)',
    );

    const gnp = await calicoctlOk(['get', 'globalnetworkpolicy', 'allow-tcp-6379', '-o', 'yaml']);
    expect(gnp).toContain('apiVersion: projectcalico.org/v3');
    expect(gnp).toContain("selector: role == 'database'");
    const pool = await calicoctlOk(['get', 'ippool', 'pool-a', '-o', 'yaml']);
    // calicoctl stores its defaults in every pool it writes.
    for (const line of ['blockSize: 26', 'nodeSelector: all()', 'vxlanMode: Never', '- Workload'])
      expect(pool).toContain(line);
    const np = await calicoctlOk(['get', 'networkpolicy', '-n', 'prod', 'allow-dns', '-o', 'yaml']);
    expect(np).toContain('namespace: prod');
  });

  // The first write through calicoctl's client created ClusterInformation default.
  it('reports its pinned client version once the store is initialised', async () => {
    const out = await calicoctlOk(['version']);
    expect(out).toMatch(new RegExp(`^Client Version: +${CALICOCTL_RELEASE}$`, 'm'));
  });

  it('lists the node it was given', async () => {
    const out = await calicoctlOk(['get', 'nodes']);
    expect(
      out
        .trim()
        .split('\n')
        .map((l) => l.trim()),
    ).toEqual(['NAME', 'node-a']);
  });

  it("writes Calico's etcd layout: one JSON object a key under /calico/resources/v3", async () => {
    const all = await etcd!.getAll().prefix('/calico/').strings();
    const layout = Object.fromEntries(
      Object.keys(all)
        .sort()
        .map((key) => [key, masked(JSON.parse(all[key]!))]),
    );
    expect(
      Object.keys(layout).every((k) => k.startsWith('/calico/resources/v3/projectcalico.org/')),
    ).toBe(true);
    // Formatted as the repository's prettier formats it, so the file passes `npm run lint`.
    const fixture = fileURLToPath(new URL('../fixtures/calico-etcd/layout.json', import.meta.url));
    const text = await format(JSON.stringify(layout), {
      ...(await resolveConfig(fixture)),
      filepath: fixture,
    });
    await expect(text).toMatchFileSnapshot(fixture);
  });

  it('tortie stores the same documents under the same keys, as the same JSON', async () => {
    // tortie's own store under another prefix of the same etcd: apply the documents, then
    // initialise the store as an agent does (ClusterInformation default).
    const prefix = `/tortie-${run}`;
    const ds = Datastore.fromClient(etcd!, { prefix });
    await ds.apply(parseAllDocuments(DOCUMENTS).map((d) => d.toJS() as unknown));
    expect(await ensureClusterInformation(ds)).toBe(true);
    // Once: the next agent finds it and leaves it as it is.
    expect(await ensureClusterInformation(ds)).toBe(false);
    const all = await etcd!.getAll().prefix(`${prefix}/`).strings();
    const tortie = Object.fromEntries(
      Object.keys(all)
        .sort()
        .map((key) => [`/calico${key.slice(prefix.length)}`, masked(JSON.parse(all[key]!))]),
    );
    const fixture = JSON.parse(
      await readFile(
        fileURLToPath(new URL('../fixtures/calico-etcd/layout.json', import.meta.url)),
        'utf8',
      ),
    ) as Record<string, unknown>;
    expect(Object.keys(tortie)).toEqual(Object.keys(fixture));
    // Where tortie's stored JSON is not calicoctl's, and why; nothing else may differ.
    expect(differences(tortie, fixture)).toEqual(KNOWN_DIFFERENCES);
  });
});

/**
 * Fields tortie stores that calicoctl v3.28.5 does not, each for a reason: Calico's reader
 * ignores fields it does not know, so calicoctl reads tortie's objects the same way.
 */
const KNOWN_DIFFERENCES = [
  // tortie's agent names the cluster type it runs ("Cluster Type" in calicoctl version).
  '/calico/resources/v3/projectcalico.org/clusterinformations/default spec.clusterType: tortie has "tortie", calicoctl has nothing',
  // Calico 3.29 and later store the pool's assignmentMode; 3.28.5 predates the field.
  '/calico/resources/v3/projectcalico.org/ippools/pool-a spec.assignmentMode: tortie has "Automatic", calicoctl has nothing',
  // Calico's Go struct omits these when false (omitempty); tortie stores its defaults.
  '/calico/resources/v3/projectcalico.org/ippools/pool-a spec.disableBGPExport: tortie has false, calicoctl has nothing',
  '/calico/resources/v3/projectcalico.org/ippools/pool-a spec.disabled: tortie has false, calicoctl has nothing',
];

/** Every leaf where two stored layouts differ, as one line each (key, path, both values). */
function differences(ours: Record<string, unknown>, theirs: Record<string, unknown>): string[] {
  const out: string[] = [];
  const walk = (key: string, path: string, a: unknown, b: unknown): void => {
    const isObj = (v: unknown): v is Record<string, unknown> =>
      typeof v === 'object' && v !== null && !Array.isArray(v);
    if (isObj(a) && isObj(b)) {
      for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort())
        walk(key, path === '' ? k : `${path}.${k}`, a[k], b[k]);
      return;
    }
    if (Array.isArray(a) && Array.isArray(b) && a.length === b.length) {
      a.forEach((v, i) => walk(key, `${path}[${i}]`, v, b[i]));
      return;
    }
    if (JSON.stringify(a) === JSON.stringify(b)) return;
    const shown = (v: unknown) => (v === undefined ? 'nothing' : JSON.stringify(v));
    out.push(`${key} ${path}: tortie has ${shown(a)}, calicoctl has ${shown(b)}`);
  };
  for (const key of Object.keys(theirs)) walk(key, '', ours[key], theirs[key]);
  return out;
}
