/**
 * calicoctl's everyday verbs end to end: the built CLI (`node dist/bin/tortie.js`, so
 * `npm run build` first) against a real etcd, a fresh key prefix per test. Exit codes as
 * program.ts says: 0 done, 1 refused or failed, 2 a usage mistake (message on stderr).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { Datastore } from '../../src/datastore/index.js';
import { Ipam } from '../../src/ipam/index.js';
import { startEtcd, type EtcdCluster } from '../../src/lab/etcd.js';
import { TORTIE_CLI as CLI } from '../helpers/cli.js';
import { newRunId } from '../helpers/netns.js';

const run = newRunId();
let cluster: EtcdCluster;
let dir: string;
let n = 0;

interface Outcome {
  code: number;
  out: string;
  err: string;
}

/** `tortie ARGS` as its own process (runTortie's, with stdin), without TORTIE_* from the environment. */
function cli(args: string[], stdin?: string): Promise<Outcome> {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('TORTIE_')),
  );
  return new Promise((done) => {
    const child = execFile(
      process.execPath,
      [CLI, ...args],
      { cwd: resolve('.'), env, timeout: 60_000 },
      (error, out, err) =>
        done({
          code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1,
          out,
          err,
        }),
    );
    child.stdin?.end(stdin ?? '');
  });
}

/** The CLI on a fresh prefix of the run's etcd (or on `prefix`). */
function store(
  prefix = `/tortie-verbs-${run}-${n++}`,
): (args: string[], stdin?: string) => Promise<Outcome> {
  const global = [
    '--etcd-endpoints',
    cluster.endpoints[0]!,
    '--etcd-prefix',
    prefix,
    '--config',
    join(dir, 'none.yaml'),
  ];
  return (args, stdin) => cli([...global, ...args], stdin);
}

const pool = (name: string, cidr: string, extra = '') => `apiVersion: tortie.io/v1
kind: IPPool
metadata:
  name: ${name}
spec:
  cidr: ${cidr}
${extra}`;

const netset = (name: string, labels: string) => `apiVersion: tortie.io/v1
kind: GlobalNetworkSet
metadata:
  name: ${name}
  labels: {${labels}}
spec:
  nets: [192.0.2.0/24]
`;

async function file(path: string, text: string): Promise<string> {
  const full = join(dir, path);
  await mkdir(join(full, '..'), { recursive: true });
  await writeFile(full, text);
  return full;
}

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
  dir = await mkdtemp(join(tmpdir(), `tortie-verbs-${run}-`));
  await writeFile(join(dir, 'none.yaml'), '{}\n');
  cluster = await startEtcd(`verbs${run}`, 1);
});

