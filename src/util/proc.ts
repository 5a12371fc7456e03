/**
 * Processes by pid, for what the labs and the agent start detached (etcd members, agent
 * processes, BIRD): is one alive, and stop one for good.
 */
import { readFileSync } from 'node:fs';

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
