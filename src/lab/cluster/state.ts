/**
 * The state of a persistent lab (`tortie lab up`), so that later commands — and other
 * processes — find everything it started:
 *
 *   /run/tortie/labs/<id>/state.json    this file (written atomically: temp file + rename)
 *   /run/tortie/labs/<id>/tortie.yaml   a CLI config for the lab (`TORTIE_CONFIG=…`)
 *   /run/tortie/labs/<id>/bin/          the installed CNI shim
 *   /run/tortie/labs/<id>/etcd/         etcd data and logs (<member>.log)
 *   /run/tortie/labs/<id>/tls/          etcd's CA, server and client certificates (--etcd-tls;
 *                                       `etcd.tls` in this file names them)
 *   /run/tortie/labs/<id>/logs/         agent logs (agent-<node>.log)
 *   /run/tortie/labs/<id>/lock          held while a command changes the lab
 *
 * Everything a lab made carries its id in its name as well, so `destroyClusterLab(id)`
 * removes a lab whose state file is gone (a crash half way).
 */
import {
  closeSync,
  existsSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import type { EtcdClusterState } from '../etcd.js';
import { pidAlive } from '../etcd.js';

export const LABS_DIR = '/run/tortie/labs';
export const STATE_VERSION = 1;

export interface LabNodeState {
  readonly name: string;
  readonly netnsName: string;
  readonly netns: string;
  readonly underlayIp: string;
  readonly pinRoot: string;
  readonly agentPid?: number;
  readonly agentLog: string;
}

export interface LabPodState {
  readonly key: string;
  readonly namespace: string;
  readonly name: string;
  readonly node: string;
  readonly ip: string;
  readonly netns: string;
  readonly containerId: string;
  readonly labels: Record<string, string>;
  readonly servers: string;
  readonly pid?: number;
}

export interface LabState {
  readonly version: number;
  readonly id: string;
  readonly createdAt: string;
  readonly encap: 'ipip' | 'none' | 'vxlan';
  /** The agents' dataplane (absent: bpf). */
  readonly dataplane?: 'bpf' | 'iptables';
  /** The agents' defaultEndpointToHostAction (absent: theirs, Drop). */
  readonly endpointToHostAction?: 'Drop' | 'Accept' | 'Return';
  readonly underlay: string;
  readonly podCidr: string;
  readonly stateDir: string;
  readonly workDir: string;
  readonly configFile: string;
  readonly cniShim: string;
  readonly etcdPrefix: string;
  readonly nodes: LabNodeState[];
  readonly etcd: EtcdClusterState & { readonly endpoints: string[] };
  readonly pods: LabPodState[];
}

export function labDir(id: string): string {
  return join(LABS_DIR, id);
}

export function stateFile(id: string): string {
  return join(labDir(id), 'state.json');
}

export function configFile(id: string): string {
  return join(labDir(id), 'tortie.yaml');
}

/** Writes `text` to `path` through a temp file in the same directory and a rename. */
export function writeAtomically(path: string, text: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: 0o644 });
  renameSync(tmp, path);
}

export function writeState(state: LabState): void {
  writeAtomically(stateFile(state.id), JSON.stringify(state, null, 2) + '\n');
}

/** The lab's state, or undefined when it has no state file. */
export function readState(id: string): LabState | undefined {
  const file = stateFile(id);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  let state: LabState;
  try {
    state = JSON.parse(text) as LabState;
  } catch (e) {
    throw new Error(
      `${file} is not valid JSON (${(e as Error).message}): remove the lab with tortie lab down --id ${id}`,
    );
  }
  if (state.version !== STATE_VERSION || state.id !== id)
    throw new Error(
      `${file}: version ${String(state.version)} of lab "${String(state.id)}" is not a state this tortie reads (version ${STATE_VERSION}): remove the lab with tortie lab down --id ${id}`,
    );
  return state;
}

/**
 * Runs `fn` holding the lab's lock (a file created exclusively, holding our pid; a lock
 * whose holder is gone is taken over). Several `pod add` at once thus do not lose pods.
 */
export async function withLabLock<T>(
  id: string,
  fn: () => Promise<T>,
  timeoutMs = 60_000,
): Promise<T> {
  const lock = join(labDir(id), 'lock');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const fd = openSync(lock, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT')
        throw new Error(
          `no lab "${id}" (no ${labDir(id)}): build one with tortie lab up --id ${id}`,
        );
      if (code !== 'EEXIST') throw e;
      let holder: number | undefined;
      try {
        holder = Number(readFileSync(lock, 'utf8')) || undefined;
      } catch {
        continue; // released meanwhile
      }
      if (holder !== undefined && !pidAlive(holder)) {
        rmSync(lock, { force: true });
        continue;
      }
      if (Date.now() > deadline)
        throw new Error(`lab ${id} is busy: pid ${String(holder)} holds ${lock}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { force: true });
  }
}

/** Lab ids present on this machine: from state directories and from namespace names. */
export function listLabIds(): { id: string; stateDir: boolean; netns: string[] }[] {
  const ids = new Map<string, { stateDir: boolean; netns: string[] }>();
  const get = (id: string) => {
    let e = ids.get(id);
    if (!e) ids.set(id, (e = { stateDir: false, netns: [] }));
    return e;
  };
  if (existsSync(LABS_DIR))
    for (const d of readdirSync(LABS_DIR)) if (/^[a-z0-9]{1,8}$/.test(d)) get(d).stateDir = true;
  if (existsSync('/run/netns'))
    for (const n of readdirSync('/run/netns')) {
      // A cluster lab's underlay namespace names it; its other namespaces follow.
      const m = /^tortie-([a-z0-9]{1,8})-ul$/.exec(n);
      if (m) get(m[1]!);
    }
  if (existsSync('/run/netns'))
    for (const [id, e] of ids)
      e.netns = readdirSync('/run/netns').filter((n) => n.startsWith(`tortie-${id}-`));
  return [...ids].map(([id, e]) => ({ id, ...e })).sort((a, b) => a.id.localeCompare(b.id));
}
