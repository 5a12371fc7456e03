/**
 * Processes by pid, for what the labs and the agent start detached (etcd members, agent
 * processes, BIRD, pod processes): is one alive, stop one for good, and find them in
 * /proc — by command line, or by the network namespace they run in.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';

/** true while `pid` exists and is not a zombie (a zombie is gone for every purpose here). */
export function pidAlive(pid: number | undefined): boolean {
  if (pid === undefined || !Number.isInteger(pid) || pid <= 0) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The state is the field after the parenthesised command name (which may hold spaces).
    const at = stat.lastIndexOf(')') + 2;
    const state = stat.slice(at, at + 1);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/**
 * Sends `signal`, then SIGKILL once `graceMs` have passed, and resolves when the pid is
 * gone. Resolves at once when it is not running.
 */
export async function stopPid(
  pid: number | undefined,
  signal: NodeJS.Signals = 'SIGTERM',
  graceMs = 3000,
): Promise<void> {
  if (!pidAlive(pid)) return;
  try {
    process.kill(pid!, signal);
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  let killed = signal === 'SIGKILL';
  while (pidAlive(pid)) {
    if (!killed && Date.now() > deadline) {
      killed = true;
      try {
        process.kill(pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The command line of `pid` as its arguments (empty when it is gone or a zombie). */
export function cmdline(pid: number): string[] {
  try {
    const text = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return text === '' ? [] : text.replace(/\0$/, '').split('\0');
  } catch {
    return [];
  }
}

/** Pids of every process on the machine but this one, from /proc. */
export function otherPids(): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d) && Number(d) !== process.pid)
    .map(Number);
}

/** Pids of live processes whose command line (arguments joined by spaces) contains `needle`. */
export function pidsMatching(needle: string): number[] {
  return otherPids().filter((pid) => cmdline(pid).join(' ').includes(needle) && pidAlive(pid));
}

/**
 * Pids of the processes in the named network namespace (`/run/netns/<name>`): those whose
 * `/proc/<pid>/ns/net` is that namespace — what `ip netns pids` answers, without a spawn.
 * Empty when the namespace is gone.
 */
export function pidsInNetns(name: string): number[] {
  let ns: { dev: number; ino: number };
  try {
    ns = statSync(`/run/netns/${name}`);
  } catch {
    return [];
  }
  return otherPids().filter((pid) => {
    try {
      const s = statSync(`/proc/${pid}/ns/net`);
      return s.ino === ns.ino && s.dev === ns.dev;
    } catch {
      return false;
    }
  });
}

/** Sends `signal` (default SIGKILL) to `pid`; a pid that is gone already is no error. */
export function signalPid(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(pid, signal);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
  }
}
