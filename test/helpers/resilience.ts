/**
 * Traffic tools for the resilience checks (test/e2e/resilience.test.ts), all running as
 * real processes inside a lab pod's network namespace:
 *
 *   - startPing: `ping -n -i <interval>` until stopped with SIGINT; the summary and the
 *     sequence numbers answered are parsed, so a loss can be told from the one echo that
 *     was still in flight when ping was interrupted.
 *   - startStream: a long-lived TCP connection through the pod's own PodProcess, one small
 *     message every few ms, each echo checked; any error, reset or timeout is recorded.
 *   - waitForTraffic: until the ping and the streams have gone on by a number of answers
 *     (count-based evidence that traffic crossed whatever happened meanwhile).
 *   - startUdpTool: a small Node program (no lab code) that counts UDP datagrams received
 *     on a port, by source address, and/or sends datagrams to a list of targets every few
 *     ms, trying again whatever the kernel answers (no route, no address yet…).
 *   - startCapture: tcpdump on an interface of a namespace, written to a file, counted
 *     afterwards with a filter.
 *
 * Nothing here sends a packet outside the namespace it runs in, except through that
 * namespace's own interfaces (the lab's veths).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { PodProcess } from '../../src/lab/pod-handle.js';
import { execIn } from './netns.js';

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Polls `check` until it holds; throws naming `what` after `timeoutMs` (a bound that only
 * decides when to give up, generous for a loaded machine: a check that holds ends it).
 */
export async function eventually(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 60_000,
  everyMs = 200,
): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    let ok = false;
    try {
      ok = await check();
    } catch {
      ok = false;
    }
    if (ok) return Date.now() - t0;
    if (Date.now() - t0 > timeoutMs) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await sleep(everyMs);
  }
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** `signal`, then SIGKILL only as a last resort (a tool that ignores it fails its checks). */
async function killAndWait(child: ChildProcess, signal: NodeJS.Signals, graceMs = 30_000) {
  const done = exited(child);
  try {
    child.kill(signal);
  } catch {
    /* gone */
  }
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await done;
  clearTimeout(timer);
}

// ---------------------------------------------------------------- ping

export interface PingSummary {
  transmitted: number;
  received: number;
  /** Sequence numbers (1-based, as ping prints them) never answered. */
  missing: number[];
  /** Missing ones other than the last one sent (in flight when ping was interrupted). */
  lost: number[];
  /** Echo replies seen more than once (duplicates). */
  duplicates: number;
  output: string;
}

export interface PingHandle {
  readonly child: ChildProcess;
  /** SIGINT, then parse the summary. */
  stop(): Promise<PingSummary>;
  /** Replies seen so far. */
  repliesSoFar(): number;
  /** What ping printed so far (stdout and stderr). */
  outputSoFar(): string;
}

/**
 * `ping -n -i <intervalS> <dst>` inside `netns` until stop(). The default 0.008 s gives
 * at least 100 per second here: iputils' `-i 0.01` measured only ~63/s on this kernel
 * (its wait rounds up), `-i 0.008` ~125/s.
 */
