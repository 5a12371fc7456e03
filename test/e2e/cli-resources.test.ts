/**
 * The resource commands end to end against a real etcd: a program built here the way
 * src/cli/program.ts builds it (global options + resource commands, exit codes 0/1/2),
 * output captured. One test runs a real process to show an unreachable etcd ends it
 * with exit 1 and a clear message within seconds.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Command, CommanderError } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { addGlobalOptions } from '../../src/cli/context.js';
import { registerResourceCommands } from '../../src/cli/resources.js';
import { startEtcd, type EtcdCluster } from '../../src/lab/etcd.js';
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

/** Runs `tortie ARGS` in-process, with program.ts.s exit-code rules. */
async function tortie(args: string[], stdin = ''): Promise<Outcome> {
  let out = '';
  let err = '';
  const program = new Command()
    .name('tortie')
    .exitOverride()
    .configureOutput({ writeOut: (s) => (out += s), writeErr: (s) => (err += s) });
  addGlobalOptions(program);
  registerResourceCommands(program, {
    out: (s) => (out += s),
    err: (s) => (err += s),
    readStdin: async () => stdin,
  });
  let code = 0;
  try {
    await program.parseAsync(args, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) code = e.exitCode === 0 ? 0 : 2;
    else {
      err += `tortie: ${(e as Error).message}\n`;
      code = 1;
    }
  }
  return { code, out, err };
}

/** A fresh prefix per test, so tests never see each other's objects. */
function store(): (args: string[], stdin?: string) => Promise<Outcome> {
  const global = [
    '--etcd-endpoints',
    cluster.endpoints[0]!,
    '--etcd-prefix',
    `/tortie-cli-${run}-${n++}`,
    '--config',
    join(dir, 'none.yaml'),
  ];
  return (args, stdin) => tortie([...global, ...args], stdin);
}

const MANIFEST = `# three kinds, two namespaces
apiVersion: tortie.io/v1
kind: IPPool
metadata:
  name: default-pool
spec:
  cidr: 10.65.0.0/16
  ipipMode: Always
---
apiVersion: tortie.io/v1
kind: NetworkPolicy
metadata:
  name: web
  namespace: prod
spec:
  selector: app == 'web'
  ingress:
    - action: Allow
      protocol: TCP
      destination:
        ports: [80]
---
apiVersion: tortie.io/v1
kind: NetworkPolicy
metadata:
  name: db
  namespace: dev
spec:
  selector: app == 'db'
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: deny-all
  namespace: prod
spec:
  podSelector: {}
`;

async function file(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), `tortie-cli-${run}-`));
  await writeFile(join(dir, 'none.yaml'), '{}\n');
  cluster = await startEtcd(`cli${run}`, 1);
});

