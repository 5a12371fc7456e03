/**
 * A real etcd server (Debian's etcd-server 3.4) for labs and tests: one member or a
 * 3-member cluster on loopback, free ports, a private data directory, stopped and
 * removed on demand. Nothing here talks to anything but 127.0.0.1.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface EtcdMember {
  name: string;
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  process?: ChildProcess;
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

async function waitHealthy(
  clientUrl: string,
  timeoutMs: number,
  proc: ChildProcess,
  log: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited: number | null = null;
  proc.once('exit', (code) => (exited = code ?? -1));
  while (Date.now() < deadline) {
    if (exited !== null)
      throw new Error(`etcd exited with ${exited} before it was healthy:\n${log().slice(-2000)}`);
    try {
      const res = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(500) });
      if (res.ok && ((await res.json()) as { health?: string }).health === 'true') return;
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(
    `etcd at ${clientUrl} not healthy within ${timeoutMs} ms:\n${log().slice(-2000)}`,
  );
}

function startMember(
  m: EtcdMember,
  cluster: string,
  state: 'new' | 'existing',
  token: string,
): ChildProcess {
  const args = [
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
  return spawn('etcd', args, { stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * Starts `members` (1 or 3) etcd members on loopback and resolves once all are healthy.
 * `id` names the members and the data directory so concurrent runs never collide.
 */
export async function startEtcd(id: string, members: 1 | 3 = 1): Promise<EtcdCluster> {
  const base = mkdtempSync(join(tmpdir(), `tortie-etcd-${id}-`));
  const ms: EtcdMember[] = [];
  for (let i = 0; i < members; i++) {
    ms.push({
      name: `tortie-${id}-etcd${i}`,
      clientUrl: `http://127.0.0.1:${await freePort()}`,
      peerUrl: `http://127.0.0.1:${await freePort()}`,
      dataDir: join(base, `m${i}`),
    });
  }
  const initial = ms.map((m) => `${m.name}=${m.peerUrl}`).join(',');
  const token = `tortie-${id}`;
  const logs = new Map<string, string>();
  const launch = (m: EtcdMember, state: 'new' | 'existing') => {
    const p = startMember(m, initial, state, token);
    logs.set(m.name, '');
    const add = (d: Buffer) => logs.set(m.name, (logs.get(m.name)! + d.toString()).slice(-20000));
    p.stdout!.on('data', add);
    p.stderr!.on('data', add);
    m.process = p;
    return p;
  };
  const stopAll = async () => {
    await Promise.all(ms.map((m) => stopProcess(m.process)));
    rmSync(base, { recursive: true, force: true });
  };
  try {
    for (const m of ms) launch(m, 'new');
    await Promise.all(
      ms.map((m) => waitHealthy(m.clientUrl, 20_000, m.process!, () => logs.get(m.name)!)),
    );
  } catch (e) {
    await stopAll();
    throw e;
  }
  return {
    endpoints: ms.map((m) => m.clientUrl),
    members: ms,
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
      await waitHealthy(m.clientUrl, 20_000, p, () => logs.get(m.name)!);
    },
    stop: stopAll,
  };
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
