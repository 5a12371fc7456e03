/**
 * A lab agent's handle — a process (`AgentProcess`) or an in-process `Agent`
 * (`InlineLabAgent`) — answers at once when nothing can program a revision: after
 * `stop()`, `waitForRevision` rejects with what to do instead of waiting its whole
 * timeout. No root: nothing is started (the inline agent is a stand-in object that
 * records what it is asked).
 */
import { describe, expect, it } from 'vitest';
import type { Agent } from '../../src/agent/index.js';
import { AgentProcess } from '../../src/lab/cluster/agent-process.js';
import { labAgentSettings } from '../../src/lab/cluster/agent-settings.js';
import { InlineLabAgent } from '../../src/lab/cluster/agents.js';

const settings = labAgentSettings(
  {
    id: 'ap1',
    etcdEndpoints: ['http://127.0.0.1:1'],
    etcdTls: undefined,
    routing: 'static',
    bgpRunDir: '/nonexistent/bird',
    bgpHoldTimeSeconds: 6,
    dataplane: 'bpf',
    endpointToHostAction: undefined,
  },
  {
    name: 'ap1-n0',
    netns: '/run/netns/tortie-ap1-n0',
    underlayIp: '192.168.231.1',
    pinRoot: '/sys/fs/bpf/tortie-ap1-n0',
  },
  { logFile: '/nonexistent/agent-ap1-n0.log' },
);

describe('lab agent process handle', () => {
  it('waitForRevision after stop() rejects at once, naming the stopped agent', async () => {
    const agent = AgentProcess.adopt(settings, undefined);
    await agent.stop();
    // The wait's own timeout is far beyond the test's: only an immediate answer passes.
    await expect(agent.waitForRevision(7n, 10 * 60_000)).rejects.toThrow(
      'agent of ap1-n0 is stopped: store revision 7 cannot be programmed (start it first)',
    );
  }, 20_000);

  it('an inline agent: waitForRevision goes to the agent while it runs, and rejects at once after stop()', async () => {
    const asked: string[] = [];
    const agent = {
      config: { nodeName: 'ap1-n1' },
      waitForRevision: (revision: string | bigint) => {
        asked.push(`wait ${String(revision)}`);
        return Promise.resolve();
      },
      stop: () => {
        asked.push('stop');
        return Promise.resolve();
      },
    } as unknown as Agent;
    const handle = new InlineLabAgent(agent);
    await handle.waitForRevision(5n);
    await handle.stop();
    await expect(handle.waitForRevision(7n, 10 * 60_000)).rejects.toThrow(
      'agent of ap1-n1 is stopped: store revision 7 cannot be programmed (start it first)',
    );
    expect(asked).toEqual(['wait 5', 'stop']);
  });
});