afterAll(async () => {
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('apply, get, delete', () => {
  it('round-trips a YAML file of several documents', async () => {
    const t = store();
    const path = await file('manifest.yaml', MANIFEST);
    const applied = await t(['apply', '-f', path]);
    expect(applied).toMatchObject({ code: 0, err: '' });
    expect(applied.out).toBe(
      [
        'IPPool default-pool created',
        'NetworkPolicy prod/web created',
        'NetworkPolicy dev/db created',
        'NetworkPolicy.networking.k8s.io prod/deny-all created',
        '',
      ].join('\n'),
    );
    expect((await t(['apply', '-f', path])).out).toContain('IPPool default-pool unchanged');

    expect((await t(['get', 'ippools'])).out).toBe(
      'NAME           CIDR           SELECTOR\ndefault-pool   10.65.0.0/16   all()\n',
    );
    expect((await t(['get', 'ippool', '-o', 'wide'])).out).toContain(
      'default-pool   10.65.0.0/16   26          false   Always     Never       false      all()',
    );
    expect((await t(['get', 'networkpolicies', '-A'])).out).toBe(
      'NAMESPACE   NAME\ndev         db\nprod        web\n',
    );
    expect((await t(['get', 'policy', '-n', 'prod'])).out).toBe('NAME\nweb\n');
    expect((await t(['get', 'knp', '-n', 'prod'])).out).toMatch(
      /^NAME {7}POD-SELECTOR {3}AGE\ndeny-all {3}<none> {9}\d+s\n$/,
    );

    const deleted = await t(['delete', '-f', path]);
    expect(deleted.code).toBe(0);
    expect(deleted.out.split('\n').filter(Boolean)).toHaveLength(4);
    const empty = await t(['get', 'ippools']);
    expect(empty).toEqual({ code: 0, out: '', err: 'No ippools found.\n' });
  });

  it('prints one object as YAML and a list as a <Kind>List in JSON, both fit to apply again', async () => {
    const t = store();
    await t(['apply', '-f', await file('m2.yaml', MANIFEST)]);
    const yamlOut = await t(['get', 'pool', 'default-pool', '-o', 'yaml']);
    const one = parseYaml(yamlOut.out);
    // Applied as tortie.io/v1, printed as Calico's own apiVersion.
    expect(one).toMatchObject({
      apiVersion: 'projectcalico.org/v3',
      kind: 'IPPool',
      metadata: {
        name: 'default-pool',
        uid: expect.any(String),
        resourceVersion: expect.any(String),
      },
      spec: { cidr: '10.65.0.0/16', blockSize: 26, ipipMode: 'Always' },
    });
    const list = JSON.parse((await t(['get', 'policies', '-A', '-o', 'json'])).out);
    expect(list).toMatchObject({
      apiVersion: 'projectcalico.org/v3',
      kind: 'NetworkPolicyList',
      metadata: { resourceVersion: expect.any(String) },
    });
    expect(list.items.map((i: { metadata: { name: string } }) => i.metadata.name)).toEqual([
      'db',
      'web',
    ]);
    // The list applies as it is (List documents are expanded), unchanged.
    const again = await t(['apply', '-f', '-'], JSON.stringify(list));
    expect(again.out).toBe('NetworkPolicy dev/db unchanged\nNetworkPolicy prod/web unchanged\n');
  });

  it('replace -f - with an object read earlier fails once someone else changed it', async () => {
    const t = store();
    await t(['apply', '-f', await file('m3.yaml', MANIFEST)]);
    const read = (await t(['get', 'ippool', 'default-pool', '-o', 'yaml'])).out;
    const edited = read.replace('natOutgoing: false', 'natOutgoing: true');
    expect((await t(['replace', '-f', '-'], edited)).out).toBe('IPPool default-pool replaced\n');
    const stale = await t(
      ['replace', '-f', '-'],
      read.replace('disabled: false', 'disabled: true'),
    );
    expect(stale.code).toBe(1);
    expect(stale.err).toMatch(
      /replace refused, nothing was written:\n {2}stdin: IPPool default-pool: metadata\.resourceVersion: is \d+ but the stored object is at \d+/,
    );
    expect((await t(['get', 'pool', 'default-pool', '-o', 'json'])).out).toContain(
      '"natOutgoing": true',
    );
  });

  it('a bad document refuses the whole file, naming file, document and field', async () => {
    const t = store();
    const bad = MANIFEST.replace(
      'cidr: 10.65.0.0/16',
      'cidr: 10.65.0.0/16\n  blockSize: 33',
    ).replace("app == 'db'", 'app ==');
    const r = await t(['apply', '-f', await file('bad.yaml', bad)]);
    expect(r.code).toBe(1);
    expect(r.err).toContain('tortie: apply refused, nothing was written:\n');
    expect(r.err).toContain(
      'bad.yaml document 1: IPPool default-pool: spec.blockSize: 33 is out of range 20-32',
    );
    expect(r.err).toContain('bad.yaml document 3: NetworkPolicy dev/db: spec.selector: ');
    expect(r.err).not.toContain('    at '); // no stack trace
    expect((await t(['get', 'policies', '-A'])).err).toBe('No networkpolicies found.\n');
  });

  it('create refuses existing objects; delete KIND NAME removes them; label edits labels', async () => {
    const t = store();
    const path = await file('m4.yaml', MANIFEST);
    await t(['create', '-f', path]);
    const again = await t(['create', '-f', path]);
    expect(again.code).toBe(1);
    expect(again.err).toContain('m4.yaml document 1: IPPool default-pool: already exists');
    expect((await t(['label', 'ippool', 'default-pool', 'zone=a', 'tier=gold'])).out).toBe(
      'IPPool default-pool labeled\n',
    );
    expect((await t(['label', 'ippool', 'default-pool', 'zone=b'])).code).toBe(1);
    expect(
      (await t(['label', 'ippool', 'default-pool', 'zone=b', 'tier-', '--overwrite'])).code,
    ).toBe(0);
    expect(
      parseYaml((await t(['get', 'pools', 'default-pool', '-o', 'yaml'])).out).metadata.labels,
    ).toEqual({ zone: 'b' });
    expect((await t(['delete', 'policy', 'web', 'nope', '-n', 'prod'])).code).toBe(1);
    expect((await t(['delete', 'policy', 'web', '-n', 'prod'])).out).toBe(
      'NetworkPolicy prod/web deleted\n',
    );
    expect((await t(['get', 'policy', 'web', '-n', 'prod'])).err).toContain(
      'NetworkPolicy prod/web not found',
    );
  });

  it('reads the endpoints from TORTIE_ETCD_ENDPOINTS when no flag is given', async () => {
    const saved = process.env.TORTIE_ETCD_ENDPOINTS;
    process.env.TORTIE_ETCD_ENDPOINTS = cluster.endpoints[0]!;
    try {
      const r = await tortie([
        '--etcd-prefix',
        `/tortie-cli-${run}-env`,
        '--config',
        join(dir, 'none.yaml'),
        'get',
        'tiers',
      ]);
      expect(r).toEqual({ code: 0, out: '', err: 'No tiers found.\n' });
    } finally {
      if (saved === undefined) delete process.env.TORTIE_ETCD_ENDPOINTS;
      else process.env.TORTIE_ETCD_ENDPOINTS = saved;
    }
  });
});

describe('bad usage exits 2 with a message', () => {
  const cases: [string, string[]][] = [
    ['an unknown kind', ['get', 'pods']],
    ['an unknown output format', ['get', 'ippools', '-o', 'xml']],
    ['no kind', ['get']],
    ['apply without -f', ['apply']],
    ['-n together with -A', ['get', 'policies', '-n', 'prod', '-A']],
    ['delete with -f and a kind', ['delete', '-f', 'x.yaml', 'ippool', 'a']],
    ['delete without names', ['delete', 'ippool']],
    ['a label change without = or -', ['label', 'node', 'n1', 'zone']],
    ['a file that does not exist', ['apply', '-f', '/nonexistent/tortie.yaml']],
    ['an unknown option', ['get', 'ippools', '--colour']],
    ['a malformed endpoint', ['--etcd-endpoints', 'ftp://x', 'get', 'ippools']],
    ['a missing --config file', ['--config', '/nonexistent/tortie.yaml', 'get', 'ippools']],
  ];
  it.each(cases)('%s', async (_name, args) => {
    const r = await tortie(args);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/error: /);
    expect(r.out).toBe('');
  });

  it('the message says what is wrong', async () => {
    expect((await tortie(['get', 'pods'])).err).toContain(
      'unknown resource kind "pods" (known: ippools, networkpolicies',
    );
    expect((await tortie(['label', 'node', 'n1', 'zone'])).err).toContain(
      '"zone" is not a label change: use key=value to set, key- to remove',
    );
  });
});

describe('an unreachable etcd', () => {
  it('fails the command with exit 1 and a clear message naming the refusal, as a real process', async () => {
    const script = join(dir, 'tortie-cli.ts');
    const src = resolve('src/cli');
    await writeFile(
      script,
      `import { Command, CommanderError } from 'commander';
import { addGlobalOptions } from ${JSON.stringify(join(src, 'context.js'))};
import { registerResourceCommands } from ${JSON.stringify(join(src, 'resources.js'))};
const program = new Command().name('tortie').exitOverride();
addGlobalOptions(program);
registerResourceCommands(program);
try {
  await program.parseAsync(process.argv.slice(2), { from: 'user' });
} catch (e) {
  if (e instanceof CommanderError) process.exit(e.exitCode === 0 ? 0 : 2);
  console.error('tortie: ' + e.message);
  process.exit(1);
}
`,
    );
    const r = await new Promise<Outcome>((done) => {
      const child = spawn(
        resolve('node_modules/.bin/vite-node'),
        [script, '--etcd-endpoints', 'http://127.0.0.1:1', 'get', 'ippools'],
        {
          cwd: resolve('.'),
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (err += d));
      child.on('close', (code) => done({ code: code ?? -1, out, err }));
    });
    expect(r.code).toBe(1);
    expect(r.err).toContain(
      'tortie: etcd at http://127.0.0.1:1 is unavailable (cannot connect: ECONNREFUSED 127.0.0.1:1)',
    );
    // The refusal ended the command (named above), not a deadline it waited out.
    expect(r.err).not.toContain('DEADLINE_EXCEEDED');
    expect(r.err).not.toContain('    at ');
  });
});

describe('manifests', () => {
  it('JSON arrays and YAML documents with comments and empty documents parse alike', async () => {
    const docs = parseAllDocuments(MANIFEST).map((d) => d.toJS());
    const t = store();
    const fromJson = await t(['apply', '-f', '-'], JSON.stringify(docs));
    expect(fromJson.code).toBe(0);
    expect(fromJson.out.split('\n').filter(Boolean)).toHaveLength(4);
    const withEmpty = await t(['apply', '-f', '-'], `---\n${MANIFEST}---\n`);
    expect(withEmpty.out).toContain('IPPool default-pool unchanged');
  });

  it('a syntax error names the document and line', async () => {
    const t = store();
    const r = await t(['apply', '-f', '-'], `${MANIFEST}---\nkind: [unclosed\n`);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/stdin document 5: not valid YAML or JSON at line \d+, column \d+/);
  });
});

/** A calicoctl export (`calicoctl get ippool,gnp -o yaml` shape): ObjectMeta and defaults included. */
const CALICO_EXPORT = `apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  creationTimestamp: "2024-03-01T10:00:00Z"
  name: default-ipv4-ippool
  resourceVersion: "1234"
  uid: 0b5a8f1e-1111-4e2b-9c1d-2f9e3a7d0c01
spec:
  allowedUses:
  - Workload
  - Tunnel
  assignmentMode: Automatic
  blockSize: 26
  cidr: 10.66.0.0/16
  disableBGPExport: false
  ipipMode: Always
  natOutgoing: true
  nodeSelector: all()
  vxlanMode: Never
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  creationTimestamp: "2024-03-01T10:00:00Z"
  name: allow-tcp-6379
  resourceVersion: "1240"
  uid: 0b5a8f1e-2222-4e2b-9c1d-2f9e3a7d0c01
spec:
  selector: role == 'database'
  types:
  - Ingress
  ingress:
  - action: Allow
    metadata:
      annotations:
        from: frontend
    protocol: TCP
    source:
      selector: role == 'frontend'
    destination:
      ports:
      - 6379
---
apiVersion: crd.projectcalico.org/v1
kind: GlobalNetworkSet
metadata:
  name: office
  labels:
    role: office
spec:
  nets:
  - 198.51.100.0/28
`;

describe('Calico documents', () => {
  it('a calicoctl export applies to an empty store as written (its resourceVersion notwithstanding) and prints as projectcalico.org/v3', async () => {
    const t = store();
    const applied = await t(['apply', '-f', '-'], CALICO_EXPORT);
    expect(applied).toEqual({
      code: 0,
      out: 'IPPool default-ipv4-ippool created\nGlobalNetworkPolicy allow-tcp-6379 created\nGlobalNetworkSet office created\n',
      err: '',
    });
    const pool = parseYaml((await t(['get', 'ippool', 'default-ipv4-ippool', '-o', 'yaml'])).out);
    expect(pool).toMatchObject({
      apiVersion: 'projectcalico.org/v3',
      kind: 'IPPool',
      spec: { cidr: '10.66.0.0/16', allowedUses: ['Workload', 'Tunnel'], natOutgoing: true },
    });
    // The store gave it its own identity and version, not the export's.
    expect(pool.metadata.uid).not.toBe('0b5a8f1e-1111-4e2b-9c1d-2f9e3a7d0c01');
    const sets = parseYaml((await t(['get', 'gns', '-o', 'yaml'])).out);
    expect(sets).toMatchObject({
      apiVersion: 'projectcalico.org/v3',
      kind: 'GlobalNetworkSetList',
    });

    // What get printed goes back in unchanged.
    const exported = (await t(['get', 'gnp', 'allow-tcp-6379', '-o', 'yaml'])).out;
    expect((await t(['apply', '-f', '-'], exported)).out).toBe(
      'GlobalNetworkPolicy allow-tcp-6379 unchanged\n',
    );
    // Into an empty store again: created, not refused for its resourceVersion.
    expect((await t(['delete', 'gnp', 'allow-tcp-6379'])).code).toBe(0);
    expect((await t(['apply', '-f', '-'], exported)).out).toBe(
      'GlobalNetworkPolicy allow-tcp-6379 created\n',
    );
  });

  it('a refused object lists every problem, each with the nearest field name, and nothing is written', async () => {
    const t = store();
    const r = await t(
      ['apply', '-f', '-'],
      CALICO_EXPORT.replace('natOutgoing: true', 'natOutgong: true').replace(
        'blockSize: 26',
        'blockSize: 33',
      ),
    );
    expect(r.code).toBe(1);
    expect(r.err).toContain(
      'IPPool default-ipv4-ippool: spec.natOutgong: unknown field (did you mean natOutgoing?)',
    );
    expect(r.err).toContain('IPPool default-ipv4-ippool: spec.blockSize: 33 is out of range 20-32');
    expect((await t(['get', 'gnp'])).err).toBe('No globalnetworkpolicies found.\n');
  });
});