export function startPing(netns: string, dst: string, intervalS = 0.008): PingHandle {
  const child = spawn('nsenter', [`--net=${netns}`, 'ping', '-n', '-i', String(intervalS), dst], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const seqs = new Set<number>();
  let dups = 0;
  const rl = createInterface({ input: child.stdout! });
  rl.on('line', (line) => {
    out += line + '\n';
    const m = /icmp_seq=(\d+)/.exec(line);
    if (m && /bytes from/.test(line)) {
      const s = Number(m[1]);
      if (seqs.has(s) || /DUP!/.test(line)) dups++;
      seqs.add(s);
    }
  });
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const closed = new Promise<void>((resolve) => rl.once('close', () => resolve()));
  return {
    child,
    repliesSoFar: () => seqs.size,
    outputSoFar: () => out,
    async stop() {
      await killAndWait(child, 'SIGINT');
      await closed;
      const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
      if (!m) throw new Error(`no ping summary in:\n${out.slice(-2000)}`);
      const transmitted = Number(m[1]);
      const received = Number(m[2]);
      const missing: number[] = [];
      for (let s = 1; s <= transmitted; s++) if (!seqs.has(s)) missing.push(s);
      return {
        transmitted,
        received,
        missing,
        lost: missing.filter((s) => s !== transmitted),
        duplicates: dups,
        output: out,
      };
    },
  };
}

/**
 * No echo lost: every one sent was answered, except possibly the very last, which was
 * in flight when SIGINT ended ping (ping does not wait for it). Returns a description.
 */
export function pingVerdict(p: PingSummary): { ok: boolean; text: string } {
  const inFlight = p.missing.length === 1 && p.missing[0] === p.transmitted ? 1 : 0;
  const ok = p.lost.length === 0 && p.received + inFlight === p.transmitted;
  return {
    ok,
    text:
      `${p.transmitted} transmitted, ${p.received} received` +
      (inFlight ? ' (the last one in flight at SIGINT)' : '') +
      (p.lost.length ? `, LOST seq ${p.lost.slice(0, 20).join(',')}` : '') +
      (p.duplicates ? `, ${p.duplicates} duplicates` : ''),
  };
}

// ---------------------------------------------------------------- TCP stream

export interface StreamStats {
  sent: number;
  echoed: number;
  errors: string[];
  /** Longest time one message took to come back, ms. */
  maxRttMs: number;
}

export interface StreamHandle {
  readonly stats: StreamStats;
  stop(): Promise<StreamStats>;
}

/**
 * Opens a TCP connection from `from` to host:port (an echo server) and sends a short
 * message every `periodMs`, one at a time, requiring each echo exactly within
 * `timeoutMs` (long enough for a loaded machine: a lost segment shows as a loss of the
 * pings beside it, a reset as an error). Stops at the first error.
 */
export async function startStream(
  from: PodProcess,
  host: string,
  port: number,
  tag: string,
  periodMs = 20,
  timeoutMs = 10_000,
): Promise<StreamHandle> {
  const opened = await from.request({ op: 'open', host, port, timeoutMs: 30_000 });
  if (!opened.ok || opened.conn === undefined)
    throw new Error(`open ${tag} to ${host}:${port}: ${opened.ok ? 'no conn' : opened.error}`);
  const conn = opened.conn;
  const stats: StreamStats = { sent: 0, echoed: 0, errors: [], maxRttMs: 0 };
  let running = true;
  const loop = (async () => {
    while (running) {
      const msg = `${tag}#${stats.sent};`;
      stats.sent++;
      const t0 = Date.now();
      const r = await from.request({ op: 'send', conn, data: msg, timeoutMs });
      const rtt = Date.now() - t0;
      if (!r.ok) {
        stats.errors.push(`message ${stats.sent - 1}: ${r.error}`);
        break;
      }
      if (r.echo !== msg) {
        stats.errors.push(`message ${stats.sent - 1}: echo ${JSON.stringify(r.echo)} != ${msg}`);
        break;
      }
      stats.echoed++;
      stats.maxRttMs = Math.max(stats.maxRttMs, rtt);
      await sleep(periodMs);
    }
  })();
  return {
    stats,
    async stop() {
      running = false;
      await loop;
      const closed = await from.request({ op: 'close', conn });
      if (!closed.ok) stats.errors.push(`close: ${closed.error}`);
      return stats;
    },
  };
}

// ---------------------------------------------------------------- traffic progress

/** How far a ping and some streams have got: answers and echoes so far. */
export interface TrafficProgress {
  readonly replies: number;
  readonly echoed: readonly number[];
}

export function trafficProgress(
  ping: PingHandle,
  streams: readonly StreamHandle[],
): TrafficProgress {
  return { replies: ping.repliesSoFar(), echoed: streams.map((s) => s.stats.echoed) };
}

/**
 * Until the ping has `n` more answers and every stream `n` more echoes than at `since`:
 * positive, count-based evidence that traffic went on across whatever happened in between
 * (a restart, an outage). Fails at once when a stream broke or ping ended; `timeoutMs` is
 * only the bound for giving up.
 */
export async function waitForTraffic(
  ping: PingHandle,
  streams: readonly StreamHandle[],
  since: TrafficProgress,
  n: number,
  what: string,
  timeoutMs = 120_000,
): Promise<TrafficProgress> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const now = trafficProgress(ping, streams);
    if (now.replies >= since.replies + n && now.echoed.every((e, i) => e >= since.echoed[i]! + n))
      return now;
    const broken = streams.find((s) => s.stats.errors.length > 0);
    if (broken) throw new Error(`${what}: a TCP stream broke: ${broken.stats.errors.join('; ')}`);
    if (ping.child.exitCode !== null || ping.child.signalCode !== null)
      throw new Error(`${what}: ping ended: ${ping.outputSoFar().slice(-2000)}`);
    if (Date.now() > deadline)
      throw new Error(
        `${what}: not ${n} more answers within ${timeoutMs} ms ` +
          `(ping ${since.replies} -> ${now.replies}, streams ${since.echoed.join('/')} -> ${now.echoed.join('/')})`,
      );
    await sleep(50);
  }
}

