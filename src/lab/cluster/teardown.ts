/**
 * Removing a lab by its names (./names.ts), also after a crash and also while its build
 * still runs in this process (`tortie lab up` interrupted):
 *
 *  - A build registers itself (`trackBuild`) and calls `checkBuild` before each thing it
 *    makes; once a teardown of its id has begun, that check throws
 *    (`LabBuildStoppedError`), so the build makes nothing more.
 *  - The teardown sweeps — kill the lab's processes, delete its namespaces, pins, temp
 *    dirs and state directory — and sweeps again until the build has ended and a sweep
 *    finds nothing: what a build step had in flight when the first sweep ran (a namespace
 *    being added, an etcd or agent being spawned) is found by a later one. Killing what a
 *    build waits for (etcd, an agent) also ends its wait.
 *
 * Concurrent teardowns of one id in this process share one run.
 */
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removePins } from '../../loader/index.js';
import { deleteNetns } from '../../plumbing/netns.js';
import { pidAlive, pidsInNetns, pidsMatching, signalPid } from '../../util/proc.js';
import { clusterNames } from './names.js';
import { isPodProcess } from './pods.js';
import { labDir, readState } from './state.js';
import { labNetns } from './status.js';

/** A build step refused because the lab is being removed. */
export class LabBuildStoppedError extends Error {
  override readonly name = 'LabBuildStoppedError';
}

interface Build {
  /** Settles when the build has ended (made or failed). */
  readonly ended: Promise<void>;
  /** A teardown has begun: the build must make nothing more. */
  stopped: boolean;
}

/** Builds running in this process, by lab id. */
const builds = new Map<string, Build>();
/** Teardowns running in this process, by lab id. */
const teardowns = new Map<string, Promise<void>>();

/**
 * Registers the build of lab `id` (`build` settles when it ends) until it ends. One build
 * per id at a time.
 */
export function trackBuild(id: string, build: Promise<unknown>): void {
  if (builds.has(id)) throw new Error(`lab ${id}: a build of it already runs in this process`);
  const entry: Build = {
    ended: build.then(
      () => undefined,
      () => undefined,
    ),
    stopped: teardowns.has(id),
  };
  builds.set(id, entry);
  void entry.ended.then(() => {
    if (builds.get(id) === entry) builds.delete(id);
  });
}

/** Throws when a teardown of lab `id` has begun: a build step calls it before it makes something. */
export function checkBuild(id: string): void {
  if (builds.get(id)?.stopped === true || teardowns.has(id))
    throw new LabBuildStoppedError(`lab ${id}: the build stopped, the lab is being removed`);
}

/** The teardown of lab `id` running in this process, if any (to wait for its end). */
export function teardownOf(id: string): Promise<void> | undefined {
  return teardowns.get(id);
}

/**
 * Removes everything a lab with this id left behind, by name: processes in its
 * namespaces (pod processes), its etcd members, its agent processes, BIRDs and FRR, the
 * namespaces (links go with them), the pins, the temp dirs, the state directory of a
 * persistent lab (state file, config, CNI shim, etcd data, logs). Stops a build of the
 * lab running in this process and removes what it made, also what it made after the
 * teardown began. Safe to run for a lab that does not exist, and for one whose state file
 * is gone.
 */
export function destroyClusterLab(id: string): Promise<void> {
  clusterNames(id);
  const running = teardowns.get(id);
  if (running !== undefined) return running;
  const build = builds.get(id);
  if (build !== undefined) build.stopped = true;
  const run = teardown(id).finally(() => teardowns.delete(id));
  teardowns.set(id, run);
  return run;
}

/** A bound for a build that does not end after its lab's parts are gone. */
const BUILD_END_MS = 60_000;

