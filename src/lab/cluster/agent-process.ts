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
import { pidAlive } from '../../util/proc.js';
import { nodeRunArgs, type LabAgentSettings } from './agent-settings.js';
import type { LabAgent } from './agents.js';

/** What the process runs with (./agent-settings.ts builds it). */
export type AgentProcessOptions = LabAgentSettings;

export type AgentWait = 'ready' | 'started' | 'none';

const READY_MSG = 'first sync programmed';
const STARTED_MSG = 'serving /healthz';

export class AgentProcess implements LabAgent {
  readonly kind = 'process' as const;
  private pidValue: number | undefined;
  /**
   * Not started, or stopped with `stop()` since: nothing will program a revision until
   * `start()` (an agent that crashed is not "stopped": a restart may follow).
   */
  private stopped = true;

  constructor(readonly options: AgentProcessOptions) {}

  /** The running agent's pid (undefined when it is not running). */
  get pid(): number | undefined {
    return this.pidValue !== undefined && alive(this.pidValue) ? this.pidValue : undefined;
  }

  /** Adopt an agent started earlier (by another process) from its pid. */
  static adopt(options: AgentProcessOptions, pid: number | undefined): AgentProcess {
    const a = new AgentProcess(options);
    if (pid !== undefined && alive(pid)) {
      a.pidValue = pid;
      a.stopped = false;
    }
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
    const args = [main, ...nodeRunArgs(o)];
    const fd = openSync(o.logFile, 'a');
    try {
      const child = spawn(process.execPath, args, {
        detached: true,
        stdio: ['ignore', fd, fd],
        env: labAgentEnv(process.env),
      });
      child.unref();
      if (child.pid === undefined) throw new Error(`could not start the agent of ${o.nodeName}`);
      this.pidValue = child.pid;
      this.stopped = false;
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
    this.stopped = true;
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
   * store `revision` (its /status `programmedRevision`); throws after `timeoutMs`, and at
   * once when the agent is stopped (not started, or `stop()` since).
   */
  async waitForRevision(revision: string | bigint, timeoutMs = 30_000): Promise<void> {
    const want = BigInt(revision);
    if (this.stopped)
      throw new Error(
        `agent of ${this.options.nodeName} is stopped: store revision ${want} cannot be programmed (start it first)`,
      );
    await this.untilStatus(
      timeoutMs,
      50,
      (body: { programmedRevision?: string }) =>
        body.programmedRevision !== undefined && BigInt(body.programmedRevision) >= want
          ? true
          : `programmed revision ${body.programmedRevision ?? '?'}`,
      (seen) =>
        `agent of ${this.options.nodeName}: store revision ${want} not programmed within ${timeoutMs} ms (${seen})`,
    );
  }

  /**
   * The Kubernetes datastore, where revisions are ordered per API resource only: resolves
   * once the running agent has programmed, for every kind in `want` (tortie's kind names:
   * K8sNetworkPolicy, WorkloadEndpoint, Namespace, …), a model holding every change of that
   * kind up to the given resourceVersion (its /status `programmedRevisions`); throws after
   * `timeoutMs`, and at once when the agent is stopped.
   */
  async waitForKindRevisions(want: ReadonlyMap<string, bigint>, timeoutMs = 30_000): Promise<void> {
    if (this.stopped)
      throw new Error(
        `agent of ${this.options.nodeName} is stopped: nothing will be programmed (start it first)`,
      );
    if (want.size === 0) return;
    await this.untilStatus(
      timeoutMs,
      25,
      (body: { programmedRevisions?: Record<string, string> }) => {
        const have = body.programmedRevisions;
        if (have === undefined) return 'its /status has no programmedRevisions';
        const behind = [...want].filter(([kind, rev]) => BigInt(have[kind] ?? '0') < rev);
        if (behind.length === 0) return true;
        return behind
          .map(([kind, rev]) => `${kind} at ${have[kind] ?? 'none'}, wanted ${rev}`)
          .join(', ');
      },
      (seen) =>
        `agent of ${this.options.nodeName}: not programmed within ${timeoutMs} ms (${seen})`,
    );
  }

  /**
   * Polls the running agent's /status every `intervalMs` until `judge` says true (else it
   * says what it saw); throws `late(what was seen last)` after `timeoutMs`.
   */
  private async untilStatus<T>(
    timeoutMs: number,
    intervalMs: number,
    judge: (body: T) => true | string,
    late: (seen: string) => string,
  ): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let seen = 'nothing';
    for (;;) {
      const url = this.pid === undefined ? undefined : this.healthUrl();
      if (url !== undefined) {
        try {
          const res = await fetch(`${url}/status`, { signal: AbortSignal.timeout(1000) });
          const verdict = judge((await res.json()) as T);
          if (verdict === true) return;
          seen = verdict;
        } catch (e) {
          seen = (e as Error).message;
        }
      } else seen = 'agent not running';
      if (Date.now() > deadline) throw new Error(late(seen));
      await sleep(intervalMs);
    }
  }

  /** Stops it at once (SIGKILL): what a failed build does. */
  kill(): Promise<void> {
    return this.stop('SIGKILL');
  }

  /** stop(signal) then start(wait): a restart on the same pins. */
  async restart(signal: NodeJS.Signals = 'SIGTERM', wait: AgentWait = 'ready'): Promise<number> {
    await this.stop(signal);
    return this.start(wait);
  }
}

/**
 * The environment of a lab's agent: this one without what would point it elsewhere than
 * its command line says — tortie's settings (TORTIE_*) and Calico's datastore ones
 * (DATASTORE_TYPE, KUBECONFIG: a user's real cluster).
 */
export function labAgentEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(env).filter(
      ([k]) =>
        // The CNI server's diagnostics pass through to the lab's agents.
        (!k.startsWith('TORTIE_') || k === 'TORTIE_CNI_TIMING' || k === 'TORTIE_CNI_ETCD_CLIENT') &&
        k !== 'DATASTORE_TYPE' &&
        k !== 'KUBECONFIG',
    ),
  );
}

/** true while `pid` exists and is not a zombie (src/util/proc.ts's pidAlive). */
export function alive(pid: number): boolean {
  return pidAlive(pid);
}

function tail(s: string, n = 3000): string {
  return s.length > n ? s.slice(-n) : s;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
