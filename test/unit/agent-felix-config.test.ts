/**
 * FelixConfiguration and AgentConfiguration as the agent takes them (src/agent/
 * felix-config.ts): `node.<name>` over `default` field by field, tortie's own kind over
 * Calico's at the same level, local settings over both; every Felix field in one group;
 * unknown and unimplemented fields listed, unusable values listed and not applied.
 * Pure: no etcd, no root.
 */
import { describe, expect, it } from 'vitest';
import { agentConfig, resolveAgentConfig } from '../../src/agent/config.js';
import {
  durationSeconds,
  felixFieldGroup,
  felixFieldsByGroup,
  liveSettings,
  orderLayers,
  readConfigLayers,
  startingConfig,
  storeSettings,
  type ConfigLayer,
} from '../../src/agent/felix-config.js';
import { configLines } from '../../src/agent/status.js';
import { FELIX_FIELDS } from '../../src/datastore/schema/calico-config.js';
import { validateObject } from '../../src/datastore/schema/index.js';

const NODE = 'n1';
const local = agentConfig({ nodeName: NODE, etcd: { endpoints: ['http://127.0.0.1:2379'] } });

function felix(name: string, spec: Record<string, unknown>): ConfigLayer {
  return { kind: 'FelixConfiguration', name, spec };
}
function agentConf(name: string, spec: Record<string, unknown>): ConfigLayer {
  return { kind: 'AgentConfiguration', name, spec };
}
function settle(...layers: ConfigLayer[]) {
  return storeSettings(orderLayers(NODE, layers));
}

describe('FelixConfiguration default and node.<name>', () => {
  it('the node object wins field by field; the default fills in the rest', () => {
    const s = settle(
      felix('default', { logSeverityScreen: 'Warning', reportingInterval: '30s' }),
      felix(`node.${NODE}`, { logSeverityScreen: 'Debug' }),
    );
    expect(s.values).toEqual({ logLevel: 'debug', reportIntervalSeconds: 30 });
    expect(s.from).toEqual({
      logLevel: 'FelixConfiguration node.n1: logSeverityScreen',
      reportIntervalSeconds: 'FelixConfiguration default: reportingInterval',
    });
    expect(s.sources).toEqual(['FelixConfiguration node.n1', 'FelixConfiguration default']);
  });

  it("another node's object is not read", () => {
    const s = settle(felix('node.other', { logSeverityScreen: 'Debug' }));
    expect(s.values).toEqual({});
    expect(s.sources).toEqual([]);
  });

  it("tortie's AgentConfiguration wins over FelixConfiguration at the same level, and a node's Felix object over the AgentConfiguration default", () => {
    const s = settle(
      felix('default', { logSeverityScreen: 'Error', bpfEnabled: false }),
      agentConf('default', { logLevel: 'warn', dataplane: 'bpf', healthPort: 9100 }),
      felix(`node.${NODE}`, { healthPort: 9200 }),
    );
    expect(s.values).toMatchObject({ logLevel: 'warn', dataplane: 'bpf', healthPort: 9200 });
    expect(s.from.healthPort).toBe('FelixConfiguration node.n1: healthPort');
  });

  it('lists fields set but not implemented, unknown names among them, once each', () => {
    const s = settle(
      felix('default', { wireguardEnabled: true, failsafeInboundHostPorts: [] }),
      felix(`node.${NODE}`, { wireguardEnabled: false, someFutureField: 1 }),
      agentConf('default', { metricsPort: 9091 }),
    );
    expect(s.notImplemented).toEqual([
      'AgentConfiguration.metricsPort',
      'someFutureField',
      'wireguardEnabled',
    ]);
  });

  it('a value tortie cannot use is listed and not applied: the next layer or the local value stands', () => {
    const s = settle(
      felix('default', { reportingInterval: '0s', logSeverityScreen: 'Info' }),
      felix(`node.${NODE}`, { logSeverityScreen: 'Loud' }),
    );
    expect(s.values).toEqual({ logLevel: 'info' });
    expect(s.invalid).toEqual([
      {
        field: 'FelixConfiguration node.n1: logSeverityScreen',
        value: 'Loud',
        problem: 'not one of trace, debug, info, warn, error, fatal',
      },
      {
        field: 'FelixConfiguration default: reportingInterval',
        value: '0s',
        problem: 'tortie always reports (0, off, is not supported)',
      },
    ]);
  });

  it("fixed fields: tortie's own value is accepted, another is not applicable", () => {
    const s = settle(felix('default', { vxlanVNI: 4096, vxlanPort: 4790, ipv6Support: false }));
    expect(s.fixed.map((f) => f.field)).toEqual(['vxlanVNI', 'ipv6Support']);
    expect(s.invalid).toEqual([
      {
        field: 'FelixConfiguration default: vxlanPort',
        value: 4790,
        problem: "not applicable: tortie's VXLAN port is 4789",
      },
    ]);
  });

  it('natOutgoingAddress and natPortRange as Calico writes them', () => {
    expect(
      settle(felix('default', { natOutgoingAddress: '192.168.1.5', natPortRange: '32768:65535' }))
        .values,
    ).toEqual({ natOutgoingAddress: '192.168.1.5', natPortRange: '32768-65535' });
    expect(settle(felix('default', { natPortRange: 5000 })).values).toEqual({
      natPortRange: '5000-5000',
    });
    expect(
      settle(felix('default', { natOutgoingAddress: 'fd00::1', natPortRange: '9:1' })).invalid.map(
        (i) => i.problem,
      ),
    ).toEqual(['IPv6: tortie runs IPv4 only', 'not a port range such as 32768:65535']);
  });

  it('empty strings are unset (Felix omitempty)', () => {
    expect(settle(felix('default', { bpfLogLevel: '', logSeverityScreen: '' })).values).toEqual({});
  });

  it('reads Go durations and numbers of seconds', () => {
    expect(durationSeconds('30s')).toBe(30);
    expect(durationSeconds('1m30s')).toBe(90);
    expect(durationSeconds('1.5h')).toBe(5400);
    expect(durationSeconds('500ms')).toBe(0.5);
    expect(durationSeconds(45)).toBe(45);
    expect(durationSeconds('0')).toBe(0);
    expect(durationSeconds('30')).toBeUndefined();
    expect(durationSeconds('soon')).toBeUndefined();
  });
});