// ---------------------------------------------------------------- UDP counter / sender

export interface UdpToolConfig {
  /** Count datagrams received on this port (bound to 0.0.0.0 before any address exists). */
  listen?: number;
  /** Send a datagram to each of these, to `port`, every `intervalMs`. */
  targets?: string[];
  port?: number;
  intervalMs?: number;
}

export interface UdpReport {
  /** Datagrams received, by source address. */
  received: Record<string, number>;
  /** Datagrams the kernel accepted to send / refused (no route, no address…). */
  sent: number;
  sendErrors: number;
}

/** The program: plain Node, given its config as argv[1] (JSON). */
const UDP_TOOL = String.raw`
const dgram = require('node:dgram');
const readline = require('node:readline');
const cfg = JSON.parse(process.argv[1]);
const rep = { received: {}, sent: 0, sendErrors: 0 };
if (cfg.listen) {
  const srv = dgram.createSocket('udp4');
  srv.on('message', (_m, r) => { rep.received[r.address] = (rep.received[r.address] || 0) + 1; });
  srv.on('error', (e) => { process.stderr.write('listen: ' + e.message + '\n'); process.exit(3); });
  srv.bind(cfg.listen, '0.0.0.0', () => process.stdout.write('{"ready":true}\n'));
} else process.stdout.write('{"ready":true}\n');
if (cfg.targets && cfg.targets.length) {
  let sock = dgram.createSocket('udp4');
  sock.on('error', () => undefined);
  const payload = Buffer.from('tortie-resilience');
  setInterval(() => {
    for (const t of cfg.targets) {
      try {
        sock.send(payload, cfg.port, t, (err) => { if (err) rep.sendErrors++; else rep.sent++; });
      } catch (e) { rep.sendErrors++; }
    }
  }, cfg.intervalMs || 10);
}
const rl = readline.createInterface({ input: process.stdin });
rl.on('line', () => process.stdout.write(JSON.stringify(rep) + '\n'));
rl.on('close', () => process.exit(0));
`;

export interface UdpTool {
  readonly child: ChildProcess;
  report(): Promise<UdpReport>;
  stop(): Promise<UdpReport>;
}

