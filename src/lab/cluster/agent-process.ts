/**
 * A lab node's agent as a real process: `tortie node run --node-netns <node netns> …`,
 * detached, JSON logs appended to a file. A lab can stop it with SIGTERM or kill it with
 * SIGKILL and start it again on the same pins — which is what the restart and outage
 * checks do.
 *
 * The process itself stays in the machine's namespace, as the in-process agents do: it
 * reaches the lab's etcd on 127.0.0.1 and works on the node through `--node-netns` (links,
 * routes, tc attach by ifindex in that namespace). Its /healthz listens on a free port of
 * 127.0.0.1 (the URL is in its log and its NodeStatus).
 *
 * Readiness comes from the agent's own log lines:
 *   - "serving /healthz…"      → started (pins adopted, nothing written yet)
 *   - "first sync programmed"  → ready (the dataplane equals the store once)
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, statSync } from 'node:fs';
import { packagePath } from '../../util/package-root.js';

export interface AgentProcessOptions {
  readonly nodeName: string;
  /** Path of the node's network namespace (e.g. /run/netns/tortie-x-n0). */
  readonly nodeNetns: string;
  /** The node's underlay address with prefix length, e.g. 192.168.231.1/24. */
  readonly ipv4Address: string;
  readonly pinRoot: string;
  readonly etcdEndpoints: readonly string[];
  readonly etcdPrefix: string;
  /** `--etcd-ca-cert`, `--etcd-cert`, `--etcd-key`: etcd requires client certificates. */
  readonly etcdTls?: { readonly ca: string; readonly cert: string; readonly key: string };
  /** JSON log lines are appended here (kept across restarts). */
  readonly logFile: string;
  readonly heartbeatTtlSeconds?: number;
  readonly reportIntervalSeconds?: number;
  readonly debounceMs?: number;
  readonly logLevel?: 'debug' | 'info' | 'warn';
  /** `--routing` (absent: the agent's default, static). */
  readonly routing?: 'static' | 'bgp';
  /** `--bgp-run-dir`: where the node's BIRD keeps its files. */
  readonly bgpRunDir?: string;
  /** `--bgp-hold-time` in seconds. */
  readonly bgpHoldTimeSeconds?: number;
  /** `--dataplane` (absent: the agent's default, bpf). */
  readonly dataplane?: 'bpf' | 'iptables';
  /** `--default-endpoint-to-host-action` (absent: the agent's default, Drop). */
  readonly endpointToHostAction?: 'Drop' | 'Accept' | 'Return';
  /** `--labels k=v,…`: labels the agent merges into its Node (absent: none given). */
  readonly labels?: Readonly<Record<string, string>>;
}

export type AgentWait = 'ready' | 'started' | 'none';

const READY_MSG = 'first sync programmed';
const STARTED_MSG = 'serving /healthz';

export class AgentProcess {
  private pidValue: number | undefined;

  constructor(readonly options: AgentProcessOptions) {}

  /** The running agent's pid (undefined when it is not running). */
  get pid(): number | undefined {
    return this.pidValue !== undefined && alive(this.pidValue) ? this.pidValue : undefined;
  }

  /** Adopt an agent started earlier (by another process) from its pid. */
  static adopt(options: AgentProcessOptions, pid: number | undefined): AgentProcess {
    const a = new AgentProcess(options);
    if (pid !== undefined && alive(pid)) a.pidValue = pid;
    return a;
  }

  /**
   * Starts the agent detached from this process (it outlives a CLI that ran `lab up`),
   * and waits for `wait` in its log (default: ready). Throws with the log's tail when it
   * exits first or does not get there within `timeoutMs`.
   */
  async start(wait: AgentWait = 'ready', timeoutMs = 30_000): Promise<number> {
    if (this.pid !== undefined)
      throw new Error(`agent of ${this.options.nodeName} is already running (pid ${this.pid})`);
    const main = packagePath('dist', 'bin', 'tortie.js');
    if (!existsSync(main)) throw new Error(`${main} is missing: run "npm run build" first`);
    const o = this.options;
    const from = existsSync(o.logFile) ? statSync(o.logFile).size : 0;
    const args = [
      main,
      'node',
      'run',
      '--node-name',
      o.nodeName,
      '--ip',
      o.ipv4Address,
      '--pin-root',
      o.pinRoot,
      '--node-netns',
      o.nodeNetns,
      '--health-port',
      '0',
      '--heartbeat-ttl',
      String(o.heartbeatTtlSeconds ?? 5),
      '--report-interval',
      String(o.reportIntervalSeconds ?? 1),
      '--debounce-ms',
      String(o.debounceMs ?? 10),
      '--log-level',
      o.logLevel ?? 'info',
      '--etcd-endpoints',
      o.etcdEndpoints.join(','),
      '--etcd-prefix',
      o.etcdPrefix,
      ...(o.etcdTls === undefined
        ? []
        : [
            '--etcd-ca-cert',
            o.etcdTls.ca,
            '--etcd-cert',
            o.etcdTls.cert,
            '--etcd-key',
            o.etcdTls.key,
          ]),
      // No /etc/tortie/agent.yaml of the machine leaks into a lab node.
      '--agent-config',
      '/dev/null',
      ...(o.routing === undefined ? [] : ['--routing', o.routing]),
      ...(o.dataplane === undefined ? [] : ['--dataplane', o.dataplane]),
      ...(o.endpointToHostAction === undefined
        ? []
        : ['--default-endpoint-to-host-action', o.endpointToHostAction]),
      ...(o.bgpRunDir === undefined ? [] : ['--bgp-run-dir', o.bgpRunDir]),
      ...(o.bgpHoldTimeSeconds === undefined
        ? []
        : ['--bgp-hold-time', String(o.bgpHoldTimeSeconds)]),
      ...(o.labels === undefined || Object.keys(o.labels).length === 0
        ? []
        : [
            '--labels',
            Object.entries(o.labels)
              .map(([k, v]) => `${k}=${v}`)
              .join(','),
          ]),
    ];
    const fd = openSync(o.logFile, 'a');
    try {
      const child = spawn(process.execPath, args, {
        detached: true,
        stdio: ['ignore', fd, fd],
      });
      child.unref();
      if (child.pid === undefined) throw new Error(`could not start the agent of ${o.nodeName}`);
      this.pidValue = child.pid;
    } finally {
      closeSync(fd);
    }
    if (wait !== 'none') await this.waitFor(wait, from, timeoutMs);
    return this.pidValue;
  }