describe('precedence over the local settings', () => {
  it('a flag, the environment or the file wins over the datastore, and the report says so', () => {
    const flagged = resolveAgentConfig({
      hostname: NODE,
      env: { TORTIE_REPORT_INTERVAL: '5' },
      flags: { logLevel: 'warn' },
      file: { healthPort: 9300 },
      fileName: 'agent.yaml',
    });
    expect(flagged.localSettings).toEqual({
      logLevel: '--log-level',
      reportIntervalSeconds: 'TORTIE_REPORT_INTERVAL',
      healthPort: 'agent.yaml: healthPort',
    });
    const store = settle(
      felix('default', { logSeverityScreen: 'Debug', reportingInterval: '1m', healthPort: 9099 }),
    );
    const running = startingConfig(flagged, store);
    expect([running.logLevel, running.reportIntervalSeconds, running.healthPort]).toEqual([
      'warn',
      5,
      9300,
    ]);
    const { live, report } = liveSettings(flagged, running, store);
    expect(live).toEqual({
      logLevel: 'warn',
      reportIntervalSeconds: 5,
      natOutgoingAddress: undefined,
      natPortRange: undefined,
      ipipMtu: undefined,
      xdpEnabled: true,
      genericXdpEnabled: false,
    });
    expect(report.applied).toEqual({});
    expect(report.overridden.map((o) => `${o.setting}: ${o.by}`)).toEqual([
      'logLevel: --log-level',
      'reportIntervalSeconds: TORTIE_REPORT_INTERVAL',
      'healthPort: agent.yaml: healthPort',
    ]);
  });

  it('settings not given locally start from the datastore, restart ones included', () => {
    const store = settle(
      felix('default', {
        bpfEnabled: false,
        defaultEndpointToHostAction: 'ACCEPT',
        bpfLogLevel: 'Debug',
        reportingTTL: '90s',
      }),
    );
    const running = startingConfig(local, store);
    expect(running.dataplane).toBe('iptables');
    expect(running.defaultEndpointToHostAction).toBe('Accept');
    expect(running.traceVerdicts).toBe(true);
    expect(running.heartbeatTtlSeconds).toBe(90);
    const { report } = liveSettings(local, running, store);
    expect(Object.keys(report.applied).sort()).toEqual([
      'dataplane',
      'defaultEndpointToHostAction',
      'heartbeatTtlSeconds',
      'traceVerdicts',
    ]);
    expect(report.restartNeeded).toEqual([]);
  });

  it('live settings follow the datastore; a restart setting changed while running waits for the next start', () => {
    const running = startingConfig(local, settle());
    const store = settle(
      felix('default', { logSeverityScreen: 'Debug', defaultEndpointToHostAction: 'Accept' }),
    );
    const { live, report } = liveSettings(local, running, store);
    expect(live.logLevel).toBe('debug');
    expect(report.applied.logLevel).toEqual({
      value: 'debug',
      from: 'FelixConfiguration default: logSeverityScreen',
    });
    expect(report.restartNeeded).toEqual([
      {
        setting: 'defaultEndpointToHostAction',
        from: 'FelixConfiguration default: defaultEndpointToHostAction',
        running: 'Drop',
        configured: 'Accept',
      },
    ]);
  });

  it('a field removed from the datastore: live settings go back to the local value, restart ones say so', () => {
    const running = startingConfig(
      local,
      settle(felix('default', { logSeverityScreen: 'Debug', bpfEnabled: false })),
    );
    const { live, report } = liveSettings(local, running, settle());
    expect(live.logLevel).toBe('info');
    expect(report.restartNeeded).toEqual([
      {
        setting: 'dataplane',
        from: 'the default (no longer in the datastore)',
        running: 'iptables',
        configured: 'bpf',
      },
    ]);
  });

  it("the lab's and tests' agentConfig() settings count as local", () => {
    const c = agentConfig({
      nodeName: NODE,
      etcd: { endpoints: [] },
      healthPort: 0,
      reportIntervalSeconds: 1,
    });
    expect(c.localSettings).toEqual({
      healthPort: "the agent's options",
      reportIntervalSeconds: "the agent's options",
    });
  });
});

