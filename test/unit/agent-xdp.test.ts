/**
 * The xdp manager in memory: the deny list written as a difference (new first, gone
 * last, what stays untouched), adopted across a restart, the program attached once per
 * agent and taken off when the list empties, a list over capacity refused whole;
 * FelixConfiguration's xdpEnabled and genericXDPEnabled, live.
 */
import { describe, expect, it } from 'vitest';

import { newPass } from '../../src/agent/manager.js';
import { ClusterModel } from '../../src/agent/model.js';
import { XdpManager, type XdpPort } from '../../src/agent/managers/xdp.js';
import type { StoredResource } from '../../src/datastore/index.js';
import { XDP_RULE_ID_BASE } from '../../src/policy/xdp.js';
import { captureLogger, softContext, softSnapshot } from '../helpers/softdataplane.js';

class SoftXdp implements XdpPort {
  readonly map = new Map<string, number>();
  readonly ops: string[] = [];
  mode_: 'none' | 'native' | 'generic' = 'none';
  capacity = 100;
  /** Whether the "driver" has native XDP. */
  hasNative = true;
  entries(): Map<string, number> {
    return new Map(this.map);
  }
  write(cidr: string, ruleId: number): void {
    this.ops.push(`+${cidr}`);
    this.map.set(cidr, ruleId);
  }
  remove(cidr: string): void {
    this.ops.push(`-${cidr}`);
    this.map.delete(cidr);
  }
  attach(_ifindex: number, allowGeneric: boolean): 'native' | 'generic' {
    this.ops.push(allowGeneric ? 'attach' : 'attach native');
    if (this.mode_ === 'generic' && !allowGeneric) this.mode_ = 'none';
    if (this.hasNative) this.mode_ = 'native';
    else if (allowGeneric) this.mode_ = 'generic';
    else throw new Error('the driver refused a native program');
    return this.mode_;
  }
  detach(): boolean {
    this.ops.push('detach');
    const was = this.mode_ !== 'none';
    this.mode_ = 'none';
    return was;
  }
  mode(): 'none' | 'native' | 'generic' {
    return this.mode_;
  }
}

let rev = 1;
function put(
  model: ClusterModel,
  resource: { kind: string; metadata: object; spec: object },
): void {
  model.apply({
    type: 'put',
    kind: resource.kind,
    resource: {
      apiVersion: 'projectcalico.org/v3',
      ...resource,
      metadata: { uid: 'u', creationTimestamp: '2026-01-01T00:00:00Z', ...resource.metadata },
    } as unknown as StoredResource,
    revision: String(rev++),
  } as Parameters<ClusterModel['apply']>[0]);
}

function shed(model: ClusterModel, nets: string[]): void {
  put(model, {
    kind: 'GlobalNetworkPolicy',
    metadata: { name: 'shed' },
    spec: {
      doNotTrack: true,
      applyOnForward: true,
      selector: 'role == "edge"',
      ingress: [{ action: 'Deny', source: { nets } }],
    },
  });
}

function setup(port = new SoftXdp()) {
  const model = new ClusterModel();
  put(model, {
    kind: 'HostEndpoint',
    metadata: { name: 'a-eth0', labels: { role: 'edge' } },
    spec: { node: 'node-a', interfaceName: 'eth0', expectedIPs: [] },
  });
  const m = new XdpManager(softContext(captureLogger().log), port, 'node-a');
  const pass = (settings?: { xdpEnabled?: boolean; genericXdpEnabled?: boolean }) => {
    const p = newPass(
      softSnapshot({
        model,
        links: new Map([['eth0', 2]]),
        ...(settings === undefined ? {} : { settings }),
      }),
    );
    p.uplink = { ip: '192.0.2.1', ifindex: 2 };
    return p;
  };
  return { port, model, m, pass };
}

