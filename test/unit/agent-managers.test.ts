import { describe, expect, it } from 'vitest';
import { agentConfig } from '../../src/agent/config.js';
import { chooseManagers, type Dataplane } from '../../src/agent/managers/index.js';
import {
  captureLogger,
  SoftNetns,
  SoftPolicyDataplane,
  softContext,
} from '../helpers/softdataplane.js';

/** Enough of NodeDataplane for building the managers (nothing is written). */
function bpf(): Dataplane {
  const soft = new SoftPolicyDataplane();
  return {
    kind: 'bpf',
    dp: { dp: { maps: soft.maps, views: { routes: { entries: () => [] } } } } as never,
  };
}

function iptables(): Dataplane {
  return {
    kind: 'iptables',
    ipt: { current: () => ({ chains: new Map(), hooks: new Set(), sets: new Map() }) } as never,
  };
}

const names = (routing: 'static' | 'bgp', dataplane: Dataplane) =>
  chooseManagers(
    agentConfig({ nodeName: 'node-a', etcd: { endpoints: ['http://127.0.0.1:1'] }, routing }),
    dataplane,
    softContext(captureLogger().log),
    new SoftNetns(),
  ).managers.map((m) => m.name);

describe('the managers are chosen once from the mode', () => {
  it('BPF, static routing', () => {
    expect(names('static', bpf())).toEqual([
      'host-endpoints',
      'bpf-policy',
      'local-routes',
      'remote-routes',
      'uplink',
      'kernel-routes',
      'nat-outgoing',
    ]);
  });

  it('BPF, BGP: BIRD before the kernel routes, after the uplink', () => {
    expect(names('bgp', bpf())).toEqual([
      'host-endpoints',
      'bpf-policy',
      'local-routes',
      'remote-routes',
      'uplink',
      'bgp',
      'kernel-routes',
      'nat-outgoing',
    ]);
  });

  it('iptables: no maps, no uplink programs', () => {
    expect(names('static', iptables())).toEqual([
      'iptables-policy',
      'remote-routes',
      'kernel-routes',
      'nat-outgoing',
    ]);
    expect(names('bgp', iptables())).toEqual([
      'iptables-policy',
      'remote-routes',
      'bgp',
      'kernel-routes',
      'nat-outgoing',
    ]);
  });
});