describe('every Felix field', () => {
  it('a FelixConfiguration with every field of Calico (v3.28 and later) is accepted as written', () => {
    const spec = Object.fromEntries(FELIX_FIELDS.map((f) => [f, 'x']));
    const r = validateObject({
      apiVersion: 'projectcalico.org/v3',
      kind: 'FelixConfiguration',
      metadata: { name: 'default' },
      spec,
    });
    expect(r.ok ? [] : r.details.map((d) => d.message)).toEqual([]);
    for (const f of [
      'bpfKubeProxyEndpointSlicesEnabled',
      'iptablesLockFilePath',
      'iptablesLockTimeout',
    ])
      expect(FELIX_FIELDS).toContain(f);
  });

  it('field names are matched in any case and stored in Calico spelling', () => {
    const r = validateObject({
      apiVersion: 'projectcalico.org/v3',
      kind: 'FelixConfiguration',
      metadata: { name: 'default' },
      spec: { LogSeverityScreen: 'Debug', bpfenabled: true },
    });
    expect(r.ok && r.object.spec).toEqual({ logSeverityScreen: 'Debug', bpfEnabled: true });
  });

  it('each is live, restart, fixed or not implemented (the counts the docs give)', () => {
    const groups = felixFieldsByGroup();
    const counts = Object.fromEntries(Object.entries(groups).map(([g, f]) => [g, f.length]));
    console.log(
      'Felix fields by group:',
      JSON.stringify(counts),
      JSON.stringify(groups.live),
      JSON.stringify(groups.restart),
      JSON.stringify(groups.fixed),
    );
    expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(FELIX_FIELDS.length);
    expect(groups.live).toEqual([
      'failsafeInboundHostPorts',
      'failsafeOutboundHostPorts',
      'genericXDPEnabled',
      'ipipMTU',
      'logSeverityScreen',
      'natOutgoingAddress',
      'natPortRange',
      'reportingInterval',
      'vxlanMTU',
      'xdpEnabled',
    ]);
    expect(felixFieldGroup('bpfEnabled')).toBe('restart');
    expect(felixFieldGroup('failsafeInboundHostPorts')).toBe('live');
    expect(felixFieldGroup('wireguardEnabled')).toBe('not implemented');
  });
});

describe('reading and showing', () => {
  it('reads the four objects of a node, highest precedence first', async () => {
    const stored: Record<string, { spec: unknown }> = {
      'FelixConfiguration/default': { spec: { logSeverityScreen: 'Info' } },
      'AgentConfiguration/node.n1': { spec: { logLevel: 'debug' } },
    };
    const layers = await readConfigLayers(
      { get: async (kind, name) => stored[`${kind}/${name}`] },
      NODE,
    );
    expect(layers.map((l) => `${l.kind} ${l.name}`)).toEqual([
      'AgentConfiguration node.n1',
      'FelixConfiguration default',
    ]);
  });

  it('tortie node status lists what is applied, what waits for a restart and what is ignored', () => {
    const running = startingConfig(local, settle());
    const { report } = liveSettings(
      local,
      running,
      settle(
        felix('default', {
          logSeverityScreen: 'Debug',
          bpfEnabled: false,
          wireguardEnabled: true,
          vxlanPort: 4790,
        }),
      ),
    );
    expect(configLines(report)).toEqual([
      'configuration     FelixConfiguration default',
      '  applied         logLevel debug (FelixConfiguration default: logSeverityScreen)',
      '  RESTART NEEDED  dataplane: running bpf, configured iptables (FelixConfiguration default: bpfEnabled)',
      "  not applicable  FelixConfiguration default: vxlanPort 4790: not applicable: tortie's VXLAN port is 4789",
      '  not implemented wireguardEnabled (accepted, ignored)',
    ]);
  });
});