describe('xdp manager (in memory)', () => {
  it('writes the list, then attaches, once', () => {
    const { port, model, m, pass } = setup();
    shed(model, ['10.1.0.0/16', '10.2.0.0/16']);
    expect(m.reconcile(pass())).toEqual({ writes: 2, deletes: 0 });
    expect(port.ops).toEqual(['+10.1.0.0/16', '+10.2.0.0/16', 'attach native']);
    expect(m.reconcile(pass())).toEqual({ writes: 0, deletes: 0 });
    expect(port.ops).toHaveLength(3);
    expect(m.status().xdp).toMatchObject({
      mode: 'native',
      interface: 'eth0',
      entries: 2,
      rules: 1,
    });
    expect(m.rules().get(XDP_RULE_ID_BASE)).toBe('policy/default/shed/ingress/0');
  });

  it('adds before it deletes and never touches a prefix that stays', () => {
    const { port, model, m, pass } = setup();
    shed(model, ['10.1.0.0/16', '10.2.0.0/16']);
    m.reconcile(pass());
    port.ops.length = 0;
    shed(model, ['10.2.0.0/16', '10.3.0.0/16']);
    m.reconcile(pass());
    expect(port.ops).toEqual(['+10.3.0.0/16', '-10.1.0.0/16']);
  });

  it('a restarted agent adopts the pinned list: nothing rewritten, its program swapped in', () => {
    const first = setup();
    shed(first.model, ['10.1.0.0/16']);
    first.m.reconcile(first.pass());
    first.port.ops.length = 0;
    const again = setup(first.port); // same map, a new agent
    shed(again.model, ['10.1.0.0/16']);
    expect(again.m.reconcile(again.pass())).toEqual({ writes: 0, deletes: 0 });
    expect(first.port.ops).toEqual(['attach native']);
  });

  it('detaches when the list empties', () => {
    const { port, model, m, pass } = setup();
    shed(model, ['10.1.0.0/16']);
    m.reconcile(pass());
    shed(model, []);
    m.reconcile(pass());
    expect(port.ops.slice(-2)).toEqual(['-10.1.0.0/16', 'detach']);
    expect(m.status().xdp).toMatchObject({ mode: 'none', entries: 0 });
  });

  it('refuses a list over capacity whole, keeping the previous one', () => {
    const port = new SoftXdp();
    port.capacity = 2;
    const { model, m, pass } = setup(port);
    shed(model, ['10.1.0.0/16']);
    m.reconcile(pass());
    shed(model, ['10.1.0.0/16', '10.2.0.0/16', '10.3.0.0/16']);
    m.reconcile(pass());
    expect([...port.map.keys()]).toEqual(['10.1.0.0/16']);
    expect(m.status().xdp?.error).toMatch(/3 prefixes, tortie_xdp_deny holds 2/);
  });

  it('xdpEnabled false: no program (a running one taken off), the list kept, status says what is not dropped', () => {
    const { port, model, m, pass } = setup();
    shed(model, ['10.1.0.0/16']);
    m.reconcile(pass({ xdpEnabled: false }));
    expect(port.ops).toEqual(['+10.1.0.0/16']);
    expect(m.status().xdp).toMatchObject({ mode: 'none', entries: 1 });
    expect(m.status().xdp?.notInXdp).toMatch(/xdpEnabled is false.*not dropped/);
    m.reconcile(pass());
    expect(port.ops.slice(-1)).toEqual(['attach native']);
    expect(m.status().xdp?.notInXdp).toBeUndefined();
    m.reconcile(pass({ xdpEnabled: false }));
    expect(port.ops.slice(-1)).toEqual(['detach']);
    expect(port.mode_).toBe('none');
  });

  it('genericXDPEnabled false (the default): native only; no native XDP leaves the list out of XDP, not retried', () => {
    const port = new SoftXdp();
    port.hasNative = false;
    const { model, m, pass } = setup(port);
    shed(model, ['10.1.0.0/16']);
    expect(m.reconcile(pass())).toEqual({ writes: 1, deletes: 0 });
    m.reconcile(pass());
    expect(port.ops).toEqual(['+10.1.0.0/16', 'attach native']);
    expect(m.status().xdp).toMatchObject({ mode: 'none' });
    expect(m.status().xdp?.notInXdp).toMatch(/no native XDP and genericXDPEnabled is false/);
    expect(m.status().xdp?.error).toBeUndefined();
    m.reconcile(pass({ genericXdpEnabled: true }));
    expect(port.ops.slice(-1)).toEqual(['attach']);
    expect(m.status().xdp).toMatchObject({ mode: 'generic' });
    // Generic no longer allowed: off generic, native tried (and refused).
    m.reconcile(pass({ genericXdpEnabled: false }));
    expect(port.ops.slice(-1)).toEqual(['attach native']);
    expect(port.mode_).toBe('none');
    expect(m.status().xdp?.notInXdp).toMatch(/genericXDPEnabled is false/);
  });
});