afterAll(async () => {
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('get -l, label --remove', () => {
  it('lists only the objects whose labels match a Calico selector', async () => {
    const t = store();
    const manifest = [
      netset('a', 'env: prod, tier: web'),
      netset('b', 'env: prod'),
      netset('c', 'env: dev'),
    ].join('---\n');
    expect((await t(['apply', '-f', '-'], manifest)).code).toBe(0);
    const prod = await t([
      'get',
      'globalnetworksets',
      '-l',
      "env == 'prod'",
      '-o',
      'jsonpath={.items[*].metadata.name}',
    ]);
    expect(prod).toEqual({ code: 0, out: 'a b', err: '' });
    const webOrDev = await t(['get', 'globalnetworksets', '-l', "has(tier) || env in {'dev'}"]);
    expect(webOrDev.out.split('\n').filter(Boolean)).toEqual(['NAME', 'a', 'c']);
    const none = await t(['get', 'globalnetworksets', '-l', "env == 'qa'"]);
    expect(none).toMatchObject({ code: 0, out: '' });
    expect(none.err).toContain("No globalnetworksets found matching env == 'qa'.");
  });

  it('refuses a bad selector, and a selector with names, as usage mistakes', async () => {
    const t = store();
    const bad = await t(['get', 'globalnetworksets', '-l', 'env ==']);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/error: -l: selector "env ==": .* at position \d+/);
    const both = await t(['get', 'globalnetworksets', 'a', '-l', 'has(env)']);
    expect(both.code).toBe(2);
    expect(both.err).toContain('-l selects among all objects; it takes no names');
  });

  it('removes labels by key with --remove', async () => {
    const t = store();
    await t(['apply', '-f', '-'], netset('a', 'env: prod, tier: web'));
    const removed = await t(['label', 'globalnetworkset', 'a', 'tier', '--remove']);
    expect(removed).toMatchObject({ code: 0, out: 'GlobalNetworkSet a labeled\n' });
    const got = await t(['get', 'globalnetworkset', 'a', '-o', 'jsonpath={.metadata.labels}']);
    expect(got.out).toBe('{"env":"prod"}');
    const wrong = await t(['label', 'globalnetworkset', 'a', 'env=x', '--remove']);
    expect(wrong.code).toBe(2);
  });
});

describe('-f DIR, --dry-run, validate', () => {
  it('applies every manifest under a directory, in path order, all or nothing', async () => {
    const t = store();
    const tree = join(dir, `tree-${n}`);
    await file(`tree-${n}/pools/b.yaml`, pool('b', '10.20.0.0/16'));
    await file(`tree-${n}/pools/a.yml`, pool('a', '10.10.0.0/16'));
    await file(`tree-${n}/sets.json`, JSON.stringify(parseYaml(netset('s', 'x: y'))));
    await file(`tree-${n}/notes.txt`, 'not a manifest');
    const applied = await t(['apply', '-f', tree]);
    expect(applied).toEqual({
      code: 0,
      out: 'IPPool a created\nIPPool b created\nGlobalNetworkSet s created\n',
      err: '',
    });
    // One bad object anywhere: nothing of the directory is written.
    const bad = join(dir, `bad-${n}`);
    await file(`bad-${n}/1.yaml`, pool('c', '10.30.0.0/16'));
    await file(`bad-${n}/2/x.yaml`, pool('d', '10.40.0.0/16', '  blockSize: 40\n'));
    const refused = await t(['apply', '-f', bad]);
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(
      /apply refused, nothing was written:\n.*x\.yaml: IPPool d: spec\.blockSize/,
    );
    const names = await t(['get', 'ippools', '-o', 'jsonpath={.items[*].metadata.name}']);
    expect(names.out).toBe('a b');
  });

  it('says what apply would do and writes nothing', async () => {
    const t = store();
    await t(['apply', '-f', '-'], pool('a', '10.10.0.0/16'));
    await t(['apply', '-f', '-'], pool('b', '10.20.0.0/16'));
    const manifest = [
      pool('a', '10.10.0.0/16'),
      pool('b', '10.20.0.0/16', '  natOutgoing: true\n'),
      pool('c', '10.30.0.0/16'),
    ].join('---\n');
    const before = await t(['get', 'ippools', '-o', 'json']);
    const dry = await t(['apply', '--dry-run', '-f', '-'], manifest);
    expect(dry).toEqual({
      code: 0,
      out: 'IPPool a unchanged (dry run)\nIPPool b configured (dry run)\nIPPool c created (dry run)\n',
      err: '',
    });
    expect(await t(['get', 'ippools', '-o', 'json'])).toEqual(before);
    // Refused for what the real call would refuse: an overlapping pool, a create of an existing one.
    const overlap = await t(['apply', '--dry-run', '-f', '-'], pool('x', '10.10.1.0/24'));
    expect(overlap.code).toBe(1);
    expect(overlap.err).toContain('IPPool x: spec.cidr');
    const create = await t(['create', '--dry-run', '-f', '-'], pool('a', '10.10.0.0/16'));
    expect(create.code).toBe(1);
    expect(create.err).toContain('IPPool a: already exists');
  });

  it('validates files without a store', async () => {
    const good = await file(
      `v-${n}/ok.yaml`,
      [pool('a', '10.10.0.0/16'), netset('s', 'x: y')].join('---\n'),
    );
    const ok = await cli(['--etcd-endpoints', 'http://127.0.0.1:1', 'validate', '-f', good]);
    expect(ok).toEqual({ code: 0, out: 'IPPool a valid\nGlobalNetworkSet s valid\n', err: '' });
    const bad = await file(`v-${n}/bad.yaml`, pool('a', '10.10.0.0/40'));
    const refused = await cli(['validate', '-f', bad]);
    expect(refused.code).toBe(1);
    expect(refused.err).toContain('IPPool a: spec.cidr');
    expect((await cli(['validate'])).code).toBe(2);
  });
});

describe('what apply warns about', () => {
  it('a field spelt in another case is stored under its name; a doNotTrack policy is stored, not enforced', async () => {
    const t = store();
    const docs = [
      'apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata:\n  name: admin\nspec:\n  Order: 100\n',
      'apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata:\n  name: untracked\nspec:\n  doNotTrack: true\n  applyOnForward: true\n  ingress:\n  - action: Deny\n',
    ].join('---\n');
    const applied = await t(['apply', '-f', '-'], docs);
    expect(applied.code).toBe(0);
    expect(applied.out).toBe('Tier admin created\nGlobalNetworkPolicy untracked created\n');
    expect(applied.err).toContain('Warning: Tier admin: spec.Order: read as order');
    expect(applied.err).toContain(
      'Warning: GlobalNetworkPolicy untracked: spec.doNotTrack: stored; doNotTrack policies are not enforced yet',
    );
    const tier = JSON.parse((await t(['get', 'tier', 'admin', '-o', 'json'])).out);
    expect(tier.spec).toEqual({ order: 100 });
    const gnp = JSON.parse((await t(['get', 'gnp', 'untracked', '-o', 'json'])).out);
    expect(gnp.spec).toMatchObject({ doNotTrack: true, applyOnForward: true });
    const again = await t(['apply', '-f', '-'], docs);
    expect(again.out).toBe('Tier admin unchanged\nGlobalNetworkPolicy untracked unchanged\n');
    const checked = await cli(['validate', '-f', '-'], docs);
    expect(checked.code).toBe(0);
    expect(checked.err).toContain('spec.Order: read as order');
  });
});

describe('patch', () => {
  it('merges a JSON merge patch into the stored object', async () => {
    const t = store();
    await t(['apply', '-f', '-'], pool('a', '10.10.0.0/16', '  natOutgoing: true\n'));
    const patched = await t([
      'patch',
      'ippool',
      'a',
      '-p',
      '{"spec":{"disabled":true,"natOutgoing":null}}',
    ]);
    expect(patched).toEqual({ code: 0, out: 'IPPool a patched\n', err: '' });
    const spec = JSON.parse((await t(['get', 'ippool', 'a', '-o', 'json'])).out).spec;
    expect(spec).toMatchObject({ cidr: '10.10.0.0/16', disabled: true });
    expect(spec.natOutgoing ?? false).toBe(false);
    const again = await t(['patch', 'ippool', 'a', '-p', '{"spec":{"disabled":true}}']);
    expect(again.out).toBe('IPPool a patched (no change)\n');
    const labels = await t([
      'patch',
      'ippool',
      'a',
      '-p',
      '{"metadata":{"labels":{"team":"net"}}}',
    ]);
    expect(labels.code).toBe(0);
    const got = await t([
      'get',
      'ippools',
      '-l',
      "team == 'net'",
      '-o',
      'custom-columns=NAME:.metadata.name,DISABLED:.spec.disabled',
    ]);
    expect(got.out).toBe('NAME   DISABLED\na      true\n');
  });

  it('refuses an invalid result, a missing object and a bad patch', async () => {
    const t = store();
    await t(['apply', '-f', '-'], pool('a', '10.10.0.0/16'));
    const invalid = await t(['patch', 'ippool', 'a', '-p', '{"spec":{"blockSize":40}}']);
    expect(invalid.code).toBe(1);
    expect(invalid.err).toMatch(
      /patch refused, nothing was written:\n {2}IPPool a: spec\.blockSize/,
    );
    const missing = await t(['patch', 'ippool', 'nope', '-p', '{"spec":{}}']);
    expect(missing.code).toBe(1);
    expect(missing.err).toContain('IPPool nope not found');
    for (const p of ['{', '[]', '{"metadata":{"name":"b"}}']) {
      const bad = await t(['patch', 'ippool', 'a', '-p', p]);
      expect(bad.code, p).toBe(2);
      expect(bad.err, p).toMatch(/^error: -p: /m);
    }
    const stale = await t(['patch', 'ippool', 'a', '-p', '{"metadata":{"resourceVersion":"1"}}']);
    expect(stale.code).toBe(1);
    expect(stale.err).toContain('metadata.resourceVersion');
  });
});

describe('version, --allow-version-mismatch, -o', () => {
  it("prints the client's version and the cluster's", async () => {
    const t = store();
    const r = await t(['version']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^Client Version: +v\d+\.\d+\.\d+\n/);
    expect(r.out).toMatch(/\netcd Version: +3\.\d+\.\d+\n/);
    expect(r.out).toMatch(/\nAgents: +none heartbeating\n/);
    const client = await cli(['--etcd-endpoints', 'http://127.0.0.1:1', 'version', '--client']);
    expect(client.code).toBe(0);
    expect(client.out.split('\n').filter(Boolean)).toHaveLength(1);
  });

  it('accepts --allow-version-mismatch before and after the verb', async () => {
    const t = store();
    expect(
      (await t(['--allow-version-mismatch', 'apply', '-f', '-'], pool('a', '10.10.0.0/16'))).code,
    ).toBe(0);
    const got = await t([
      'get',
      'ippools',
      '--allow-version-mismatch',
      '-o',
      'jsonpath={range .items[*]}{.metadata.name}={.spec.cidr}{"\\n"}{end}',
    ]);
    expect(got).toEqual({ code: 0, out: 'a=10.10.0.0/16\n', err: '' });
  });

  it('refuses an unknown format or a bad template as usage mistakes', async () => {
    const t = store();
    for (const o of ['xml', 'jsonpath={.items', 'custom-columns=NAME']) {
      const r = await t(['get', 'ippools', '-o', o]);
      expect(r.code, o).toBe(2);
      expect(r.err, o).toMatch(/error: option '-o, --output <format>' argument .* is invalid/);
    }
  });
});

describe('datastore export / import', () => {
  it('moves every resource and the IPAM records to another prefix; a second import changes nothing', async () => {
    const from = `/tortie-verbs-${run}-${n++}`;
    const t = store(from);
    const manifest = [
      pool('p', '10.65.0.0/16'),
      netset('s', 'env: prod'),
      `apiVersion: tortie.io/v1
kind: NetworkPolicy
metadata:
  name: web
  namespace: prod
spec:
  selector: app == 'web'
`,
    ].join('---\n');
    expect((await t(['apply', '-f', '-'], manifest)).code).toBe(0);
    const ds = await Datastore.connect({ endpoints: [cluster.endpoints[0]!], prefix: from });
    try {
      const ipam = new Ipam(ds.etcd, ds.prefix);
      await ipam.autoAssign({
        handle: 'pod-a',
        node: 'node-1',
        pools: [{ name: 'p', cidr: '10.65.0.0/16', blockSize: 26 }],
      });
    } finally {
      await ds.close();
    }

    const exported = await t(['datastore', 'export']);
    expect(exported.code).toBe(0);
    const docs = exported.out.split(/^---$/m).map((d) => parseYaml(d));
    const names = docs.map((d) => `${d.kind} ${d.metadata.name}`);
    expect([...names].sort()).toEqual([
      'GlobalNetworkSet s',
      'IPAMRecords ipam',
      'IPPool p',
      'NetworkPolicy web',
    ]);
    expect(names.at(-1)).toBe('IPAMRecords ipam');
    expect(
      docs.every((d) => d.metadata.resourceVersion === undefined && d.metadata.uid === undefined),
    ).toBe(true);
    const ipamDoc = docs.find((d) => d.kind === 'IPAMRecords');
    // Calico's IPAM records (<prefix>/ipam/v2/…), keys relative to it.
    expect(ipamDoc.records.map((r: { key: string }) => r.key.split('/')[0]).sort()).toEqual([
      'assignment',
      'handle',
      'host',
    ]);

    const to = store();
    const imported = await to(['datastore', 'import', '-f', '-'], exported.out);
    expect(imported).toEqual({
      code: 0,
      out: 'resources: 3 created, 0 configured, 0 unchanged\nIPAM records: 3 written, 0 unchanged\n',
      err: '',
    });
    const again = await to(['datastore', 'import', '-f', '-'], exported.out);
    expect(again.out).toBe(
      'resources: 0 created, 0 configured, 3 unchanged\nIPAM records: 0 written, 3 unchanged\n',
    );
    // The copy exports as the original did (IPAM records included).
    const copy = await to(['datastore', 'export', '-o', 'json']);
    const original = await t(['datastore', 'export', '-o', 'json']);
    const strip = (text: string) =>
      JSON.parse(text).map((d: { metadata: Record<string, unknown> }) => ({
        ...d,
        metadata: { ...d.metadata, creationTimestamp: undefined },
      }));
    expect(strip(copy.out)).toEqual(strip(original.out));
  });

  it('refuses IPAM records that differ from the store, writing nothing', async () => {
    const t = store();
    const ipamDoc = (value: unknown) => `apiVersion: tortie.io/v1
kind: IPAMRecords
metadata: {name: ipam}
records:
  - key: handle/h1
    value: ${JSON.stringify(value)}
`;
    const held = (n: number) => ({ block: { '10.70.0.0/26': n }, deleted: false });
    expect((await t(['datastore', 'import', '-f', '-'], ipamDoc(held(1)))).code).toBe(0);
    const r = await t(
      ['datastore', 'import', '-f', '-'],
      [pool('x', '10.70.0.0/16'), ipamDoc(held(2))].join('---\n'),
    );
    expect(r.code).toBe(1);
    expect(r.err).toContain('import refused, nothing was written');
    expect(r.err).toContain('handle/h1: the store holds another value');
    // A record that is not one IPAM could read is refused, naming it.
    const malformed = await t(['datastore', 'import', '-f', '-'], ipamDoc({ ips: ['10.0.0.2'] }));
    expect(malformed.code).toBe(1);
    expect(malformed.err).toContain('records[0] (handle/h1)');
    expect((await t(['get', 'ippools', '-o', 'json'])).out).toContain('"items": []');
    const bad = await t(
      ['datastore', 'import', '-f', '-'],
      ipamDoc({}).replace('handle/h1', '../x'),
    );
    expect(bad.code).toBe(1);
    expect(bad.err).toContain('records[0]: give key');
  });
});
