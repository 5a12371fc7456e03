/**
 * A real Kubernetes API server for labs and tests: etcd 3.6 and kube-apiserver 1.34 on
 * loopback, free ports, a private directory, certificates made at start (./certs.ts), an
 * admin kubeconfig, restart and stop on demand. No controller-manager or scheduler runs: the
 * API server alone, as the tortie datastore and the lab (which plays kubelet) need it.
 *
 *   const api = await startKubeApiserver({ id: 'k1a2b3c' });
 *   await api.kubectl(['get', 'ns']);                     // as the admin (system:masters)
 *   const kc = await api.serviceAccountKubeconfig('kube-system', 'tortie-node');
 *   await api.restart();                                  // the API server; etcd keeps the data
 *   await api.stop();                                     // both gone, the directory removed
 *
 * The directory (default `$TMPDIR/tortie-kube-<id>-…`, which the tests' leftover sweep knows)
 * holds the certificates, `admin.kubeconfig`, etcd's data, `etcd.log`,
 * `kube-apiserver.log` and `state.json` (pids, ports, binaries).
 *
 * Two ways to run the processes, as ../etcd.ts does:
 *   - attached (default, for tests): children of this process;
 *   - detached (`{ detached: true }`, for `tortie lab up --datastore kubernetes`): own
 *     process groups, outliving the command; `attachKubeApiserver(dir or state)` drives
 *     them from another process (found by saved pid, or by command line).
 * Either way their output goes to the log files.
 *
 * Without kube-controller-manager nothing creates a namespace's `default` ServiceAccount
 * (pods naming no service account are refused by the ServiceAccount admission plugin until
 * one exists: `ensureNamespace` makes both), deleted namespaces stay Terminating, and
 * nothing garbage-collects.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cmdline, otherPids, pidAlive, stopPid } from '../../util/proc.js';
import { etcdHealthy, freePort } from '../etcd.js';
import { kubeBinaries, type KubeBinaries } from './binaries.js';
import {
  kubeCertFiles,
  makeClientCertificate,
  makeKubeCertificates,
  type KubeCertFiles,
} from './certs.js';
import { writeKubeconfig } from './kubeconfig.js';

/** The Service CIDR the API server hands ClusterIPs from (its own is 10.96.0.1). */
export const SERVICE_CLUSTER_IP_RANGE = '10.96.0.0/24';
/** The issuer (and default audience) of the service-account tokens it signs. */
export const SERVICE_ACCOUNT_ISSUER = 'https://kubernetes.default.svc';

export interface StartKubeApiserverOptions {
  /** Names the directory and the etcd member: lower-case letters, digits and '-'. */
  readonly id: string;
  /** The directory (created, must be empty or new); default `$TMPDIR/tortie-kube-<id>-…`. */
  readonly dir?: string;
  /** The processes outlive this one (`tortie lab up`); default attached. */
  readonly detached?: boolean;
  /** Default: `kubeBinaries()` (env overrides, else scripts/build-peers.sh). */
  readonly binaries?: KubeBinaries;
  /** How long etcd and then the API server may take to be ready; default 180 s each. */
  readonly readyTimeoutMs?: number;
  /** More kube-apiserver flags (`--flag=value`), after the lab's own. */
  readonly extraArgs?: readonly string[];
}

/** Everything `attachKubeApiserver` needs (also written to `<dir>/state.json`). */
export interface KubeApiserverState {
  readonly id: string;
  readonly dir: string;
  readonly url: string;
  readonly etcdUrl: string;
  readonly etcdPeerUrl: string;
  readonly binaries: KubeBinaries;
  readonly detached: boolean;
  readonly extraArgs: readonly string[];
  readonly apiserverPid?: number;
  readonly etcdPid?: number;
}

export interface KubectlRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface KubectlOptions {
  /** Default: the admin kubeconfig. */
  readonly kubeconfig?: string;
  /** Written to kubectl's stdin (`-f -`). */
  readonly input?: string;
  readonly timeoutMs?: number;
}

