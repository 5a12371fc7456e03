/**
 * A killed run does not poison the next: removeLeftovers takes away the namespaces,
 * links, pins, temp dirs, lab state and processes of a run whose owner is gone, and
 * leaves those of a run whose owner still runs, and anything no run claims.
 *
 * The runs are fake, registered in a private registry: one owned by a process that has
 * exited, one by a process whose pid is alive but started at another time (a pid handed
 * out again), one by a child that keeps running. Their ids also come from newRunId, so
 * the real registry names this test run as their owner should it be killed itself.
 */
import { spawn, type ChildProcess } from 'node:child_process';
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
import { removePins } from '../../src/loader/pins.js';
import { deleteNetns } from '../../src/plumbing/index.js';
import { describeLeftovers, removeLeftovers, type LeftoverReport } from '../helpers/leftovers.js';
import { execIn, execInOk, newRunId, runLinkName, TestNetnsSet } from '../helpers/netns.js';
import {
  ownerAlive,
  processOwner,
  readRegistry,
  registerRun,
  runMark,
  type RunOwner,
} from '../helpers/run-registry.js';

const work = mkdtempSync(join(tmpdir(), 'tortie-leftovers-test-'));
const registryDir = join(work, 'registry');
const labsDir = join(work, 'labs');

/** Names on this machine now: a fake run's mark must be in none of them. */
async function namesInUse(): Promise<string> {
  const { stdout } = await execInOk(undefined, 'ip', ['-o', 'link', 'show']);
  return [
    ...readdirSync('/run/netns'),
    ...readdirSync('/sys/fs/bpf'),
    ...readdirSync(tmpdir()),
    stdout,
  ].join('\n');
}

