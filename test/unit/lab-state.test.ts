/**
 * The state file of a persistent lab keeps every setting a reopened lab needs — routing,
 * BGP hold time, the ToR, encap, dataplane, endpoint-to-host action, etcd TLS — and a
 * state file written before those fields existed still loads, with what that tortie
 * found on the machine. Pure: no files, no root.
 */
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_BGP_HOLD_TIME_SECONDS,
  labSettings,
  labState,
  parseState,
  stateText,
  type LabSettings,
  type LabState,
  type LegacyClues,
} from '../../src/lab/cluster/state.js';
import { torOf } from '../../src/lab/cluster/tor.js';

const id = 'st1';
const workDir = `/run/tortie/labs/${id}`;

const etcd: LabState['etcd'] = {
  endpoints: ['http://127.0.0.1:23791'],
  baseDir: `${workDir}/etcd`,
  initialCluster: `tortie-${id}-etcd0=http://127.0.0.1:23792`,
  token: `tortie-${id}`,
  members: [
    {
      name: `tortie-${id}-etcd0`,
      clientUrl: 'http://127.0.0.1:23791',
      peerUrl: 'http://127.0.0.1:23792',
      dataDir: `${workDir}/etcd/m0`,
      logFile: `${workDir}/etcd/tortie-${id}-etcd0.log`,
      pid: 4242,
    },
  ],
};

function roundTrip(settings: LabSettings): LabSettings {
  const state = labState({
    id,
    createdAt: '2026-12-07T01:00:00.000Z',
    settings,
    workDir,
    cniShim: `${workDir}/bin/tortie`,
    nodes: [
      {
        name: `${id}-n0`,
        netnsName: `tortie-${id}-n0`,
        netns: `/run/netns/tortie-${id}-n0`,
        underlayIp: `${settings.underlay}.1`,
        pinRoot: `/sys/fs/bpf/tortie-${id}-n0`,
        agentPid: 4343,
        agentLog: `${workDir}/logs/agent-${id}-n0.log`,
      },
    ],
    etcd,
    pods: [],
  });
  const read = parseState(stateText(state), id);
  return labSettings(read, () => {
    throw new Error('a state file with its settings needs no clues from the machine');
  });
}

describe('lab state file', () => {
  it('keeps routing bgp, the hold time, the ToR, iptables/vxlan, the endpoint-to-host action and etcd TLS', () => {
    const settings: LabSettings = {
      encap: 'vxlan',
      underlay: '192.168.77',
      podCidr: '10.77.0.0/16',
      dataplane: 'iptables',
      endpointToHostAction: 'Accept',
      routing: 'bgp',
      bgpHoldTimeSeconds: 9,
      tor: torOf(id, '192.168.77', workDir),
      etcdTls: {
        dir: `${workDir}/tls`,
        ca: `${workDir}/tls/ca.pem`,
        serverCert: `${workDir}/tls/server.pem`,
        serverKey: `${workDir}/tls/server-key.pem`,
        clientCert: `${workDir}/tls/client.pem`,
        clientKey: `${workDir}/tls/client-key.pem`,
      },
    };
    expect(roundTrip(settings)).toEqual(settings);
  });

  it('keeps the defaults: static routing, no ToR, the BPF dataplane, no TLS', () => {
    const settings: LabSettings = {
      encap: 'ipip',
      underlay: '192.168.231',
      podCidr: '10.231.0.0/16',
      dataplane: 'bpf',
      endpointToHostAction: undefined,
      routing: 'static',
      bgpHoldTimeSeconds: DEFAULT_BGP_HOLD_TIME_SECONDS,
      tor: undefined,
      etcdTls: undefined,
    };
    expect(roundTrip(settings)).toEqual(settings);
  });

  it('a routing-bgp lab without a ToR does not turn into one with a ToR, whatever is on the machine', () => {
    const settings: LabSettings = {
      encap: 'ipip',
      underlay: '192.168.231',
      podCidr: '10.231.0.0/16',
      dataplane: 'bpf',
      endpointToHostAction: undefined,
      routing: 'bgp',
      bgpHoldTimeSeconds: 30,
      tor: undefined,
      etcdTls: undefined,
    };
    expect(roundTrip(settings)).toEqual(settings);
  });

  // A state file as a tortie before these fields wrote it (version 1, no routing, hold time, ToR).
  const old = {
    version: 1,
    id,
    createdAt: '2026-11-01T10:00:00.000Z',
    encap: 'ipip',
    underlay: '192.168.231',
    podCidr: '10.231.0.0/16',
    stateDir: workDir,
    workDir,
    configFile: `${workDir}/tortie.yaml`,
    cniShim: `${workDir}/bin/tortie`,
    etcdPrefix: `/tortie-${id}`,
    nodes: [],
    etcd,
    pods: [],
  };

  it.each<[string, LegacyClues, Pick<LabSettings, 'routing' | 'tor'>]>([
    [
      'no BIRD run dir, no ToR',
      { birdRunDir: false, tor: false },
      { routing: 'static', tor: undefined },
    ],
    [
      'a BIRD run dir and a ToR',
      { birdRunDir: true, tor: true },
      { routing: 'bgp', tor: torOf(id, '192.168.231', workDir) },
    ],
  ])(
    'an older state file still loads (%s): the settings as that tortie found them',
    (_, clues, found) => {
      const read = parseState(JSON.stringify(old), id);
      expect(labSettings(read, () => clues)).toEqual({
        encap: 'ipip',
        underlay: '192.168.231',
        podCidr: '10.231.0.0/16',
        dataplane: 'bpf',
        endpointToHostAction: undefined,
        bgpHoldTimeSeconds: DEFAULT_BGP_HOLD_TIME_SECONDS,
        etcdTls: undefined,
        ...found,
      });
    },
  );

  it('refuses a state file of another lab, or of another version, saying how to remove the lab', () => {
    expect(() => parseState(JSON.stringify({ ...old, id: 'other' }), id)).toThrow(
      `tortie lab down --id ${id}`,
    );
    expect(() => parseState(JSON.stringify({ ...old, version: 2 }), id)).toThrow(/version 2/);
    expect(() => parseState('{', id)).toThrow(/not valid JSON/);
  });
});