export interface ApiResponse<T = unknown> {
  readonly status: number;
  /** The parsed JSON body (a Status object on errors), or the text when it is not JSON. */
  readonly body: T;
}

export interface ServiceAccountTokenOptions {
  /** Token lifetime; default 7 days (the API server allows at least 600). */
  readonly expirationSeconds?: number;
  /** Default: the API server's issuer only. */
  readonly audiences?: readonly string[];
}

export interface KubeApiserver {
  readonly id: string;
  /** https://127.0.0.1:<port> */
  readonly url: string;
  /** The CA of the serving and client certificates (what a kubeconfig trusts). */
  readonly caFile: string;
  /** A kubeconfig as the admin (O=system:masters), mode 0600. */
  readonly adminKubeconfig: string;
  readonly dir: string;
  readonly detached: boolean;
  readonly certs: KubeCertFiles;
  readonly etcdUrl: string;
  /** For `attachKubeApiserver` in another process (also in `<dir>/state.json`). */
  state(): KubeApiserverState;
  /** Is /readyz answering ok now? */
  ready(): Promise<boolean>;
  /** Stops the API server (SIGTERM; `signal` SIGKILL for a crash) and starts it again on
   *  the same port; resolves when it is ready. etcd keeps running: every object stays. */
  restart(signal?: NodeJS.Signals): Promise<void>;
  /** Stops the API server only (an outage); `start()` brings it back. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the API server (and etcd, if it is down) when not running; waits for ready. */
  start(): Promise<void>;
  /** Stops both processes and removes the directory. */
  stop(): Promise<void>;
  /** Runs Debian's kubectl against it (admin by default). Never rejects on a non-zero exit. */
  kubectl(args: readonly string[], options?: KubectlOptions): Promise<KubectlRun>;
  /** kubectl that must succeed: its stdout, or an error with its stderr. */
  kubectlOk(args: readonly string[], options?: KubectlOptions): Promise<string>;
  /** A request to the API as the admin (JSON in and out). */
  request<T = unknown>(method: string, path: string, body?: unknown): Promise<ApiResponse<T>>;
  /** Creates a namespace and its `default` ServiceAccount when absent (no controller does). */
  ensureNamespace(name: string, labels?: Record<string, string>): Promise<void>;
  /** Creates a ServiceAccount when absent. */
  ensureServiceAccount(namespace: string, name: string): Promise<void>;
  /** A token for the ServiceAccount (TokenRequest API, as `kubectl create token`). */
  serviceAccountToken(
    namespace: string,
    name: string,
    options?: ServiceAccountTokenOptions,
  ): Promise<string>;
  /** Writes a kubeconfig with a fresh token of the ServiceAccount; returns its path
   *  (default `<dir>/sa-<namespace>-<name>.kubeconfig`). */
  serviceAccountKubeconfig(
    namespace: string,
    name: string,
    options?: ServiceAccountTokenOptions & { readonly file?: string },
  ): Promise<string>;
  /** Writes a kubeconfig with a client certificate for `user` in `groups` (e.g. a node:
   *  `system:node:<name>` in `system:nodes`); returns its path. */
  userKubeconfig(user: string, groups?: readonly string[], file?: string): Promise<string>;
}

const ID = /^[a-z0-9][a-z0-9-]{0,39}$/;
const DEFAULT_READY_MS = 180_000;
const DEFAULT_TOKEN_SECONDS = 7 * 24 * 3600;

interface Runtime {
  id: string;
  dir: string;
  port: number;
  etcdUrl: string;
  etcdPeerUrl: string;
  binaries: KubeBinaries;
  detached: boolean;
  extraArgs: readonly string[];
  readyTimeoutMs: number;
  apiserverPid?: number;
  etcdPid?: number;
  /** Attached children, so that their exit is reaped. */
  children: Set<ChildProcess>;
}

