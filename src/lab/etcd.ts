/**
 * A real etcd server (Debian's etcd-server 3.4) for labs and tests: one member or a
 * 3-member cluster on loopback, free ports, a private data directory, stopped and
 * removed on demand. Nothing here talks to anything but 127.0.0.1.
 *
 * With `{ tls }` (files from ./etcd-tls.ts) the members serve https only and require a
 * client certificate signed by the lab's CA (`--client-cert-auth`), and their peer links
 * are TLS with certificates too (`--peer-client-cert-auth`).
 *
 * Two ways to run the members:
 *   - attached (default, for tests): children of this process, output kept in memory;
 *   - detached (`{ detached: true }`, for a lab that outlives the command that built it):
 *     own process group, output appended to `<member>.log` in the data directory, found
 *     again later by pid or by name (`attachEtcd(etcdClusterState(cluster))`).
 */
import { cmdline, otherPids, pidAlive, stopPid } from '../util/proc.js';
import { spawn, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import https from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EtcdTlsFiles } from './etcd-tls.js';

export interface EtcdMember {
  name: string;
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  /** Attached members: the child process (undefined once killed). */
  process?: ChildProcess;
  /** Detached members: the pid (undefined once killed) and the log file. */
  pid?: number;
  logFile?: string;
}

export interface EtcdCluster {
  /** Client endpoints, e.g. ["http://127.0.0.1:23791"]. */
  readonly endpoints: string[];
  readonly members: EtcdMember[];
  /** Kill one member (SIGKILL) — for outage tests. */
  kill(name: string): Promise<void>;
  /** Start a killed member again with its data. */
  restart(name: string): Promise<void>;
  /** Stop every member and remove the data directories. */
  stop(): Promise<void>;
  /** Where the members keep their data (and, detached, their logs). */
  readonly baseDir?: string;
  /** The members run detached from this process (they outlive it). */
  readonly detached?: boolean;
  /** `--initial-cluster` and `--initial-cluster-token`: what a restart needs. */
  readonly initialCluster?: string;
  readonly token?: string;
  /** Members serve TLS and require client certificates (`--client-cert-auth`). */
  readonly tls?: EtcdTlsFiles;
}

export interface StartEtcdOptions {
  /** Members outlive this process; logs go to files in the data directory. */
  readonly detached?: boolean;
  /** Data directory (created); default a new `$TMP/tortie-etcd-<id>-…`. */
  readonly baseDir?: string;
  /** Serve https only, with these files, requiring client certificates (and on peer links). */
  readonly tls?: EtcdTlsFiles;
  /** Where member ports come from; default `freePort` (tests hand out a taken one). */
  readonly port?: () => Promise<number>;
}

/** Everything needed to find and drive a detached cluster from another process. */
export interface EtcdClusterState {
  readonly baseDir: string;
  readonly initialCluster: string;
  readonly token: string;
  readonly members: {
    readonly name: string;
    readonly clientUrl: string;
    readonly peerUrl: string;
    readonly dataDir: string;
    readonly logFile: string;
    readonly pid?: number;
  }[];
  /** The members run with `--client-cert-auth` and these files. */
  readonly tls?: EtcdTlsFiles;
}

/** A TCP port nobody listens on right now (the kernel picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** The pid of a live etcd process started with `--name=<name>`, if any. */
export function findEtcdPid(name: string): number | undefined {
  return otherPids().find((pid) => cmdline(pid).includes(`--name=${name}`) && pidAlive(pid));
}

/**
 * Is the member's client URL answering /health with health "true"? A member run with
 * `--client-cert-auth` answers only a client with a certificate: give `tls`.
 */
export async function etcdHealthy(
  clientUrl: string,
  timeoutMs = 500,
  tls?: EtcdTlsFiles,
): Promise<boolean> {
  if (tls !== undefined) return httpsHealthy(clientUrl, timeoutMs, tls);
  try {
    const res = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(timeoutMs) });
    return res.ok && ((await res.json()) as { health?: string }).health === 'true';
  } catch {
    return false;
  }
}