async function teardown(id: string): Promise<void> {
  // What the last sweep could not remove (an earlier sweep's failure may have cleared).
  let errors: string[] = [];
  const deadline = Date.now() + BUILD_END_MS;
  for (;;) {
    errors = [];
    const found = await sweep(id, errors);
    const build = builds.get(id);
    if (build !== undefined) {
      if (Date.now() > deadline) {
        errors.push(`its build did not end within ${BUILD_END_MS} ms of the teardown`);
        break;
      }
      // Sweep again soon: whatever the build still makes until its next step's check.
      await Promise.race([build.ended, new Promise((r) => setTimeout(r, 100))]);
      continue;
    }
    if (found.length === 0 || errors.length > 0) break;
    if (Date.now() > deadline) {
      errors.push(`still there after repeated removal: ${found.join(', ')}`);
      break;
    }
  }
  if (errors.length > 0)
    throw new Error(`cluster lab ${id}: could not remove:\n${errors.join('\n')}`);
}

/**
 * One pass over the machine: kills the lab's processes and removes its namespaces, pins,
 * temp dirs and state directory. Returns what it found (empty: nothing of the lab).
 */
async function sweep(id: string, errors: string[]): Promise<string[]> {
  const names = clusterNames(id);
  const found: string[] = [];
  const killed: number[] = [];
  const kill = (pid: number) => {
    signalPid(pid);
    killed.push(pid);
    found.push(`pid ${pid}`);
  };
  // Pods the state file names whose namespace name is gone already (a half-done pod del).
  try {
    for (const p of readState(id)?.pods ?? [])
      if (p.pid !== undefined && isPodProcess(p.pid)) kill(p.pid);
  } catch {
    // unreadable state: the names below find the rest
  }
  for (const ns of labNetns(id)) for (const pid of pidsInNetns(ns)) kill(pid);
  for (const pid of new Set([
    ...pidsMatching(`--name=${names.etcdMember}`),
    // Agent processes ('process' labs) run in the machine's namespace: by pin root.
    ...pidsMatching(`--pin-root ${names.pinRootPrefix}`),
    // The nodes' BIRDs (routing 'bgp'), by their files (bird-<id>-n<i>.*); they run in
    // the node namespaces, so the netns pids above found them already unless those went.
    ...pidsMatching(names.birdFiles),
    // The ToR's FRR daemons (`tor: true`), by their files (…/tortie-<id>-tor-*).
    ...pidsMatching(names.torFiles),
    // The Kubernetes datastore's etcd 3.6 and kube-apiserver (./kube-lab.ts): by the
    // member name, and by their directory under the lab's work dir (state dir or temp dir).
    ...pidsMatching(`--name=${names.kubeEtcdMember}`),
    ...pidsMatching(`${labDir(id)}/kube/`),
    ...pidsMatching(`${join(tmpdir(), names.tempDir)}`),
  ]))
    kill(pid);
  // Let them go before their namespaces and pins do.
  const deadline = Date.now() + 3000;
  while (killed.some((pid) => pidAlive(pid)) && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 20));
  for (const ns of labNetns(id)) {
    found.push(`netns ${ns}`);
    try {
      await deleteNetns(ns);
    } catch (e) {
      errors.push(`${ns}: ${(e as Error).message}`);
    }
  }
  if (existsSync('/sys/fs/bpf')) {
    for (const d of readdirSync('/sys/fs/bpf').filter((n) => n.startsWith(names.prefix))) {
      found.push(`pins /sys/fs/bpf/${d}`);
      try {
        removePins(`/sys/fs/bpf/${d}`);
      } catch (e) {
        errors.push(`pins ${d}: ${(e as Error).message}`);
      }
    }
  }
  for (const d of readdirSync(tmpdir()).filter((n) =>
    names.tempDirs.some((t) => n.startsWith(t)),
  )) {
    found.push(`temp dir ${d}`);
    rmSync(join(tmpdir(), d), { recursive: true, force: true });
  }
  if (existsSync(names.cniSocketDir)) {
    found.push(names.cniSocketDir);
    rmSync(names.cniSocketDir, { recursive: true, force: true });
  }
  if (existsSync(labDir(id))) {
    found.push(labDir(id));
    try {
      rmSync(labDir(id), { recursive: true, force: true });
    } catch (e) {
      errors.push(`${labDir(id)}: ${(e as Error).message}`);
    }
  }
  return found;
}