const etcdName = (id: string) => `tortie-kube-${id}-etcd`;
const logOf = (rt: Runtime, what: 'etcd' | 'kube-apiserver') => join(rt.dir, `${what}.log`);

function tail(file: string, n = 4000): string {
  if (!existsSync(file)) return '';
  const text = readFileSync(file, 'utf8');
  return text.length > n ? text.slice(-n) : text;
}

function launch(rt: Runtime, bin: string, args: string[], log: string): number {
  const fd = openSync(log, 'a');
  try {
    const child = spawn(bin, args, { detached: rt.detached, stdio: ['ignore', fd, fd] });
    // A spawn error (no binary) arrives as an event; the readiness wait reports the exit.
    child.on('error', () => undefined);
    if (rt.detached) child.unref();
    else {
      rt.children.add(child);
      child.once('exit', () => rt.children.delete(child));
    }
    if (child.pid === undefined) throw new Error(`${bin} did not start (see ${log})`);
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

function etcdArgs(rt: Runtime): string[] {
  const name = etcdName(rt.id);
  return [
    `--name=${name}`,
    `--data-dir=${join(rt.dir, 'etcd')}`,
    `--listen-client-urls=${rt.etcdUrl}`,
    `--advertise-client-urls=${rt.etcdUrl}`,
    `--listen-peer-urls=${rt.etcdPeerUrl}`,
    `--initial-advertise-peer-urls=${rt.etcdPeerUrl}`,
    `--initial-cluster=${name}=${rt.etcdPeerUrl}`,
    `--initial-cluster-token=${name}`,
    '--initial-cluster-state=new',
    '--log-level=warn',
  ];
}

function apiserverArgs(rt: Runtime): string[] {
  const c = kubeCertFiles(rt.dir);
  return [
    `--etcd-servers=${rt.etcdUrl}`,
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    `--secure-port=${rt.port}`,
    `--tls-cert-file=${c.serverCert}`,
    `--tls-private-key-file=${c.serverKey}`,
    `--cert-dir=${join(rt.dir, 'apiserver-certs')}`,
    `--client-ca-file=${c.ca}`,
    `--service-account-issuer=${SERVICE_ACCOUNT_ISSUER}`,
    `--service-account-key-file=${c.saPub}`,
    `--service-account-signing-key-file=${c.saKey}`,
    '--authorization-mode=Node,RBAC',
    `--service-cluster-ip-range=${SERVICE_CLUSTER_IP_RANGE}`,
    // tortie's DaemonSet is privileged (manifests/): its dry run must validate.
    '--allow-privileged=true',
    '--profiling=false',
    '--v=1',
    ...rt.extraArgs,
  ];
}

/** GET/POST/… on the API server as the admin, with the lab's CA. */
function apiRequest<T>(
  rt: Runtime,
  method: string,
  path: string,
  body?: unknown,
  timeoutMs = 30_000,
): Promise<ApiResponse<T>> {
  const c = kubeCertFiles(rt.dir);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = https.request(
      `https://127.0.0.1:${rt.port}${path}`,
      {
        method,
        ca: readFileSync(c.ca),
        cert: readFileSync(c.adminCert),
        key: readFileSync(c.adminKey),
        agent: false,
        timeout: timeoutMs,
        headers: {
          accept: 'application/json',
          ...(payload === undefined
            ? {}
            : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }),
        },
      },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('error', reject);
        res.on('end', () => {
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            /* not JSON (readyz answers text) */
          }
          resolve({ status: res.statusCode ?? 0, body: parsed as T });
        });
      },
    );
    req.on('timeout', () =>
      req.destroy(new Error(`${method} ${path}: no answer in ${timeoutMs} ms`)),
    );
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