  /** Waits until the log (from byte `from` on) shows `wait`; throws if the agent exits. */
  async waitFor(wait: Exclude<AgentWait, 'none'>, from = 0, timeoutMs = 30_000): Promise<void> {
    const msg = wait === 'ready' ? READY_MSG : STARTED_MSG;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const text = this.logSince(from);
      if (text.includes(`"msg":"${msg}`)) return;
      if (this.pid === undefined)
        throw new Error(`agent of ${this.options.nodeName} exited before "${msg}":\n${tail(text)}`);
      if (Date.now() > deadline)
        throw new Error(
          `agent of ${this.options.nodeName}: no "${msg}" within ${timeoutMs} ms:\n${tail(text)}`,
        );
      await sleep(50);
    }
  }

  /** Current size of the log, to wait for lines written after a point. */
  logOffset(): number {
    return existsSync(this.options.logFile) ? statSync(this.options.logFile).size : 0;
  }

  logSince(from: number): string {
    if (!existsSync(this.options.logFile)) return '';
    return readFileSync(this.options.logFile).subarray(from).toString('utf8');
  }

  /**
   * Sends `signal` and waits for the process to be gone (SIGKILL after `graceMs` when a
   * SIGTERM is not enough). Resolves at once when it is not running.
   */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 6000): Promise<void> {
    const pid = this.pid;
    if (pid === undefined) return;
    try {
      process.kill(pid, signal);
    } catch {
      /* gone */
    }
    const deadline = Date.now() + graceMs;
    while (alive(pid)) {
      if (Date.now() > deadline) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      await sleep(20);
    }
    this.pidValue = undefined;
  }

  /** The agent's ops server URL, from the last "serving /healthz" line of its log. */
  healthUrl(): string | undefined {
    const text = this.logSince(0);
    const at = text.lastIndexOf(`"msg":"${STARTED_MSG}`);
    if (at < 0) return undefined;
    const line = text.slice(text.lastIndexOf('\n', at) + 1, at);
    return /"url":"([^"]+)"/.exec(line)?.[1];
  }

  /**
   * Resolves once the running agent has programmed a model holding every change up to
   * store `revision` (its /status `programmedRevision`); throws after `timeoutMs`.
   */
  async waitForRevision(revision: string | bigint, timeoutMs = 30_000): Promise<void> {
    const want = BigInt(revision);
    const deadline = Date.now() + timeoutMs;
    let seen = 'nothing';
    for (;;) {
      const url = this.pid === undefined ? undefined : this.healthUrl();
      if (url !== undefined) {
        try {
          const res = await fetch(`${url}/status`, { signal: AbortSignal.timeout(1000) });
          const body = (await res.json()) as { programmedRevision?: string };
          seen = `programmed revision ${body.programmedRevision ?? '?'}`;
          if (body.programmedRevision !== undefined && BigInt(body.programmedRevision) >= want)
            return;
        } catch (e) {
          seen = (e as Error).message;
        }
      } else seen = 'agent not running';
      if (Date.now() > deadline)
        throw new Error(
          `agent of ${this.options.nodeName}: store revision ${want} not programmed within ${timeoutMs} ms (${seen})`,
        );
      await sleep(50);
    }
  }

  /** stop(signal) then start(wait): a restart on the same pins. */
  async restart(signal: NodeJS.Signals = 'SIGTERM', wait: AgentWait = 'ready'): Promise<number> {
    await this.stop(signal);
    return this.start(wait);
  }
}

/** true while `pid` exists and is not a zombie. */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // state is the field after the parenthesised command name
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

function tail(s: string, n = 3000): string {
  return s.length > n ? s.slice(-n) : s;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
