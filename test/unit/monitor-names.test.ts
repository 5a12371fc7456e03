import { describe, expect, it } from 'vitest';
import {
  describeEvent,
  formatRow,
  namesFromResources,
  NO_NAMES,
  parseRuleTable,
} from '../../src/cli/inspect.js';
import { ipToU32 } from '../../src/maps/addr.js';
import type { EventRecord } from '../../src/maps/structs.js';

const ev = (over: Partial<EventRecord> = {}): EventRecord =>
  ({
    ts_ns: 0n,
    type: 1,
    ifindex: 7,
    ep_id: 3,
    rule_id: 12,
    saddr: ipToU32('10.231.0.1'),
    daddr: ipToU32('10.231.0.66'),
    sport: 40000,
    dport: 80,
    proto: 6,
    reason: 0,
    dir: 1,
    action: 2,
    ...over,
  }) as EventRecord;

const { pods, nodes } = namesFromResources(
  [
    {
      metadata: { name: 'n0-k8s-a0-eth0', namespace: 'x' },
      spec: { workload: 'a0', ipNetworks: ['10.231.0.1/32'] },
    },
    {
      metadata: { name: 'n1-k8s-iso-eth0', namespace: 'x' },
      spec: { workload: 'iso', ipNetworks: ['10.231.0.66/32'] },
    },
  ],
  [{ metadata: { name: 'n0' }, spec: { bgp: { ipv4Address: '192.168.231.1/24' } } }],
);

describe('tortie monitor: naming events', () => {
  it('pods by address (namespace/workload), nodes by address', () => {
    expect([...pods]).toEqual([
      ['10.231.0.1', 'x/a0'],
      ['10.231.0.66', 'x/iso'],
    ]);
    expect([...nodes]).toEqual([['192.168.231.1', 'n0']]);
  });

  it('names source, destination, endpoint, interface and rule', () => {
    const names = {
      pods,
      nodes,
      ifaces: new Map([
        [7, { id: 2, ip: '10.231.0.1' }],
        [9, { id: 3, ip: '10.231.0.66' }],
      ]),
      uplinkIfindex: 4,
      rules: new Map([[12, 'x/deny-iso/ingress/default']]),
    };
    const row = describeEvent(ev(), names, new Date('2026-01-01T10:00:00.123Z'));
    expect(row).toMatchObject({
      time: '2026-01-01T10:00:00.123Z',
      type: 'drop',
      dir: 'to-pod',
      endpoint: 'x/iso',
      interface: 'x/a0',
      proto: 'tcp',
      src: 'x/a0 (10.231.0.1)',
      srcName: 'x/a0',
      dst: 'x/iso (10.231.0.66)',
      dstName: 'x/iso',
      sport: 40000,
      dport: 80,
      rule: 'x/deny-iso/ingress/default',
      ruleId: 12,
      action: 'deny',
    });
    expect(formatRow(row)).toContain('x/a0 (10.231.0.1):40000 -> x/iso (10.231.0.66):80');
    const fromNode = describeEvent(
      ev({ saddr: ipToU32('192.168.231.1'), ifindex: 4, ep_id: 0, rule_id: 0 }),
      names,
      new Date(0),
    );
    expect(fromNode).toMatchObject({
      src: 'node n0 (192.168.231.1)',
      interface: 'uplink',
      endpoint: null,
      rule: null,
    });
  });

  it('without names: bare addresses, endpoint and rule ids', () => {
    const row = describeEvent(ev(), NO_NAMES, new Date(0));
    expect(row).toMatchObject({
      src: '10.231.0.1',
      srcName: null,
      dst: '10.231.0.66',
      endpoint: 'ep 3',
      interface: 'if 7',
      rule: 'rule 12',
    });
  });

  it("reads the agent's /rules", () => {
    expect([
      ...parseRuleTable({ node: 'n0', rules: { '1': 'a', '2': 'b', x: 'c', '3': 4 } }),
    ]).toEqual([
      [1, 'a'],
      [2, 'b'],
    ]);
    expect(parseRuleTable(null).size).toBe(0);
  });
});
