/**
 * A lab node's agent behind one handle, whether it runs inline (an `Agent` object in this
 * process: what the conformance and attack tests read directly) or as a process
 * (`tortie node run`, ./agent-process.ts: what persistent labs and restart checks need).
 * The lab waits for revisions and stops agents through the handle, never by asking which
 * kind it holds. Both kinds start from the same settings (./agent-settings.ts). A lab
 * node (`ClusterNode`) holds its agent's handle; its `agent` / `process` are views of it.
 */
import { Agent, silentLogger } from '../../agent/index.js';
import { serveForAgent, type CniServer } from '../../cni/server.js';
import { cmdline, otherPids, pidAlive } from '../../util/proc.js';
import { AgentProcess } from './agent-process.js';
import { inlineAgentConfig, type LabAgentSettings } from './agent-settings.js';
import type { PlumbedNode } from './underlay.js';

export interface LabAgent {
  readonly kind: 'inline' | 'process';
  /**
   * Resolves once the agent has programmed a model holding every store change up to
   * `revision`; rejects after `timeoutMs`.
   */
  waitForRevision(revision: string | bigint, timeoutMs?: number): Promise<void>;
  /** Stops the agent (a process: SIGTERM, SIGKILL after a grace). */
  stop(): Promise<void>;
  /** Stops it at once: what a failed build does (a process: SIGKILL). */
  kill(): Promise<void>;
}

/** An `Agent` running in this process. */
export class InlineLabAgent implements LabAgent {
  readonly kind = 'inline' as const;
  /** `stop()` was called: nothing will program a revision any more. */
  private stopped = false;
  constructor(
    readonly agent: Agent,
    /** Its CNI server (the plugin's end on this node), when the lab started one. */
    private readonly cni?: CniServer,
  ) {}

  waitForRevision(revision: string | bigint, timeoutMs?: number): Promise<void> {
    if (this.stopped)
      return Promise.reject(
        new Error(
          `agent of ${this.agent.config.nodeName} is stopped: store revision ${String(revision)} cannot be programmed (start it first)`,
        ),
      );
    return this.agent.waitForRevision(revision, timeoutMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.agent.stop();
    await this.cni?.close();
  }

  kill(): Promise<void> {
    return this.stop();
  }
}

/**
 * Starts an agent with `settings` and resolves once it is ready (its first sync
 * programmed). `verbose`: an inline agent logs to stdout (else silent); a process agent
 * always logs to `settings.logFile`.
 */
export async function startLabAgent(
  kind: 'inline' | 'process',
  settings: LabAgentSettings,
  verbose = false,
): Promise<LabAgent> {
  if (kind === 'inline') {
    const agent = await Agent.start(
      inlineAgentConfig(settings),
      verbose ? {} : { log: silentLogger() },
    );
    try {
      return new InlineLabAgent(
        agent,
        await serveForAgent(agent, settings.cniSocket, (m) => agent.log.warn(m)),
      );
    } catch (e) {
      await agent.stop();
      throw e;
    }
  }
  const p = new AgentProcess(settings);
  try {
    await p.start('ready');
  } catch (e) {
    await p.kill().catch(() => undefined);
    throw e;
  }
  return p;
}

export interface ClusterNode {
  readonly name: string;
  readonly netns: string; // path
  readonly underlayIp: string;
  readonly pinRoot: string;
  /** The node's agent, inline or a process (undefined: none started). */
  handle: LabAgent | undefined;
  /** The in-process agent ('inline' labs); setting it replaces the handle. */
  agent?: Agent;
  /** The agent process ('process' labs); setting it replaces the handle. */
  process?: AgentProcess;
}

/** A node: its place on the underlay and its agent's handle. */
export class LabNode implements ClusterNode {
  readonly name: string;
  readonly netns: string;
  readonly underlayIp: string;
  readonly pinRoot: string;
  handle: LabAgent | undefined;

  constructor(p: PlumbedNode) {
    this.name = p.name;
    this.netns = p.netns;
    this.underlayIp = p.underlayIp;
    this.pinRoot = p.pinRoot;
  }

  get agent(): Agent | undefined {
    return this.handle instanceof InlineLabAgent ? this.handle.agent : undefined;
  }

  set agent(a: Agent | undefined) {
    this.handle = a === undefined ? undefined : new InlineLabAgent(a);
  }

  get process(): AgentProcess | undefined {
    return this.handle instanceof AgentProcess ? this.handle : undefined;
  }

  set process(p: AgentProcess | undefined) {
    this.handle = p;
  }
}

/** The live agent process (`tortie node run … --pin-root <pinRoot>`), if any. */
export function findAgentPid(pinRoot: string): number | undefined {
  return otherPids().find((pid) => {
    const args = cmdline(pid);
    const i = args.indexOf('--pin-root');
    return i >= 0 && args[i + 1] === pinRoot && args.includes('run') && pidAlive(pid);
  });
}

export { AgentProcess, type AgentProcessOptions } from './agent-process.js';