async function apiReady(rt: Runtime): Promise<boolean> {
  try {
    const r = await apiRequest<string>(rt, 'GET', '/readyz', undefined, 2000);
    return r.status === 200;
  } catch {
    return false;
  }
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `ok` until it holds; fails at once when `exited` says the process is gone. */
async function waitFor(
  what: string,
  ok: () => Promise<boolean>,
  alive: () => boolean,
  log: string,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await ok()) return;
    if (!alive()) throw new Error(`${what} exited before it was ready:\n${tail(log)}`);
    await pause(200);
  }
  throw new Error(`${what} not ready within ${timeoutMs} ms:\n${tail(log)}`);
}

const addressTaken = (e: unknown) => e instanceof Error && /address already in use/.test(e.message);

async function startEtcdProcess(rt: Runtime): Promise<void> {
  if (pidAlive(rt.etcdPid)) return;
  rt.etcdPid = launch(rt, rt.binaries.etcd, etcdArgs(rt), logOf(rt, 'etcd'));
  await waitFor(
    `etcd ${rt.etcdUrl}`,
    () => etcdHealthy(rt.etcdUrl, 1000),
    () => pidAlive(rt.etcdPid),
    logOf(rt, 'etcd'),
    rt.readyTimeoutMs,
  );
}

async function startApiserverProcess(rt: Runtime): Promise<void> {
  if (pidAlive(rt.apiserverPid)) return;
  rt.apiserverPid = launch(
    rt,
    rt.binaries.apiserver,
    apiserverArgs(rt),
    logOf(rt, 'kube-apiserver'),
  );
  await waitFor(
    `kube-apiserver https://127.0.0.1:${rt.port}`,
    () => apiReady(rt),
    () => pidAlive(rt.apiserverPid),
    logOf(rt, 'kube-apiserver'),
    rt.readyTimeoutMs,
  );
}

function stateOf(rt: Runtime): KubeApiserverState {
  return {
    id: rt.id,
    dir: rt.dir,
    url: `https://127.0.0.1:${rt.port}`,
    etcdUrl: rt.etcdUrl,
    etcdPeerUrl: rt.etcdPeerUrl,
    binaries: rt.binaries,
    detached: rt.detached,
    extraArgs: rt.extraArgs,
    ...(rt.apiserverPid === undefined ? {} : { apiserverPid: rt.apiserverPid }),
    ...(rt.etcdPid === undefined ? {} : { etcdPid: rt.etcdPid }),
  };
}

function saveState(rt: Runtime): void {
  if (existsSync(rt.dir))
    writeFileSync(join(rt.dir, 'state.json'), `${JSON.stringify(stateOf(rt), null, 2)}\n`);
}

function runKubectl(
  rt: Runtime,
  args: readonly string[],
  options: KubectlOptions = {},
): Promise<KubectlRun> {
  const kubeconfig = options.kubeconfig ?? join(rt.dir, 'admin.kubeconfig');
  const env = { ...process.env };
  delete env.KUBECONFIG;
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    const child = spawn('kubectl', ['--kubeconfig', kubeconfig, ...args], {
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: options.timeoutMs ?? 120_000,
    });
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (e: NodeJS.ErrnoException) =>
      resolve({
        code: -1,
        stdout,
        stderr:
          e.code === 'ENOENT'
            ? 'kubectl is not installed (apt-get install kubernetes-client)'
            : e.message,
      }),
    );
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
  });
}

