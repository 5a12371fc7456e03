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
 *   /run/tortie/labs/<id>/kube/         --datastore kubernetes: etcd 3.6 and kube-apiserver
 *                                       (data, logs, certificates, admin.kubeconfig,
 *                                       agent.kubeconfig and cni.kubeconfig: tokens)
 *   /run/tortie/labs/<id>/logs/         agent logs (agent-<node>.log)
 *   /run/tortie/labs/<id>/lock          held while a command changes the lab
 *
 * The state file keeps every setting a reopened lab runs with (`labSettings`: encap,
 * dataplane, endpoint-to-host action, routing, BGP hold time, the ToR, etcd TLS), so that
 * `ClusterLab.open` in another process uses them instead of guessing; a state file from
 * before routing, hold time and ToR were kept still loads, as its reader found them.
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
import { pidAlive } from '../../util/proc.js';
import type { EtcdClusterState } from '../etcd.js';
import type { EtcdTlsFiles } from '../etcd-tls.js';
import type { LabKubeState } from './kube-lab.js';
import { clusterNames } from './names.js';
import { torOf, type LabTor } from './tor.js';

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
  /** Kubernetes datastore: the Pod object's uid (what CNI DEL is called with). */
  readonly uid?: string;
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
  /**
   * How the agents route. Written by every tortie that has this field; absent in an older
   * state file, whose reader guesses it (and the two below) as that tortie did.
   */
  readonly routing?: 'static' | 'bgp';
  /** The BIRDs' BGP hold time in seconds (routing 'bgp'). */
  readonly bgpHoldTimeSeconds?: number;
  /** The lab's external router (`tor: true`); absent: none. */
  readonly tor?: LabTor;
  readonly stateDir: string;
  readonly workDir: string;
  readonly configFile: string;
  readonly cniShim: string;
  readonly etcdPrefix: string;
  readonly nodes: LabNodeState[];
  /** The lab's own etcd (the etcd datastore; empty members on Kubernetes). */
  readonly etcd: EtcdClusterState & { readonly endpoints: string[] };
  readonly pods: LabPodState[];
  /** The Kubernetes datastore: the API server and the credentials (absent: etcd). */
  readonly kube?: LabKubeState;
}

/** What a reopened lab runs with: its settings, from the state file. */
export interface LabSettings {
  readonly encap: 'ipip' | 'none' | 'vxlan';
  readonly underlay: string;
  readonly podCidr: string;
  readonly dataplane: 'bpf' | 'iptables';
  readonly endpointToHostAction: 'Drop' | 'Accept' | 'Return' | undefined;
  readonly routing: 'static' | 'bgp';
  readonly bgpHoldTimeSeconds: number;
  readonly tor: LabTor | undefined;
  readonly etcdTls: EtcdTlsFiles | undefined;
  /** Where the resources live (absent: the lab's etcd). */
  readonly datastore?: 'kubernetes';
}

/** The BGP hold time of a lab's BIRDs unless told otherwise (keepalive a third of it). */
export const DEFAULT_BGP_HOLD_TIME_SECONDS = 6;

/**
 * What an older state file (without `routing`) cannot say, as that tortie's reader found
 * it on the machine: does the lab's work dir have a `bird/` run dir (its nodes run BIRD),
 * and is there a ToR (a `tor/` dir and the ToR's namespace)?
 */
export interface LegacyClues {
  readonly birdRunDir: boolean;
  readonly tor: boolean;
}

/** The settings a state file keeps; `legacy` answers for a state file from before them. */
export function labSettings(state: LabState, legacy: () => LegacyClues): LabSettings {
  const common = {
    encap: state.encap,
    underlay: state.underlay,
    podCidr: state.podCidr,
    dataplane: state.dataplane ?? 'bpf',
    endpointToHostAction: state.endpointToHostAction,
    bgpHoldTimeSeconds: state.bgpHoldTimeSeconds ?? DEFAULT_BGP_HOLD_TIME_SECONDS,
    etcdTls: state.etcd.tls,
    ...(state.kube === undefined ? {} : { datastore: 'kubernetes' as const }),
  } as const;
  if (state.routing !== undefined) return { ...common, routing: state.routing, tor: state.tor };
  const clues = legacy();
  return {
    ...common,
    routing: clues.birdRunDir ? 'bgp' : 'static',
    tor: clues.tor ? torOf(state.id, state.underlay, state.workDir) : undefined,
  };
}

/** What a lab's state is made of (`labState`). */
export interface LabStateParts {
  readonly id: string;
  readonly createdAt: string;
  readonly settings: LabSettings;
  readonly workDir: string;
  readonly cniShim: string;
  readonly nodes: readonly LabNodeState[];
  readonly etcd: LabState['etcd'];
  readonly pods: readonly LabPodState[];
  readonly kube?: LabKubeState | undefined;
}

/** The state file's content: every setting (`labSettings` reads them back) and every part. */
export function labState(p: LabStateParts): LabState {
  const s = p.settings;
  return {
    version: STATE_VERSION,
    id: p.id,
    createdAt: p.createdAt,
    encap: s.encap,
    ...(s.dataplane === 'iptables' ? { dataplane: 'iptables' as const } : {}),
    ...(s.endpointToHostAction === undefined
      ? {}
      : { endpointToHostAction: s.endpointToHostAction }),
    underlay: s.underlay,
    podCidr: s.podCidr,
    routing: s.routing,
    bgpHoldTimeSeconds: s.bgpHoldTimeSeconds,
    ...(s.tor === undefined ? {} : { tor: s.tor }),
    stateDir: labDir(p.id),
    workDir: p.workDir,
    configFile: configFile(p.id),
    cniShim: p.cniShim,
    etcdPrefix: clusterNames(p.id).etcdPrefix,
    nodes: [...p.nodes],
    etcd: { ...p.etcd, ...(s.etcdTls === undefined ? {} : { tls: s.etcdTls }) },
    pods: [...p.pods],
    ...(p.kube === undefined ? {} : { kube: p.kube }),
  };
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

/**
 * The lab's CLI config (`export TORTIE_CONFIG=<configFile(id)>`): its etcd, prefix, TLS
 * files; on the Kubernetes datastore the datastore type and the admin kubeconfig.
 */
export function writeLabConfig(
  id: string,
  endpoints: readonly string[],
  tls: EtcdTlsFiles | undefined,
  kubeconfig?: string,
): void {
  writeAtomically(
    configFile(id),
    [
      `# tortie CLI config of lab ${id} (written by tortie lab up)`,
      `#   export TORTIE_CONFIG=${configFile(id)}`,
      ...(kubeconfig === undefined
        ? ['etcdEndpoints:', ...endpoints.map((e) => `  - ${e}`)]
        : ['datastoreType: kubernetes', `kubeconfig: ${kubeconfig}`]),
      `etcdPrefix: ${clusterNames(id).etcdPrefix}`,
      ...(tls === undefined
        ? []
        : [`etcdCACert: ${tls.ca}`, `etcdCert: ${tls.clientCert}`, `etcdKey: ${tls.clientKey}`]),
      '',
    ].join('\n'),
  );
}

export function writeState(state: LabState): void {
  writeAtomically(stateFile(state.id), stateText(state));
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
  return parseState(text, id, file);
}

/** The text of a state file (what `writeState` writes). */
export function stateText(state: LabState): string {
  return JSON.stringify(state, null, 2) + '\n';
}

/** A state file's text as the state of lab `id`; throws what to do when it is not one. */
export function parseState(text: string, id: string, file = stateFile(id)): LabState {
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
