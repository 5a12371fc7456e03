/**
 * A lab node's agent behind one handle, whether it runs inline (an `Agent` object in this
 * process: what the conformance and attack tests read directly) or as a process
 * (`tortie node run`, ./agent-process.ts: what persistent labs and restart checks need).
 * The lab waits for revisions and stops agents through the handle, never by asking which
 * kind it holds. Both kinds start from the same settings (./agent-settings.ts).
 */
import { Agent, silentLogger } from '../../agent/index.js';
import { AgentProcess } from './agent-process.js';
import { inlineAgentConfig, type LabAgentSettings } from './agent-settings.js';

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
  constructor(readonly agent: Agent) {}

  waitForRevision(revision: string | bigint, timeoutMs?: number): Promise<void> {
    return this.agent.waitForRevision(revision, timeoutMs);
  }

  stop(): Promise<void> {
    return this.agent.stop();
  }

  kill(): Promise<void> {
    return this.agent.stop();
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
  if (kind === 'inline')
    return new InlineLabAgent(
      await Agent.start(inlineAgentConfig(settings), verbose ? {} : { log: silentLogger() }),
    );
  const p = new AgentProcess(settings);
  try {
    await p.start('ready');
  } catch (e) {
    await p.kill().catch(() => undefined);
    throw e;
  }
  return p;
}

export { AgentProcess, type AgentProcessOptions } from './agent-process.js';