function handle(rt: Runtime): KubeApiserver {
  const certs = kubeCertFiles(rt.dir);
  const url = `https://127.0.0.1:${rt.port}`;
  const api: KubeApiserver = {
    id: rt.id,
    url,
    caFile: certs.ca,
    adminKubeconfig: join(rt.dir, 'admin.kubeconfig'),
    dir: rt.dir,
    detached: rt.detached,
    certs,
    etcdUrl: rt.etcdUrl,
    state: () => stateOf(rt),
    ready: () => apiReady(rt),
    async restart(signal = 'SIGTERM') {
      await api.kill(signal);
      await api.start();
    },
    async kill(signal = 'SIGTERM') {
      await stopPid(rt.apiserverPid, signal, 15_000);
      rt.apiserverPid = undefined;
      saveState(rt);
    },
    async start() {
      await startEtcdProcess(rt);
      await startApiserverProcess(rt);
      saveState(rt);
    },
    async stop() {
      await stopPid(rt.apiserverPid, 'SIGTERM', 5000);
      rt.apiserverPid = undefined;
      await stopPid(rt.etcdPid, 'SIGTERM', 5000);
      rt.etcdPid = undefined;
      rmSync(rt.dir, { recursive: true, force: true });
    },
    kubectl: (args, options) => runKubectl(rt, args, options),
    async kubectlOk(args, options) {
      const r = await runKubectl(rt, args, options);
      if (r.code !== 0)
        throw new Error(`kubectl ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim()}`);
      return r.stdout;
    },
    request: (method, path, body) => apiRequest(rt, method, path, body),
    async ensureNamespace(name, labels) {
      const r = await apiRequest(rt, 'POST', '/api/v1/namespaces', {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name, ...(labels === undefined ? {} : { labels }) },
      });
      if (r.status !== 201 && r.status !== 409)
        throw new Error(`creating namespace ${name}: ${r.status} ${JSON.stringify(r.body)}`);
      await api.ensureServiceAccount(name, 'default');
    },
    async ensureServiceAccount(namespace, name) {
      const r = await apiRequest(
        rt,
        'POST',
        `/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts`,
        { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace } },
      );
      if (r.status !== 201 && r.status !== 409)
        throw new Error(
          `creating serviceaccount ${namespace}/${name}: ${r.status} ${JSON.stringify(r.body)}`,
        );
    },
    async serviceAccountToken(namespace, name, options = {}) {
      const expirationSeconds = options.expirationSeconds ?? DEFAULT_TOKEN_SECONDS;
      if (!Number.isInteger(expirationSeconds) || expirationSeconds < 600)
        throw new Error(`expirationSeconds ${expirationSeconds}: an integer of at least 600`);
      const r = await apiRequest<{ status?: { token?: string }; message?: string }>(
        rt,
        'POST',
        `/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts/${encodeURIComponent(name)}/token`,
        {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenRequest',
          spec: {
            expirationSeconds,
            ...(options.audiences === undefined ? {} : { audiences: options.audiences }),
          },
        },
      );
      const token = r.body.status?.token;
      if (r.status !== 201 || typeof token !== 'string')
        throw new Error(
          `token for serviceaccount ${namespace}/${name}: ${r.status} ${r.body.message ?? JSON.stringify(r.body)}`,
        );
      return token;
    },
    async serviceAccountKubeconfig(namespace, name, options = {}) {
      const token = await api.serviceAccountToken(namespace, name, options);
      const file = options.file ?? join(rt.dir, `sa-${namespace}-${name}.kubeconfig`);
      return writeKubeconfig(file, url, certs.ca, `system:serviceaccount:${namespace}:${name}`, {
        token,
      });
    },
    async userKubeconfig(user, groups = [], file) {
      const base = user.replace(/[^A-Za-z0-9._-]/g, '_');
      const cert = await makeClientCertificate(certs, base, user, groups);
      return writeKubeconfig(file ?? join(rt.dir, `user-${base}.kubeconfig`), url, certs.ca, user, {
        clientCertificate: cert.cert,
        clientKey: cert.key,
      });
    },
  };
  return api;
}

/**
 * Starts etcd and kube-apiserver and resolves once /readyz answers ok. A port taken between
 * `freePort()` and the bind ("address already in use") means new ports and another try.
 */
