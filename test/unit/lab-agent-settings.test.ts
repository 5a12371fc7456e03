/**
 * One builder of a lab agent's settings, two ways to run it: an inline agent gets
 * `inlineAgentConfig(settings)`, a process agent `tortie node run <nodeRunArgs(settings)>`.
 * Read back through the agent's own flag resolution, the command line gives the same
 * configuration as the inline one — etcd deadline, timing, routing, dataplane, TLS and
 * labels included. Pure: no root, nothing started.
 */
import { describe, expect, it } from 'vitest';
import { resolveAgentConfig, type AgentFlags } from '../../src/agent/config.js';
import {
  inlineAgentConfig,
  LAB_AGENT_ETCD_TIMEOUT_MS,
  labAgentSettings,
  nodeRunArgs,
  type LabAgentContext,
} from '../../src/lab/cluster/agent-settings.js';

const node = {
  name: 'as1-n0',
  netns: '/run/netns/tortie-as1-n0',
  underlayIp: '192.168.231.1',
  pinRoot: '/sys/fs/bpf/tortie-as1-n0',
};

const plain: LabAgentContext = {
  id: 'as1',
  etcdEndpoints: ['http://127.0.0.1:23791', 'http://127.0.0.1:23793'],
  etcdTls: undefined,
  routing: 'static',
  bgpRunDir: '/tmp/tortie-cluster-as1-x/bird',
  bgpHoldTimeSeconds: 6,
  dataplane: 'bpf',
  endpointToHostAction: undefined,
};

const everything: LabAgentContext = {
  ...plain,
  etcdTls: {
    dir: '/run/tortie/labs/as1/tls',
    ca: '/run/tortie/labs/as1/tls/ca.pem',
    serverCert: '/run/tortie/labs/as1/tls/server.pem',
    serverKey: '/run/tortie/labs/as1/tls/server-key.pem',
    clientCert: '/run/tortie/labs/as1/tls/client.pem',
    clientKey: '/run/tortie/labs/as1/tls/client-key.pem',
  },
  routing: 'bgp',
  bgpHoldTimeSeconds: 9,
  dataplane: 'iptables',
  endpointToHostAction: 'Accept',
};

/** `tortie node run` arguments as the flags its action hands to resolveAgentConfig. */
function flagsOf(args: string[]): AgentFlags {
  expect(args.slice(0, 2)).toEqual(['node', 'run']);
  const flags: Record<string, string> = {};
  for (let i = 2; i < args.length; i += 2) {
    const name = args[i]!.replace(/^--/, '').replace(/-([a-z])/g, (_, c: string) =>
      c.toUpperCase(),
    );
    flags[name] = args[i + 1]!;
  }
  delete flags.agentConfig; // /dev/null: no file
  return flags as AgentFlags;
}

describe('lab agent settings', () => {
  it.each([
    ['a plain lab', plain, undefined],
    [
      'BGP, iptables, an endpoint-to-host action, etcd TLS and node labels',
      everything,
      { rack: 'r1' },
    ],
  ])('%s: the process agent resolves to the inline agent configuration', (_, lab, labels) => {
    const settings = labAgentSettings(lab, node, {
      logFile: '/tmp/agent.log',
      ...(labels === undefined ? {} : { labels }),
    });
    const inline = inlineAgentConfig(settings);
    const fromArgs = resolveAgentConfig({
      flags: flagsOf(nodeRunArgs(settings)),
      env: {},
      hostname: 'machine',
    });
    // The same settings given locally (the where differs: a flag, the agent's options).
    const sameLocal = (c: typeof inline) => ({
      ...c,
      localSettings: Object.keys(c.localSettings).sort(),
    });
    expect(sameLocal(fromArgs)).toEqual(sameLocal(inline));
    expect(inline.etcd.timeoutMs).toBe(LAB_AGENT_ETCD_TIMEOUT_MS);
    expect(inline.healthPort).toBe(0);
    expect(inline.etcd.prefix).toBe('/tortie-as1');
  });
});
