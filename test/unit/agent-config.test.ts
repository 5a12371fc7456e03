import { parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import {
  AgentConfigError,
  parseAgentConfigFile,
  resolveAgentConfig,
} from '../../src/agent/config.js';

describe('agent configuration', () => {
  it('defaults: hostname as node name, /sys/fs/bpf/tortie, health on 127.0.0.1:9099, local etcd', () => {
    const c = resolveAgentConfig({ hostname: 'Worker-1', env: {} });
    expect(c.nodeName).toBe('worker-1');
    expect(c.pinRoot).toBe('/sys/fs/bpf/tortie');
    expect(c.nodeNetns).toBeUndefined();
    expect(c.healthHost).toBe('127.0.0.1');
    expect(c.healthPort).toBe(9099);
    expect(c.etcd.endpoints).toEqual(['http://127.0.0.1:2379']);
    expect(c.ipv4Address).toBeUndefined();
    expect(c.heartbeatTtlSeconds).toBe(10);
  });

  it('a flag beats the environment, which beats the file, which beats the default — setting by setting', () => {
    const c = resolveAgentConfig({
      hostname: 'host',
      flags: { nodeName: 'from-flag' },
      env: {
        TORTIE_NODE_NAME: 'from-env',
        TORTIE_PIN_ROOT: '/sys/fs/bpf/env',
        TORTIE_HEALTH_PORT: '0',
      },
      file: {
        nodeName: 'from-file',
        pinRoot: '/sys/fs/bpf/file',
        healthPort: 9999,
        asNumber: 64512,
        etcdPrefix: '/lab',
      },
    });
    expect(c.nodeName).toBe('from-flag');
    expect(c.pinRoot).toBe('/sys/fs/bpf/env');
    expect(c.healthPort).toBe(0);
    expect(c.asNumber).toBe(64512);
    expect(c.etcd.prefix).toBe('/lab');
  });

  it("pods' tunnel traffic: refused by default, allowed by flag, environment or file (Calico's names)", () => {
    const d = resolveAgentConfig({ hostname: 'h', env: {} });
    expect([d.allowIPIPPacketsFromWorkloads, d.allowVXLANPacketsFromWorkloads]).toEqual([
      false,
      false,
    ]);
    const c = resolveAgentConfig({
      hostname: 'h',
      flags: { allowIpipPacketsFromWorkloads: 'true' },
      env: { TORTIE_ALLOW_VXLAN_PACKETS_FROM_WORKLOADS: 'TRUE' },
    });
    expect([c.allowIPIPPacketsFromWorkloads, c.allowVXLANPacketsFromWorkloads]).toEqual([
      true,
      true,
    ]);
    const f = resolveAgentConfig({
      hostname: 'h',
      env: {},
      file: parseAgentConfigFile('allowIPIPPacketsFromWorkloads: true\n', 'agent.yaml', parseYaml),
    });
    expect(f.allowIPIPPacketsFromWorkloads).toBe(true);
    expect(() =>
      resolveAgentConfig({
        hostname: 'h',
        env: {},
        flags: { allowIpipPacketsFromWorkloads: 'yes' },
      }),
    ).toThrow(/--allow-ipip-packets-from-workloads: "yes" is not true or false/);
  });

  it("defaultEndpointToHostAction: Calico's Drop unless flag, environment or file says Accept or Return", () => {
    expect(resolveAgentConfig({ hostname: 'h', env: {} }).defaultEndpointToHostAction).toBe('Drop');
    expect(
      resolveAgentConfig({
        hostname: 'h',
        flags: { defaultEndpointToHostAction: 'accept' },
        env: { TORTIE_DEFAULT_ENDPOINT_TO_HOST_ACTION: 'Return' },
      }).defaultEndpointToHostAction,
    ).toBe('Accept');
    expect(
      resolveAgentConfig({
        hostname: 'h',
        env: {},
        file: { defaultEndpointToHostAction: 'RETURN' },
      }).defaultEndpointToHostAction,
    ).toBe('Return');
    expect(() =>
      resolveAgentConfig({
        hostname: 'h',
        env: {},
        flags: { defaultEndpointToHostAction: 'Allow' },
      }),
    ).toThrow(/defaultEndpointToHostAction "Allow" is not one of Drop, Accept, Return/);
  });

  it('an empty environment variable counts as unset', () => {
    const c = resolveAgentConfig({
      hostname: 'h',
      env: { TORTIE_NODE_NAME: '' },
      file: { nodeName: 'f' },
    });
    expect(c.nodeName).toBe('f');
  });

  it('addresses take a /32 when given bare; labels and endpoints parse from text', () => {
    const c = resolveAgentConfig({
      hostname: 'h',
      flags: {
        ip: '192.168.1.5',
        labels: 'zone=a, rack=r1',
        etcdEndpoints: 'http://a:2379, http://b:2379',
      },
      env: {},
    });
    expect(c.ipv4Address).toBe('192.168.1.5/32');
    expect(c.labels).toEqual({ zone: 'a', rack: 'r1' });
    expect(c.etcd.endpoints).toEqual(['http://a:2379', 'http://b:2379']);
    expect(
      resolveAgentConfig({ hostname: 'h', env: { TORTIE_NODE_IP: '10.0.0.1/24' } }).ipv4Address,
    ).toBe('10.0.0.1/24');
  });

  it('the new-flow budget: none by default; a rate (and burst) by flag, environment or file; nonsense named', () => {
    expect(resolveAgentConfig({ hostname: 'h', env: {} }).ctNewFlowBudget).toBeUndefined();
    expect(
      resolveAgentConfig({
        hostname: 'h',
        flags: { ctNewFlowsPerSecond: '100' },
        env: { TORTIE_CT_NEW_FLOW_BURST: '1000' },
      }).ctNewFlowBudget,
    ).toEqual({ perSecond: 100, burst: 1000 });
    expect(
      resolveAgentConfig({ hostname: 'h', env: {}, file: { ctNewFlowsPerSecond: 0.5 } })
        .ctNewFlowBudget,
    ).toEqual({ perSecond: 0.5 });
    expect(() =>
      resolveAgentConfig({ hostname: 'h', env: {}, flags: { ctNewFlowsPerSecond: 'lots' } }),
    ).toThrow(/--ct-new-flows-per-second: "lots" is not a number of new flows per second/);
    expect(() =>
      resolveAgentConfig({ hostname: 'h', env: { TORTIE_CT_NEW_FLOW_BURST: '5' } }),
    ).toThrow(/TORTIE_CT_NEW_FLOW_BURST: a burst needs a rate/);
  });

  it('every bad setting is named with where it came from, all at once', () => {
    let err: unknown;
    try {
      resolveAgentConfig({
        hostname: 'h',
        flags: { ip: '300.1.1.1', healthPort: '70000' },
        env: { TORTIE_NODE_AS: 'x', TORTIE_LOG_LEVEL: 'loud' },
        file: { pinRoot: 'relative', labels: { 'bad key!': 'v' } },
        fileName: '/etc/tortie/agent.yaml',
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AgentConfigError);
    const problems = (err as AgentConfigError).problems.join('\n');
    expect(problems).toContain('--ip: "300.1.1.1" is not an IPv4 address');
    expect(problems).toContain('--health-port: "70000" is not an integer in 0..65535');
    expect(problems).toContain('TORTIE_NODE_AS: "x" is not an AS number');
    expect(problems).toContain('log level "loud"');
    expect(problems).toContain('pin root "relative" must be an absolute path');
    expect(problems).toContain('/etc/tortie/agent.yaml: labels: "bad key!" is not a label key');
  });

  it('the file: YAML, unknown keys refused by name', () => {
    expect(parseAgentConfigFile('nodeName: n1\nhealthPort: 0\n', 'a.yaml', parseYaml)).toEqual({
      nodeName: 'n1',
      healthPort: 0,
    });
    expect(() => parseAgentConfigFile('nodname: n1\n', 'a.yaml', parseYaml)).toThrow(
      /a.yaml: nodname: unknown setting/,
    );
    expect(() => parseAgentConfigFile('a: [', 'a.yaml', parseYaml)).toThrow(/not valid YAML/);
  });
});