function httpsHealthy(clientUrl: string, timeoutMs: number, tls: EtcdTlsFiles): Promise<boolean> {
  return new Promise((resolve) => {
    let ca: Buffer, cert: Buffer, key: Buffer;
    try {
      [ca, cert, key] = [tls.ca, tls.clientCert, tls.clientKey].map((f) => readFileSync(f)) as [
        Buffer,
        Buffer,
        Buffer,
      ];
    } catch {
      resolve(false);
      return;
    }
    const request = https.get(
      `${clientUrl}/health`,
      { ca, cert, key, timeout: timeoutMs, agent: false },
      (response) => {
        let body = '';
        response.on('data', (c: Buffer) => (body += c.toString()));
        response.on('error', () => resolve(false));
        response.on('end', () => {
          try {
            resolve(
              response.statusCode === 200 &&
                (JSON.parse(body) as { health?: string }).health === 'true',
            );
          } catch {
            resolve(false);
          }
        });
      },
    );
    request.on('timeout', () => request.destroy());
    request.on('error', () => resolve(false));
  });
}

async function waitHealthy(
  clientUrl: string,
  timeoutMs: number,
  exited: () => string | undefined,
  log: () => string,
  tls?: EtcdTlsFiles,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const why = exited();
    if (why !== undefined)
      throw new Error(`etcd exited with ${why} before it was healthy:\n${log().slice(-2000)}`);
    if (await etcdHealthy(clientUrl, 500, tls)) return;
    await sleep(100);
  }
  throw new Error(
    `etcd at ${clientUrl} not healthy within ${timeoutMs} ms:\n${log().slice(-2000)}`,
  );
}

function memberArgs(
  m: EtcdMember,
  cluster: string,
  state: 'new' | 'existing',
  token: string,
  tls: EtcdTlsFiles | undefined,
): string[] {
  const secure =
    tls === undefined
      ? []
      : [
          `--cert-file=${tls.serverCert}`,
          `--key-file=${tls.serverKey}`,
          `--trusted-ca-file=${tls.ca}`,
          '--client-cert-auth',
          `--peer-cert-file=${tls.serverCert}`,
          `--peer-key-file=${tls.serverKey}`,
          `--peer-trusted-ca-file=${tls.ca}`,
          '--peer-client-cert-auth',
        ];
  return [
    ...secure,
    `--name=${m.name}`,
    `--data-dir=${m.dataDir}`,
    `--listen-client-urls=${m.clientUrl}`,
    `--advertise-client-urls=${m.clientUrl}`,
    `--listen-peer-urls=${m.peerUrl}`,
    `--initial-advertise-peer-urls=${m.peerUrl}`,
    `--initial-cluster=${cluster}`,
    `--initial-cluster-state=${state}`,
    `--initial-cluster-token=${token}`,
    '--heartbeat-interval=50',
    '--election-timeout=500',
    '--log-level=warn',
  ];
}

function readTail(file: string | undefined, n = 20000): string {
  if (file === undefined || !existsSync(file)) return '';
  const text = readFileSync(file, 'utf8');
  return text.length > n ? text.slice(-n) : text;
}

/** Starts a detached member (output appended to its log file); returns its pid. */
function launchDetached(
  m: EtcdMember,
  cluster: string,
  state: 'new' | 'existing',
  token: string,
  tls: EtcdTlsFiles | undefined,
) {
  const logFile = m.logFile!;
  const fd = openSync(logFile, 'a');
  try {
    const child = spawn('etcd', memberArgs(m, cluster, state, token, tls), {
      detached: true,
      stdio: ['ignore', fd, fd],
    });
    // spawn errors (no etcd binary) arrive as an event: the health wait reports the exit.
    child.on('error', () => undefined);
    child.unref();
    m.pid = child.pid;
  } finally {
    closeSync(fd);
  }
}

