/**
 * Removes what killed test runs left behind, never what a live run is using.
 *
 * A run's objects carry its mark (./run-registry.ts) in their names; the registry says
 * who owns each run id and whether that process still runs. An object is a leftover
 * when the mark of at least one dead run is in its name and the mark of no live run is.
 * Anything no registered run claims — a user's `tortie lab up --id demo`, a run started
 * before the registry existed — is never touched.
 *
 * Objects are listed before the registry is read: a live run registers its id before it
 * names anything after it, so whatever was listed is claimed by an entry read later.
 *
 * What is looked at, all by name:
 *   network namespaces  /run/netns/tortie-…   (processes inside are killed first)
 *   root links          t…                    (veths and bridges of the machine's namespace)
 *   bpffs pin dirs      /sys/fs/bpf/tortie-…
 *   temp dirs/files     $TMPDIR/tortie-…      (etcd data, lab work dirs, podman storage)
 *   CNI result cache    /var/lib/cni/results/tortie-…
 *   lab state           /run/tortie/labs/<id>
 *   processes           command line naming `tortie` and a dead mark (etcd, agents, BIRD,
 *                       FRR, conmon), or running in a dead run's namespace or temp dir
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { removePins } from '../../src/loader/pins.js';
import { deleteNetns } from '../../src/plumbing/index.js';
import { ownerAlive, readRegistry, REGISTRY_DIR, runMark, type RunEntry } from './run-registry.js';

const exec = promisify(execFile);

export interface LeftoverOptions {
  readonly registryDir?: string;
  readonly labsDir?: string;
  readonly tmpDir?: string;
  readonly bpffsRoot?: string;
  readonly cniResultsDir?: string;
  readonly netnsDir?: string;
}

export interface LeftoverReport {
  /** Registered runs whose owner is gone (their entries are removed with their objects). */
  readonly deadRuns: string[];
  /** Those of them that had left something behind. */
  readonly killedRuns: string[];
  readonly namespaces: string[];
  readonly links: string[];
  /** Paths of pin dirs, of temp dirs and files and CNI results, of lab state dirs. */
  readonly pins: string[];
  readonly files: string[];
  readonly labs: string[];
  readonly processes: number[];
  /** What could not be removed (its run stays registered, the next run tries again). */
  readonly failures: string[];
}

interface Proc {
  readonly pid: number;
  readonly cmdline: string;
  /** /proc/<pid>/ns/net, e.g. "net:[4026532570]". */
  readonly netns: string;
  /** /proc/<pid>/root: a container's root is inside its storage. */
  readonly root: string;
}

/** Who claims a name: the dead runs whose mark it carries, unless a live run's is there too. */
class Claims {
  private readonly dead: RunEntry[];
  private readonly liveMarks: string[];

  constructor(entries: RunEntry[]) {
    const alive = entries.map((e) => ownerAlive(e.owner));
    this.dead = entries.filter((_, i) => !alive[i]);
    this.liveMarks = entries.filter((_, i) => alive[i]).map((e) => runMark(e.runId));
  }

  get deadRuns(): string[] {
    return this.dead.map((e) => e.runId);
  }

  /** The dead runs a name belongs to; empty when it is no leftover. */
  of(name: string): string[] {
    if (this.liveMarks.some((m) => name.includes(m))) return [];
    return this.dead.filter((e) => name.includes(runMark(e.runId))).map((e) => e.runId);
  }
}

function list(dir: string, prefix = ''): string[] {
  try {
    return readdirSync(dir).filter((n) => n.startsWith(prefix));
  } catch {
    return [];
  }
}

async function rootLinks(): Promise<string[]> {
  try {
    const { stdout } = await exec('ip', ['-json', 'link', 'show']);
    return (JSON.parse(stdout) as { ifname: string }[])
      .map((l) => l.ifname)
      .filter((n) => n.startsWith('t'));
  } catch {
    return [];
  }
}

function processes(): Proc[] {
  const out: Proc[] = [];
  for (const d of list('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      out.push({
        pid: Number(d),
        cmdline: readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').join(' '),
        netns: readlinkSync(`/proc/${d}/ns/net`),
        root: readlinkSync(`/proc/${d}/root`),
      });
    } catch {
      // gone, or a kernel thread
    }
  }
  return out;
}

/** This process and its ancestors: never killed, whatever their command line says. */
function ancestors(): Set<number> {
  const pids = new Set<number>();
  for (let pid = process.pid; pid > 1 && !pids.has(pid);) {
    pids.add(pid);
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      pid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    } catch {
      break;
    }
  }
  return pids;
}