export async function startUdpTool(netns: string, cfg: UdpToolConfig): Promise<UdpTool> {
  const child = spawn(
    'nsenter',
    [`--net=${netns}`, process.execPath, '-e', UDP_TOOL, JSON.stringify(cfg)],
    {
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const waiters: ((line: string) => void)[] = [];
  const rl = createInterface({ input: child.stdout! });
  rl.on('line', (line) => waiters.shift()?.(line));
  const next = () =>
    new Promise<string>((resolve, reject) => {
      const t = setTimeout(
        () => reject(new Error(`udp tool in ${netns}: no answer ${stderr}`)),
        30_000,
      );
      waiters.push((l) => {
        clearTimeout(t);
        resolve(l);
      });
    });
  const ready = await next();
  if (!ready.includes('ready')) throw new Error(`udp tool in ${netns}: ${ready} ${stderr}`);
  let last: UdpReport = { received: {}, sent: 0, sendErrors: 0 };
  const report = async () => {
    const p = next();
    child.stdin!.write('report\n');
    last = JSON.parse(await p) as UdpReport;
    return last;
  };
  return {
    child,
    report,
    async stop() {
      const r = child.exitCode === null ? await report().catch(() => last) : last;
      const done = exited(child);
      child.stdin!.end();
      const t = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await done;
      clearTimeout(t);
      return r;
    },
  };
}

// ---------------------------------------------------------------- tcpdump

export interface Capture {
  /** Stops tcpdump (SIGINT, the file is flushed). */
  stop(): Promise<void>;
  /** Packets in the file matching a tcpdump filter expression. */
  count(filter: string): Promise<number>;
  remove(): void;
}

/** `tcpdump -n -U -i <ifName> -w <file>` in `netns`; resolves once it is listening. */
export async function startCapture(
  netns: string,
  ifName: string,
  dirPrefix: string,
): Promise<Capture> {
  const dir = mkdtempSync(join(tmpdir(), dirPrefix));
  const file = join(dir, 'cap.pcap');
  const child = spawn(
    'nsenter',
    [`--net=${netns}`, 'tcpdump', '-n', '-U', '-i', ifName, '-w', file, 'not arp'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  await eventually(
    `tcpdump listening on ${ifName} in ${netns}`,
    () => {
      if (child.exitCode !== null) throw new Error(`tcpdump exited: ${stderr}`);
      return /listening on/.test(stderr);
    },
    60_000,
    20,
  );
  return {
    async stop() {
      await killAndWait(child, 'SIGINT');
    },
    async count(filter: string) {
      if (!existsSync(file)) return 0;
      const r = await execIn(undefined, 'tcpdump', ['-n', '-r', file, filter]);
      if (r.code !== 0) throw new Error(`tcpdump -r ${file} ${filter}: ${r.stderr}`);
      return r.stdout.split('\n').filter((l) => l.trim() !== '').length;
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------- etcd

/** The client URL of the member that leads the cluster, from each member's status. */
export async function etcdLeader(
  members: readonly { name: string; clientUrl: string }[],
): Promise<{ name: string; clientUrl: string; memberId: string }> {
  for (const m of members) {
    try {
      const res = await fetch(`${m.clientUrl}/v3/maintenance/status`, {
        method: 'POST',
        body: '{}',
        signal: AbortSignal.timeout(10_000),
      });
      const s = (await res.json()) as { leader?: string; header?: { member_id?: string } };
      if (s.leader !== undefined && s.leader === s.header?.member_id)
        return { name: m.name, clientUrl: m.clientUrl, memberId: s.leader };
    } catch {
      /* down or busy: ask the next */
    }
  }
  throw new Error(`no etcd member says it is the leader`);
}

/** A process that runs `sh -c script` in `netns`, in its own process group. */
export function startShellIn(
  netns: string,
  script: string,
): ChildProcess & { output: () => string } {
  const child = spawn('nsenter', [`--net=${netns}`, 'sh', '-c', script], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  return Object.assign(child, { output: () => out });
}

/** Sends `signal` to the process group of a child started with startShellIn; waits for it. */
export async function stopGroup(child: ChildProcess, signal: NodeJS.Signals = 'SIGINT') {
  // 'close': the group's members (ping) share the pipes; all of them have gone.
  const done =
    child.stdout === null || child.stdout.closed
      ? exited(child)
      : new Promise<void>((resolve) => child.once('close', () => resolve()));
  try {
    process.kill(-child.pid!, signal);
  } catch {
    /* gone */
  }
  const t = setTimeout(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
  }, 30_000);
  await done;
  clearTimeout(t);
}