function detachedCluster(
  base: string,
  ms: EtcdMember[],
  initial: string,
  token: string,
  tls: EtcdTlsFiles | undefined,
): EtcdCluster {
  const find = (name: string) => {
    const m = ms.find((x) => x.name === name);
    if (!m)
      throw new Error(`no etcd member ${name} (members: ${ms.map((x) => x.name).join(', ')})`);
    return m;
  };
  return {
    endpoints: ms.map((m) => m.clientUrl),
    members: ms,
    baseDir: base,
    detached: true,
    initialCluster: initial,
    token,
    ...(tls === undefined ? {} : { tls }),
    async kill(name) {
      const m = find(name);
      await stopPid(m.pid, 'SIGKILL');
      m.pid = undefined;
    },
    async restart(name) {
      const m = find(name);
      if (pidAlive(m.pid)) return;
      launchDetached(m, initial, 'existing', token, tls);
      await waitHealthy(
        m.clientUrl,
        20_000,
        () => (pidAlive(m.pid) ? undefined : 'an error (see its log)'),
        () => readTail(m.logFile),
        tls,
      );
    },
    async stop() {
      await Promise.all(ms.map((m) => stopPid(m.pid, 'SIGTERM')));
      for (const m of ms) m.pid = undefined;
      rmSync(base, { recursive: true, force: true });
    },
  };
}

/**
 * Starts `members` (1 or 3) etcd members on loopback and resolves once all are healthy.
 * `id` names the members and the data directory so concurrent runs never collide.
 *
 * The ports come from `freePort()`, which only knows they were free a moment ago: until
 * etcd binds them, any process may take one (another listener, or an outgoing
 * connection's ephemeral source port, which is the same range). etcd then exits with
 * "address already in use", and the members start again on fresh ports.
 */
export async function startEtcd(
  id: string,
  members: 1 | 3 = 1,
  options: StartEtcdOptions = {},
): Promise<EtcdCluster> {
  const attempts = 5;
  for (let attempt = 1; ; attempt++) {
    try {
      return await startEtcdOnce(id, members, options);
    } catch (e) {
      const taken = e instanceof Error && /address already in use/.test(e.message);
      if (!taken || attempt >= attempts) throw e;
    }
  }
}

