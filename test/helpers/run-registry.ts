/**
 * Who owns a test run's objects, so that a later run can tell a killed run's leftovers
 * from a live run's objects (./leftovers.ts).
 *
 * Every run id (./netns.ts `newRunId`) is written to the registry before anything is
 * named after it:
 *
 *   /run/tortie/test-runs/<runId>   {"runId":…,"pid":…,"start":…,"boot":…,"createdAt":…}
 *
 * The owner is the vitest main process (the global setup puts it in TORTIE_TEST_OWNER
 * for the workers); a file run without that setup is owned by its own process. An owner
 * is alive when /proc/<pid>/stat exists, is not a zombie and shows the start time the
 * entry recorded, on the same boot: a pid the kernel handed out again to another process
 * does not make a dead run look alive.
 *
 * The objects carry the run's mark, the first five hex digits of its id (`runMark`), in
 * their names: namespaces and pins `tortie-t<runId>-…`, links `t<runId><role>`, lab ids
 * `<tag><runId…>` (`newLabId`), temp dirs `tortie-…-<id>-…`. Five, not six: some files
 * keep only five digits to leave room in an 8-character lab id.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const REGISTRY_DIR = '/run/tortie/test-runs';
/** The owner of the run, `<pid>:<start>`, set by the global setup for the workers. */
export const OWNER_ENV = 'TORTIE_TEST_OWNER';

/** A process, told apart from a later one with the same pid by its start time. */
export interface RunOwner {
  readonly pid: number;
  /** /proc/<pid>/stat field 22: clock ticks from boot to the process's start. */
  readonly start: number;
  /** /proc/sys/kernel/random/boot_id of the boot it ran in. */
  readonly boot: string;
}

export interface RunEntry {
  readonly runId: string;
  readonly owner: RunOwner;
}

/** What names carry of a run id: its first five hex digits. */
export function runMark(runId: string): string {
  return runId.slice(0, 5);
}

let bootId: string | undefined;
function currentBoot(): string {
  bootId ??= readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  return bootId;
}

/** State and start time of a process, or undefined when there is none with this pid. */
function procStat(pid: number): { state: string; start: number } | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid …": comm may hold spaces and parentheses, so split after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const state = fields[0];
  const start = Number(fields[19]);
  if (state === undefined || !Number.isSafeInteger(start)) return undefined;
  return { state, start };
}

/** The owner record of a running process (this one by default). */
export function processOwner(pid: number = process.pid): RunOwner {
  const stat = procStat(pid);
  if (!stat) throw new Error(`process ${pid} is not running`);
  return { pid, start: stat.start, boot: currentBoot() };
}

export function formatOwner(owner: RunOwner): string {
  return `${owner.pid}:${owner.start}`;
}

/** Whether the process that owned a run still runs (the same process, not a pid reused). */
export function ownerAlive(owner: RunOwner): boolean {
  if (owner.boot !== currentBoot()) return false;
  const stat = procStat(owner.pid);
  return stat !== undefined && stat.state !== 'Z' && stat.start === owner.start;
}

/** The owner of runs started by this process: TORTIE_TEST_OWNER, else this process. */
export function currentOwner(): RunOwner {
  const m = /^(\d+):(\d+)$/.exec(process.env[OWNER_ENV] ?? '');
  if (m) return { pid: Number(m[1]), start: Number(m[2]), boot: currentBoot() };
  return processOwner();
}

/**
 * Records `runId` as owned by `owner` (written whole: temp file and rename). Registering
 * is best effort: without root there is no registry, and the run's objects are never
 * taken for leftovers.
 */
export function registerRun(
  runId: string,
  owner: RunOwner = currentOwner(),
  dir: string = REGISTRY_DIR,
): void {
  const entry = { runId, ...owner, createdAt: new Date().toISOString() };
  try {
    mkdirSync(dir, { recursive: true });
    const tmp = join(dir, `.${runId}.${process.pid}.tmp`);
    writeFileSync(tmp, `${JSON.stringify(entry)}\n`);
    renameSync(tmp, join(dir, runId));
  } catch {
    // not root: unregistered, so never removed by another run
  }
}

function parseEntry(name: string, text: string): RunEntry | undefined {
  try {
    const e = JSON.parse(text) as Partial<RunOwner & { runId: string }>;
    if (
      e.runId === name &&
      Number.isSafeInteger(e.pid) &&
      Number.isSafeInteger(e.start) &&
      typeof e.boot === 'string'
    )
      return { runId: name, owner: { pid: e.pid!, start: e.start!, boot: e.boot } };
  } catch {
    // unreadable: treated as unknown, its objects are kept
  }
  return undefined;
}

/** Every registered run (entries that cannot be read are left out: their objects stay). */
export function readRegistry(dir: string = REGISTRY_DIR): RunEntry[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names.flatMap((name) => {
    if (!/^[0-9a-f]{5,}$/.test(name)) return [];
    try {
      const entry = parseEntry(name, readFileSync(join(dir, name), 'utf8'));
      return entry ? [entry] : [];
    } catch {
      return [];
    }
  });
}
