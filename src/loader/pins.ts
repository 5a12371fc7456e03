/**
 * The bpffs directory the dataplane pins its maps in (<pinRoot>/<map name>).
 */
import { existsSync, mkdirSync, rmSync, statSync, statfsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/** statfs f_type of a bpf filesystem (BPF_FS_MAGIC). */
const BPF_FS_MAGIC = 0xcafe4a11;

function isOnBpffs(path: string): boolean {
  return statfsSync(path).type === BPF_FS_MAGIC;
}

function nearestExisting(path: string): string {
  let dir = path;
  while (!existsSync(dir)) dir = dirname(dir);
  return dir;
}

/**
 * Creates pinRoot (and parents) after checking that it will live on a bpffs mount;
 * returns it as an absolute path. Nothing is created when the check fails.
 */
export function ensurePinRoot(pinRoot: string): string {
  const root = resolve(pinRoot);
  if (!isOnBpffs(nearestExisting(root))) {
    throw new Error(
      `pin root ${root} is not on a bpf filesystem (mount bpffs, e.g. at /sys/fs/bpf)`,
    );
  }
  mkdirSync(root, { recursive: true });
  return root;
}

/**
 * Removes pinRoot and everything pinned under it (a map lives on only while something
 * else holds it). Missing is fine. Refuses a directory that is not on bpffs, and a
 * bpffs mount point itself.
 */
export function removePins(pinRoot: string): void {
  const root = resolve(pinRoot);
  if (!existsSync(root)) return;
  if (!isOnBpffs(root)) throw new Error(`refusing to remove ${root}: not on a bpf filesystem`);
  if (statSync(root).dev !== statSync(dirname(root)).dev) {
    throw new Error(`refusing to remove ${root}: it is a bpffs mount point, not a pin directory`);
  }
  rmSync(root, { recursive: true, force: true });
}