export async function startKubeApiserver(
  options: StartKubeApiserverOptions,
): Promise<KubeApiserver> {
  if (!ID.test(options.id))
    throw new Error(`kube-apiserver id "${options.id}": lower-case letters, digits and '-'`);
  const binaries = options.binaries ?? (await kubeBinaries());
  let dir: string;
  if (options.dir !== undefined) {
    mkdirSync(options.dir, { recursive: true, mode: 0o700 });
    dir = options.dir;
  } else dir = mkdtempSync(join(tmpdir(), `tortie-kube-${options.id}-`));
  const rt: Runtime = {
    id: options.id,
    dir,
    port: 0,
    etcdUrl: '',
    etcdPeerUrl: '',
    binaries,
    detached: options.detached ?? false,
    extraArgs: options.extraArgs ?? [],
    readyTimeoutMs: options.readyTimeoutMs ?? DEFAULT_READY_MS,
    children: new Set(),
  };
  const api0 = handle(rt);
  try {
    const certs = await makeKubeCertificates(dir, options.id);
    for (let attempt = 1; ; attempt++) {
      rt.etcdUrl = `http://127.0.0.1:${await freePort()}`;
      rt.etcdPeerUrl = `http://127.0.0.1:${await freePort()}`;
      try {
        await startEtcdProcess(rt);
        break;
      } catch (e) {
        await stopPid(rt.etcdPid, 'SIGKILL');
        rt.etcdPid = undefined;
        rmSync(join(dir, 'etcd'), { recursive: true, force: true });
        if (!addressTaken(e) || attempt >= 5) throw e;
      }
    }
    for (let attempt = 1; ; attempt++) {
      rt.port = await freePort();
      try {
        await startApiserverProcess(rt);
        break;
      } catch (e) {
        await stopPid(rt.apiserverPid, 'SIGKILL');
        rt.apiserverPid = undefined;
        if (!addressTaken(e) || attempt >= 5) throw e;
      }
    }
    const url = `https://127.0.0.1:${rt.port}`;
    writeKubeconfig(join(dir, 'admin.kubeconfig'), url, certs.ca, 'tortie-admin', {
      clientCertificate: certs.adminCert,
      clientKey: certs.adminKey,
    });
    saveState(rt);
  } catch (e) {
    await api0.stop();
    throw e;
  }
  return handle(rt);
}

/** The pid of a live process whose command line holds `needle` (a path of this lab's). */
function findPid(needle: string): number | undefined {
  return otherPids().find((pid) => cmdline(pid).some((a) => a.includes(needle)) && pidAlive(pid));
}

/**
 * A handle on an API server started earlier, by this or another process: from its state or
 * its directory (`<dir>/state.json`). The processes are found by their saved pids, or by
 * command line when those are gone; a process running nowhere is started by `start()`.
 */
export function attachKubeApiserver(
  from: KubeApiserverState | string,
  readyTimeoutMs = DEFAULT_READY_MS,
): KubeApiserver {
  const state: KubeApiserverState =
    typeof from === 'string'
      ? (JSON.parse(readFileSync(join(from, 'state.json'), 'utf8')) as KubeApiserverState)
      : from;
  const port = Number(new URL(state.url).port);
  const etcdPid = pidAlive(state.etcdPid)
    ? state.etcdPid
    : findPid(`--data-dir=${join(state.dir, 'etcd')}`);
  const apiserverPid = pidAlive(state.apiserverPid)
    ? state.apiserverPid
    : findPid(`--client-ca-file=${kubeCertFiles(state.dir).ca}`);
  return handle({
    id: state.id,
    dir: state.dir,
    port,
    etcdUrl: state.etcdUrl,
    etcdPeerUrl: state.etcdPeerUrl,
    binaries: state.binaries,
    detached: state.detached,
    extraArgs: state.extraArgs,
    readyTimeoutMs,
    ...(etcdPid === undefined ? {} : { etcdPid }),
    ...(apiserverPid === undefined ? {} : { apiserverPid }),
    children: new Set(),
  });
}