function gone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/** Unmounts whatever is mounted below `dir` (a container's shm in podman's storage). */
async function unmountBelow(dir: string): Promise<void> {
  const below = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((mp): mp is string => mp !== undefined)
    .map((mp) => mp.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((mp) => mp.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const mp of below) await exec('umount', ['-l', mp]).catch(() => undefined);
}

/**
 * Removes the leftovers of test runs whose owner is gone (see the file comment) and the
 * registry entries of those runs once nothing of theirs failed to go. Never throws: what
 * could not be removed is in `failures`.
 */
export async function removeLeftovers(options: LeftoverOptions = {}): Promise<LeftoverReport> {
  const registryDir = options.registryDir ?? REGISTRY_DIR;
  const labsDir = options.labsDir ?? '/run/tortie/labs';
  const tmpDir = options.tmpDir ?? tmpdir();
  const bpffsRoot = options.bpffsRoot ?? '/sys/fs/bpf';
  const cniResultsDir = options.cniResultsDir ?? '/var/lib/cni/results';
  const netnsDir = options.netnsDir ?? '/run/netns';

  // List first, read the registry after (see the file comment).
  const found = {
    namespaces: list(netnsDir, 'tortie-'),
    links: await rootLinks(),
    pins: list(bpffsRoot, 'tortie-').map((n) => join(bpffsRoot, n)),
    files: [
      ...list(tmpDir, 'tortie-').map((n) => join(tmpDir, n)),
      ...list(cniResultsDir, 'tortie-').map((n) => join(cniResultsDir, n)),
    ],
    labs: list(labsDir).map((n) => join(labsDir, n)),
    processes: processes(),
  };
  const entries = readRegistry(registryDir);
  const claims = new Claims(entries);
  const failedRuns = new Set<string>();
  const failures: string[] = [];
  const fail = (what: string, runs: string[], err: unknown) => {
    for (const r of runs) failedRuns.add(r);
    failures.push(`${what}: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
  };
  const base = (path: string) => path.slice(path.lastIndexOf('/') + 1);

  const namespaces = found.namespaces.filter((n) => claims.of(n).length > 0);
  const links = found.links.filter((n) => claims.of(n).length > 0);
  const pins = found.pins.filter((p) => claims.of(base(p)).length > 0);
  const files = found.files.filter((p) => claims.of(base(p)).length > 0);
  const labs = found.labs.filter((p) => claims.of(base(p)).length > 0);

  // Processes: inside a dead namespace, rooted in a dead temp dir, or naming a dead mark.
  const deadNetns = new Set<string>();
  for (const n of namespaces) {
    try {
      deadNetns.add(`net:[${statSync(join(netnsDir, n)).ino}]`);
    } catch {
      // gone already
    }
  }
  const spared = ancestors();
  const victims = found.processes.filter(
    (p) =>
      !spared.has(p.pid) &&
      (deadNetns.has(p.netns) ||
        files.some((f) => p.root.startsWith(`${f}/`)) ||
        (p.cmdline.includes('tortie') && claims.of(p.cmdline).length > 0)),
  );
  const killed: number[] = [];
  for (const p of victims) {
    try {
      process.kill(p.pid, 'SIGKILL');
      killed.push(p.pid);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ESRCH') fail(`process ${p.pid}`, [], e);
    }
  }
  const deadline = Date.now() + 5000;
  while (killed.some((pid) => !gone(pid)) && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 20));

  for (const n of namespaces) await deleteNetns(n).catch((e) => fail(n, claims.of(n), e));
  for (const n of links) {
    await exec('ip', ['link', 'del', n]).catch((e: { stderr?: string }) => {
      if (!/Cannot find device/.test(e.stderr ?? '')) fail(`link ${n}`, claims.of(n), e);
    });
  }
  for (const p of pins) {
    try {
      removePins(p);
    } catch (e) {
      fail(p, claims.of(base(p)), e);
    }
  }
  for (const p of [...files, ...labs]) {
    try {
      await unmountBelow(p);
      rmSync(p, { recursive: true, force: true });
    } catch (e) {
      fail(p, claims.of(base(p)), e);
    }
  }

  const deadRuns = claims.deadRuns;
  for (const runId of deadRuns) {
    if (!failedRuns.has(runId)) rmSync(join(registryDir, runId), { force: true });
  }
  const killedRuns = new Set([
    ...[...namespaces, ...links].flatMap((n) => claims.of(n)),
    ...[...pins, ...files, ...labs].flatMap((p) => claims.of(base(p))),
    ...victims.flatMap((p) => claims.of(p.cmdline)),
  ]);
  return {
    deadRuns,
    killedRuns: deadRuns.filter((r) => killedRuns.has(r)),
    namespaces,
    links,
    pins,
    files,
    labs,
    processes: killed,
    failures,
  };
}

/** One line: what was removed, and of which runs. */
export function describeLeftovers(r: LeftoverReport): string {
  const counts = [
    [r.namespaces.length, 'namespace'],
    [r.links.length, 'link'],
    [r.pins.length, 'bpffs dir'],
    [r.files.length, 'temp path'],
    [r.labs.length, 'lab'],
    [r.processes.length, 'process'],
  ] as const;
  const parts = counts
    .filter(([n]) => n > 0)
    .map(([n, what]) => `${n} ${what}${n === 1 ? '' : what === 'process' ? 'es' : 's'}`);
  const finished = r.deadRuns.length - r.killedRuns.length;
  const removed =
    parts.length > 0
      ? `removed ${parts.join(', ')} of dead run(s) ${r.killedRuns.join(' ') || '?'}`
      : 'none';
  const forgot = finished > 0 ? `; forgot ${finished} finished run(s)` : '';
  const failed = r.failures.length > 0 ? `; could not remove: ${r.failures.join('; ')}` : '';
  return `test leftovers: ${removed}${forgot}${failed}`;
}