async function startEtcdOnce(
  id: string,
  members: 1 | 3,
  options: StartEtcdOptions,
): Promise<EtcdCluster> {
  let base: string;
  if (options.baseDir !== undefined) {
    mkdirSync(options.baseDir, { recursive: true });
    base = options.baseDir;
  } else base = mkdtempSync(join(tmpdir(), `tortie-etcd-${id}-`));
  const ms: EtcdMember[] = [];
  const tls = options.tls;
  const port = options.port ?? freePort;
  const scheme = tls === undefined ? 'http' : 'https';
  for (let i = 0; i < members; i++) {
    const name = `tortie-${id}-etcd${i}`;
    ms.push({
      name,
      clientUrl: `${scheme}://127.0.0.1:${await port()}`,
      peerUrl: `${scheme}://127.0.0.1:${await port()}`,
      dataDir: join(base, `m${i}`),
      ...(options.detached ? { logFile: join(base, `${name}.log`) } : {}),
    });
  }
  const initial = ms.map((m) => `${m.name}=${m.peerUrl}`).join(',');
  const token = `tortie-${id}`;
  if (options.detached) {
    const cluster = detachedCluster(base, ms, initial, token, tls);
    try {
      for (const m of ms) launchDetached(m, initial, 'new', token, tls);
      await Promise.all(
        ms.map((m) =>
          waitHealthy(
            m.clientUrl,
            20_000,
            () => (pidAlive(m.pid) ? undefined : 'an error (see its log)'),
            () => readTail(m.logFile),
            tls,
          ),
        ),
      );
    } catch (e) {
      await cluster.stop();
      throw e;
    }
    return cluster;
  }
  const logs = new Map<string, string>();
  const launch = (m: EtcdMember, state: 'new' | 'existing') => {
    const p = spawn('etcd', memberArgs(m, initial, state, token, tls), {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    logs.set(m.name, '');
    const add = (d: Buffer) => logs.set(m.name, (logs.get(m.name)! + d.toString()).slice(-20000));
    p.stdout!.on('data', add);
    p.stderr!.on('data', add);
    m.process = p;
    return p;
  };
  const exitOf = (p: ChildProcess) => {
    let exited: string | undefined;
    p.once('exit', (code) => (exited = String(code ?? -1)));
    p.once('error', (e) => (exited = e.message));
    return () => exited;
  };
  const stopAll = async () => {
    await Promise.all(ms.map((m) => stopProcess(m.process)));
    rmSync(base, { recursive: true, force: true });
  };
  try {
    for (const m of ms) launch(m, 'new');
    await Promise.all(
      ms.map((m) =>
        waitHealthy(m.clientUrl, 20_000, exitOf(m.process!), () => logs.get(m.name)!, tls),
      ),
    );
  } catch (e) {
    await stopAll();
    throw e;
  }
  return {
    endpoints: ms.map((m) => m.clientUrl),
    members: ms,
    baseDir: base,
    detached: false,
    initialCluster: initial,
    token,
    ...(tls === undefined ? {} : { tls }),
    async kill(name) {
      const m = ms.find((x) => x.name === name);
      if (!m) throw new Error(`no etcd member ${name}`);
      await stopProcess(m.process, 'SIGKILL');
      m.process = undefined;
    },
    async restart(name) {
      const m = ms.find((x) => x.name === name);
      if (!m) throw new Error(`no etcd member ${name}`);
      if (m.process) return;
      const p = launch(m, 'existing');
      await waitHealthy(m.clientUrl, 20_000, exitOf(p), () => logs.get(m.name)!, tls);
    },
    stop: stopAll,
  };
}

/** What `attachEtcd` needs to drive a detached cluster from another process. */
export function etcdClusterState(c: EtcdCluster): EtcdClusterState {
  if (!c.detached || c.baseDir === undefined || !c.initialCluster || !c.token)
    throw new Error('etcdClusterState: only a detached cluster can be saved');
  return {
    baseDir: c.baseDir,
    initialCluster: c.initialCluster,
    token: c.token,
    ...(c.tls === undefined ? {} : { tls: c.tls }),
    members: c.members.map((m) => ({
      name: m.name,
      clientUrl: m.clientUrl,
      peerUrl: m.peerUrl,
      dataDir: m.dataDir,
      logFile: m.logFile ?? join(c.baseDir!, `${m.name}.log`),
      ...(m.pid === undefined ? {} : { pid: m.pid }),
    })),
  };
}

/**
 * A handle on a detached cluster started earlier (by another process): members are
 * found by their saved pid, or by `--name=` when that pid is gone (a restart elsewhere).
 * A member that runs nowhere has no pid; `restart(name)` starts it again.
 */
export function attachEtcd(state: EtcdClusterState): EtcdCluster {
  const ms: EtcdMember[] = state.members.map((m) => {
    const pid = pidAlive(m.pid) ? m.pid : findEtcdPid(m.name);
    return {
      name: m.name,
      clientUrl: m.clientUrl,
      peerUrl: m.peerUrl,
      dataDir: m.dataDir,
      logFile: m.logFile,
      ...(pid === undefined ? {} : { pid }),
    };
  });
  return detachedCluster(state.baseDir, ms, state.initialCluster, state.token, state.tls);
}

async function stopProcess(
  p: ChildProcess | undefined,
  signal: NodeJS.Signals = 'SIGTERM',
): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
  p.kill(signal);
  const timer = setTimeout(() => p.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Re-exported for the lab's modules that ask about etcd pids. */
export { pidAlive };