/** A run id whose mark no object on the machine carries yet (nor `others`' marks). */
async function freshRunId(others: string[]): Promise<string> {
  for (;;) {
    const id = newRunId();
    const mark = runMark(id);
    if (others.some((o) => o.includes(mark) || id.includes(runMark(o)))) continue;
    if (!(await namesInUse()).includes(mark)) return id;
  }
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Until `child` runs `program` (its /proc command line): it has exec'd, set up before. */
async function execed(child: ChildProcess, program: string): Promise<void> {
  const deadline = Date.now() + 60_000; // a bound for giving up only
  for (;;) {
    let argv0 = '';
    try {
      argv0 = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0')[0]!;
    } catch {
      /* not there yet, or gone: checked below */
    }
    if (argv0 === program || argv0.endsWith(`/${program}`)) return;
    if (!alive(child)) throw new Error(`${program} (pid ${child.pid}) exited before it ran`);
    if (Date.now() > deadline)
      throw new Error(`pid ${child.pid} does not run ${program}: ${argv0}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** A process whose command line names `name`, as an etcd or an agent does. */
function daemonNaming(name: string): ChildProcess {
  return spawn(process.execPath, ['-e', 'setInterval(() => {}, 1e9)', '--', `--name=${name}`], {
    stdio: 'ignore',
  });
}

interface FakeRun {
  readonly runId: string;
  readonly nets: TestNetnsSet;
  readonly netnsName: string;
  readonly link: string;
  readonly peer: string;
  readonly pins: string;
  readonly tmp: string;
  readonly lab: string;
  /** A process inside the namespace (a pod's). */
  inside?: ChildProcess;
  /** A daemon in the machine's namespace naming the run (an etcd). */
  daemon?: ChildProcess;
}

async function makeRun(runId: string): Promise<FakeRun> {
  const nets = new TestNetnsSet(runId);
  const run: FakeRun = {
    runId,
    nets,
    netnsName: nets.name('node'),
    link: runLinkName(runId, 'up'),
    peer: runLinkName(runId, 'upp'),
    pins: `/sys/fs/bpf/${nets.prefix}`,
    tmp: mkdtempSync(join(tmpdir(), `tortie-etcd-t${runId}-`)),
    lab: join(labsDir, `la${runId}`.slice(0, 8)),
  };
  const ns = await nets.create('node');
  run.inside = spawn('nsenter', [`--net=${ns.path}`, '--', 'sleep', '600'], { stdio: 'ignore' });
  run.daemon = daemonNaming(`${nets.prefix}-etcd0`);
  await execInOk(undefined, 'ip', [
    'link',
    'add',
    run.link,
    'type',
    'veth',
    'peer',
    'name',
    run.peer,
  ]);
  mkdirSync(run.pins);
  writeFileSync(join(run.tmp, 'member'), 'data\n');
  mkdirSync(run.lab, { recursive: true });
  writeFileSync(join(run.lab, 'state.json'), '{}\n');
  // The process inside is in the namespace once nsenter has exec'd sleep: spawn returns
  // once nsenter runs (as the daemon does, its command line its own from then on).
  await execed(run.inside, 'sleep');
  return run;
}

async function linkExists(name: string): Promise<boolean> {
  return (await execIn(undefined, 'ip', ['link', 'show', name])).code === 0;
}

async function dropRun(run: FakeRun | undefined): Promise<void> {
  if (!run) return;
  for (const child of [run.inside, run.daemon]) {
    if (child && alive(child)) {
      child.kill('SIGKILL');
      await exited(child);
    }
  }
  await deleteNetns(run.netnsName).catch(() => undefined);
  await execIn(undefined, 'ip', ['link', 'del', run.link]);
  removePins(run.pins);
  rmSync(run.tmp, { recursive: true, force: true });
}

let dead: FakeRun | undefined;
let live: FakeRun | undefined;
let reusedId: string;
let liveOwner: ChildProcess;
let both: string;
let report: LeftoverReport;

beforeAll(async () => {
  // An owner that has exited.
  const gone = spawn('sleep', ['60'], { stdio: 'ignore' });
  await execed(gone, 'sleep');
  const goneOwner = processOwner(gone.pid!);
  gone.kill('SIGKILL');
  await exited(gone);
  // An owner whose pid runs, but is another process than the one that owned the run.
  const me = processOwner();
  const reusedOwner: RunOwner = { ...me, start: me.start - 1 };
  liveOwner = spawn('sleep', ['600'], { stdio: 'ignore' });
  await execed(liveOwner, 'sleep');

  const deadId = await freshRunId([]);
  const liveId = await freshRunId([deadId]);
  reusedId = await freshRunId([deadId, liveId]);
  registerRun(deadId, goneOwner, registryDir);
  registerRun(liveId, processOwner(liveOwner.pid!), registryDir);
  registerRun(reusedId, reusedOwner, registryDir);

  dead = await makeRun(deadId);
  live = await makeRun(liveId);
  mkdirSync(`/sys/fs/bpf/tortie-t${reusedId}`);
  // Claimed by both a dead and a live run: the live one wins.
  both = mkdtempSync(join(tmpdir(), `tortie-t${deadId}-t${liveId}-`));
  // A user's lab: no run claims it.
  mkdirSync(join(labsDir, 'demo'), { recursive: true });

  report = await removeLeftovers({ registryDir, labsDir });
  console.log(describeLeftovers(report));
});

afterAll(async () => {
  await dropRun(dead);
  await dropRun(live);
  if (alive(liveOwner)) liveOwner.kill('SIGKILL');
  if (reusedId) removePins(`/sys/fs/bpf/tortie-t${reusedId}`);
  if (both) rmSync(both, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
});

describe('leftovers of test runs', () => {
  it('an owner is alive only as the same process: exited or pid reused is dead', () => {
    const byId = new Map(readRegistry(registryDir).map((e) => [e.runId, e.owner]));
    expect(byId.has(dead!.runId)).toBe(false);
    expect(byId.has(reusedId)).toBe(false);
    expect(ownerAlive(byId.get(live!.runId)!)).toBe(true);
    expect(report.deadRuns.sort()).toEqual([dead!.runId, reusedId].sort());
    expect(report.killedRuns.sort()).toEqual([dead!.runId, reusedId].sort());
    expect(report.failures).toEqual([]);
  });

  it("removes a dead run's namespace, link, pins, temp dir, lab state and processes", async () => {
    expect(existsSync(`/run/netns/${dead!.netnsName}`)).toBe(false);
    expect(await linkExists(dead!.link)).toBe(false);
    expect(await linkExists(dead!.peer)).toBe(false);
    expect(existsSync(dead!.pins)).toBe(false);
    expect(existsSync(`/sys/fs/bpf/tortie-t${reusedId}`)).toBe(false);
    expect(existsSync(dead!.tmp)).toBe(false);
    expect(existsSync(dead!.lab)).toBe(false);
    await exited(dead!.inside!);
    await exited(dead!.daemon!);
    expect(dead!.inside!.signalCode).toBe('SIGKILL');
    expect(dead!.daemon!.signalCode).toBe('SIGKILL');
    expect(report.namespaces).toEqual([dead!.netnsName]);
    expect(report.links.sort()).toEqual([dead!.link, dead!.peer].sort());
    expect(report.processes.sort()).toEqual([dead!.inside!.pid, dead!.daemon!.pid].sort());
  });

  it("keeps a live run's objects, those a live run also claims, and a user's lab", async () => {
    expect(existsSync(`/run/netns/${live!.netnsName}`)).toBe(true);
    expect(await linkExists(live!.link)).toBe(true);
    expect(existsSync(live!.pins)).toBe(true);
    expect(existsSync(join(live!.tmp, 'member'))).toBe(true);
    expect(existsSync(join(live!.lab, 'state.json'))).toBe(true);
    expect(alive(live!.inside!)).toBe(true);
    expect(alive(live!.daemon!)).toBe(true);
    expect(existsSync(both)).toBe(true);
    expect(existsSync(join(labsDir, 'demo'))).toBe(true);
    expect(existsSync(join(registryDir, live!.runId))).toBe(true);
  });

  it('a second pass finds nothing more to remove', async () => {
    const again = await removeLeftovers({ registryDir, labsDir });
    expect(describeLeftovers(again)).toBe('test leftovers: none');
  });
});
