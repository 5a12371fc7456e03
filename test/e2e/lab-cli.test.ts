/**
 * The persistent lab through the built CLI, every step a separate `tortie` process:
 * `lab up` (2 nodes, 3 etcd members) returns and the lab keeps running, its settings in
 * the state file (a reopened lab reads them there, not from the machine); `lab pod add`
 * puts three pods on the two nodes; `lab probe --json` sees the full mesh; a
 * NetworkPolicy applied with `tortie apply -f` (TORTIE_CONFIG = the lab's config)
 * changes exactly the expected pairs; `lab exec` runs in a pod's namespace with its exit
 * code; `lab status --json` reports the nodes ready; one etcd member killed (pid from the
 * state file) changes nothing the pods see, and `tortie get` still works; `lab down`
 * leaves nothing. A second lab loses its state file (a crash) and `lab down` still
 * removes all of it.
 *
 * Needs root and `npm run build` first. Lab ids start with "la".
 */
import { execFile } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterLab, destroyClusterLab } from '../../src/lab/cluster/cluster-lab.js';
import type { LabState } from '../../src/lab/cluster/state.js';
import { newLabId, newRunId } from '../helpers/netns.js';
import { eventually } from '../helpers/wait.js';

const ROOT = join(import.meta.dirname, '..', '..');
const MAIN = join(ROOT, 'dist', 'bin', 'tortie.js');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** One `tortie` process; never rejects (the exit code is part of the result). */
function tortie(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 90_000,
): Promise<Run> {
  const base = { ...process.env };
  // The test's own shell settings must not reach the CLI; each call says what it needs.
  for (const k of Object.keys(base)) if (k.startsWith('TORTIE_')) delete base[k];
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [MAIN, ...args],
      { cwd: ROOT, env: { ...base, ...env }, timeout: timeoutMs, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        const code =
          err === null ? 0 : typeof err.code === 'number' ? err.code : err.killed ? -9 : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

function ok(r: Run, what: string): Run {
  if (r.code !== 0) throw new Error(`${what}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}

function readLabState(id: string): LabState {
  return JSON.parse(readFileSync(`/run/tortie/labs/${id}/state.json`, 'utf8')) as LabState;
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Every pid the state names: agents, etcd members, pod processes. */
function labPids(s: LabState): number[] {
  return [
    ...s.nodes.map((n) => n.agentPid),
    ...s.etcd.members.map((m) => m.pid),
    ...s.pods.map((p) => p.pid),
  ].filter((p): p is number => p !== undefined);
}

/** What of the lab is still on the machine. */
function leftovers(id: string, pids: number[]): string[] {
  const prefix = `tortie-${id}-`;
  const out = [
    ...readdirSync('/run/netns').filter((n) => n.startsWith(prefix)),
    ...readdirSync('/sys/fs/bpf')
      .filter((n) => n.startsWith(prefix))
      .map((n) => `/sys/fs/bpf/${n}`),
    ...(existsSync(`/run/tortie/labs/${id}`) ? [`/run/tortie/labs/${id}`] : []),
    ...readdirSync(tmpdir()).filter((n) => n.includes(`-${id}-`)),
    ...pids.filter(alive).map((p) => `pid ${p}`),
  ];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').join(' ');
      if (cmd.includes(prefix) && !cmd.includes('vitest')) out.push(`pid ${d}: ${cmd}`);
    } catch {
      // gone
    }
  }
  return out;
}

type Matrix = Record<string, boolean>;

/** Per probe: long enough for a loaded machine (an answer ends a probe at once). */
const PROBE_TIMEOUT = ['--timeout-ms', '5000'];

async function probe(id: string): Promise<{ pods: { key: string; ip: string }[]; matrix: Matrix }> {
  const r = ok(await tortie(['lab', 'probe', '--id', id, '--json', ...PROBE_TIMEOUT]), 'lab probe');
  const doc = JSON.parse(r.stdout) as {
    lab: string;
    port: number;
    protocol: string;
    pods: { key: string; ip: string }[];
    matrix: Matrix;
  };
  expect(doc).toMatchObject({ lab: id, port: 80, protocol: 'tcp' });
  return doc;
}

/**
 * Polls `lab probe --json` until the matrix equals `want` (or the time is up, a bound only
 * for giving up); returns the last.
 */
async function probeUntil(id: string, want: Matrix, timeoutMs = 90_000): Promise<Matrix> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { matrix } = await probe(id);
    const same =
      Object.keys(matrix).length === Object.keys(want).length &&
      Object.entries(want).every(([k, v]) => matrix[k] === v);
    if (same || Date.now() > deadline) return matrix;
    await new Promise((r) => setTimeout(r, 250));
  }
}

const PODS = [
  { key: 'x/a', node: '0', labels: 'app=a' },
  { key: 'x/b', node: '1', labels: 'app=b' },
  { key: 'y/c', node: 'n1', labels: 'app=c' },
];
const PAIRS = PODS.flatMap((a) => PODS.filter((b) => b !== a).map((b) => `${a.key} -> ${b.key}`));
const ALL: Matrix = Object.fromEntries(PAIRS.map((p) => [p, true]));
// Ingress isolation of x/b (app=b): only the pairs into x/b change.
const ISOLATED: Matrix = Object.fromEntries(PAIRS.map((p) => [p, !p.endsWith('-> x/b')]));

const ids: string[] = [];
const work = mkdtempSync(join(tmpdir(), `tortie-labcli-${newRunId()}-`));

beforeAll(() => {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run "npm run build" first`);
});

afterAll(async () => {
  rmSync(work, { recursive: true, force: true });
  const errors: string[] = [];
  for (const id of ids) {
    await destroyClusterLab(id).catch((e: Error) => errors.push(e.message));
    const left = leftovers(id, []);
    if (left.length > 0) errors.push(`${id} left behind: ${left.join(', ')}`);
  }
  if (errors.length > 0) throw new Error(errors.join('\n'));
}, 60_000);

describe('tortie lab: a persistent 2-node lab driven by separate commands', () => {
  const id = newLabId('la');
  ids.push(id);
  const config = `/run/tortie/labs/${id}/tortie.yaml`;
  let before: LabState | undefined;

  it('lab up builds it and returns; the lab keeps running', async () => {
    const r = ok(
      await tortie(['lab', 'up', '--nodes', '2', '--etcd-members', '3', '--id', id]),
      'lab up',
    );
    expect(r.stdout).toContain(`lab ${id} is up`);
    expect(r.stdout).toContain(`export TORTIE_CONFIG=${config}`);
    const s = readLabState(id);
    expect(s.nodes.map((n) => n.name)).toEqual([`${id}-n0`, `${id}-n1`]);
    expect(s.etcd.members).toHaveLength(3);
    // The command is gone; what it started is not.
    expect(labPids(s).filter((p) => !alive(p))).toEqual([]);
    // Each lab runs its own etcd, so it keeps Calico's prefix (calicoctl looks there).
    expect(readFileSync(config, 'utf8')).toContain('etcdPrefix: /calico\n');
  }, 120_000);

  it('a reopened lab takes its settings from the state file, not from what lies in its work dir', async () => {
    const s = readLabState(id);
    expect({ routing: s.routing, bgpHoldTimeSeconds: s.bgpHoldTimeSeconds, tor: s.tor }).toEqual({
      routing: 'static',
      bgpHoldTimeSeconds: 6,
      tor: undefined,
    });
    // What a reader without these fields took for "its nodes run BIRD".
    const bird = join(s.workDir, 'bird');
    mkdirSync(bird);
    try {
      const l = await ClusterLab.open(id, { connect: false });
      await l.close();
      expect({ routing: l.routing, tor: l.tor }).toEqual({ routing: 'static', tor: undefined });
    } finally {
      rmSync(bird, { recursive: true });
    }
  });

  it('refuses a second lab up with the same id, and bad arguments', async () => {
    const again = await tortie(['lab', 'up', '--id', id]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`tortie lab down --id ${id}`);
    const bad = await tortie(['lab', 'up', '--id', 'Bad_Id']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--id.*Bad_Id/);
    const badNode = await tortie(['lab', 'pod', 'add', 'x/q', '--id', id, '--node', '5']);
    expect(badNode.code).toBe(2);
    expect(badNode.stderr).toContain('--node "5"');
    expect(readLabState(id).pods).toEqual([]);
  }, 60_000);

  it('lab pod add creates three pods over the two nodes', async () => {
    for (const p of PODS) {
      const r = ok(
        await tortie([
          'lab',
          'pod',
          'add',
          p.key,
          '--id',
          id,
          '--node',
          p.node,
          '--labels',
          p.labels,
        ]),
        `pod add ${p.key}`,
      );
      expect(r.stdout).toMatch(
        new RegExp(`^pod ${p.key}: 10\\.231\\.\\d+\\.\\d+ on ${id}-n[01]$`, 'm'),
      );
    }
    const s = readLabState(id);
    expect(s.pods.map((p) => [p.key, p.node])).toEqual([
      ['x/a', `${id}-n0`],
      ['x/b', `${id}-n1`],
      ['y/c', `${id}-n1`],
    ]);
    expect(s.pods.every((p) => p.pid !== undefined && alive(p.pid))).toBe(true);
  }, 120_000);

  it('lab probe --json: every pod reaches every other', async () => {
    const m = await probeUntil(id, ALL);
    expect(m).toEqual(ALL);
    const table = ok(await tortie(['lab', 'probe', '--id', id, ...PROBE_TIMEOUT]), 'lab probe');
    expect(table.stdout).toContain('6 reachable, 0 blocked');
  }, 240_000);

  it('a NetworkPolicy applied with TORTIE_CONFIG changes exactly the pairs into x/b', async () => {
    const file = join(work, 'isolate-b.yaml');
    writeFileSync(
      file,
      [
        'apiVersion: networking.k8s.io/v1',
        'kind: NetworkPolicy',
        'metadata: {name: isolate-b, namespace: x}',
        'spec:',
        '  podSelector: {matchLabels: {app: b}}',
        '  policyTypes: [Ingress]',
        '',
      ].join('\n'),
    );
    ok(await tortie(['apply', '-f', file], { TORTIE_CONFIG: config }), 'apply');
    const m = await probeUntil(id, ISOLATED);
    expect(m).toEqual(ISOLATED);
  }, 240_000);

  it("lab exec runs in the pod's namespace and passes the exit code on", async () => {
    const ip = readLabState(id).pods.find((p) => p.key === 'x/a')!.ip;
    const r = ok(
      await tortie(['lab', 'exec', '--id', id, 'x/a', '--', 'ip', '-4', 'addr', 'show', 'eth0']),
      'exec ip',
    );
    expect(r.stdout).toContain(`inet ${ip}/32`);
    const f = await tortie(['lab', 'exec', '--id', id, 'x/a', '--', 'false']);
    expect(f.code).not.toBe(0);
    const seven = await tortie(['lab', 'exec', '--id', id, 'x/a', '--', 'sh', '-c', 'exit 7']);
    expect(seven.code).toBe(7);
  }, 30_000);

  it('lab status --json: agents ready with their endpoints, etcd healthy, pods running', async () => {
    const r = await tortie(['lab', 'status', '--id', id, '--json']);
    const doc = JSON.parse(r.stdout) as {
      ok: boolean;
      nodes: { name: string; ready: boolean; synced: boolean; endpointsProgrammed: number }[];
      etcd: { healthy: boolean }[];
      pods: { running: boolean }[];
    };
    expect(r.code).toBe(0);
    expect(doc.ok).toBe(true);
    expect(doc.nodes.map((n) => [n.name, n.ready, n.synced, n.endpointsProgrammed])).toEqual([
      [`${id}-n0`, true, true, 1],
      [`${id}-n1`, true, true, 2],
    ]);
    expect(doc.etcd.map((m) => m.healthy)).toEqual([true, true, true]);
    expect(doc.pods.map((p) => p.running)).toEqual([true, true, true]);
  }, 30_000);

  it("tortie version: the client's version and the cluster's, from the agents' heartbeats", async () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      version: string;
    };
    const r = ok(await tortie(['version'], { TORTIE_CONFIG: config }), 'version');
    expect(r.stdout).toMatch(new RegExp(`^Client Version:\\s+v${version}$`, 'm'));
    expect(r.stdout, r.stdout).toMatch(new RegExp(`^Cluster Version:\\s+v${version}$`, 'm'));
    expect(r.stdout).toContain(`2 (v${version}: ${id}-n0, ${id}-n1)`);
  }, 30_000);

  it('one etcd member killed: the pods see no change, tortie get still works, status says so', async () => {
    const s = readLabState(id);
    const victim = s.etcd.members[0]!;
    process.kill(victim.pid!, 'SIGKILL');
    // Gone once the kernel has reaped it (the bound is only for giving up).
    const deadline = Date.now() + 60_000;
    while (alive(victim.pid!) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(alive(victim.pid!)).toBe(false);
    const { matrix } = await probe(id);
    expect(matrix).toEqual(ISOLATED);
    const get = ok(await tortie(['get', 'knp', '-A'], { TORTIE_CONFIG: config }), 'get knp');
    expect(get.stdout).toMatch(/^x\s+isolate-b\s/m);
    // The status asks each member for its health and reads the agents' reports through the
    // surviving ones, each bounded by the CLI; on a loaded machine one may not answer in
    // time (storeError, no node read back ready, a live member unhealthy): ask again until
    // it settles (the bound only decides when to give up).
    type StatusDoc = {
      ok: boolean;
      storeError?: string;
      nodes: { ready: boolean }[];
      etcd: { name: string; healthy: boolean }[];
    };
    let st: Run | undefined;
    const doc = await eventually(
      async () => {
        st = await tortie(['lab', 'status', '--id', id, '--json']);
        return JSON.parse(st.stdout) as StatusDoc;
      },
      (d) =>
        d.storeError === undefined &&
        d.nodes.every((n) => n.ready) &&
        d.etcd.filter((m) => m.healthy).length === s.etcd.members.length - 1,
      90_000,
      500,
    );
    expect(st!.code).toBe(1);
    expect(doc.ok).toBe(false);
    expect(doc.etcd.map((m) => [m.name, m.healthy])).toEqual([
      [victim.name, false],
      [s.etcd.members[1]!.name, true],
      [s.etcd.members[2]!.name, true],
    ]);
    expect(doc.nodes.every((n) => n.ready)).toBe(true);
    before = s;
  }, 180_000);

  it('lab down removes everything; a second down finds nothing', async () => {
    const s = before ?? readLabState(id);
    const r = ok(await tortie(['lab', 'down', '--id', id]), 'lab down');
    expect(r.stdout).toContain(`lab ${id} removed`);
    expect(leftovers(id, labPids(s))).toEqual([]);
    const again = ok(await tortie(['lab', 'down', '--id', id]), 'lab down again');
    expect(again.stdout).toContain('nothing to remove');
  }, 60_000);
});

describe('tortie lab down after a crash (no state file)', () => {
  const id = newLabId('la');
  ids.push(id);

  it('removes the whole lab by its names', async () => {
    ok(await tortie(['lab', 'up', '--nodes', '1', '--id', id]), 'lab up');
    ok(await tortie(['lab', 'pod', 'add', 'z/p', '--id', id, '--node', '0']), 'pod add');
    const s = readLabState(id);
    const pids = labPids(s);
    expect(pids).toHaveLength(3); // agent, etcd, pod
    expect(pids.filter((p) => !alive(p))).toEqual([]);
    rmSync(`/run/tortie/labs/${id}/state.json`);
    // Commands that need the state say what to do.
    const list = await tortie(['lab', 'pod', 'list', '--id', id]);
    expect(list.code).toBe(1);
    expect(list.stderr).toContain(`tortie lab down --id ${id}`);
    const labs = ok(await tortie(['lab', 'list', '--json']), 'lab list');
    expect(
      (JSON.parse(labs.stdout) as { labs: { id: string; problem?: string }[] }).labs,
    ).toContainEqual(
      expect.objectContaining({ id, problem: expect.stringContaining('no state file') }),
    );
    const again = await tortie(['lab', 'up', '--nodes', '1', '--id', id]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`tortie lab down --id ${id}`);
    const r = ok(await tortie(['lab', 'down', '--id', id]), 'lab down');
    expect(r.stdout).toContain(`lab ${id} removed`);
    expect(leftovers(id, pids)).toEqual([]);
  }, 180_000);
});
