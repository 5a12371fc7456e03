import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ClusterModel } from '../../src/agent/model.js';
import { newPass, type MetricsOut, type Snapshot } from '../../src/agent/manager.js';
import { BpfPolicyManager, PINNED_CLEANUP_DELAY_MS } from '../../src/agent/managers/bpf-policy.js';
import type { LocalEndpointInfo } from '../../src/agent/endpoints.js';
import type { Endpoint, World } from '../../src/policy/model.js';
import { namespaceProfile } from '../../src/policy/resources.js';
import { captureLogger, SoftPolicyDataplane, softContext } from '../helpers/softdataplane.js';

const ep = (name: string, ip: string): Endpoint => ({
  key: `x/${name}`,
  namespace: 'x',
  name,
  ip,
  labels: { app: name },
  profiles: ['kns.x'],
  ports: [],
});
const a = ep('a', '10.0.0.1');
const b = ep('b', '10.0.0.2');

function world(denyB: boolean): World {
  return {
    endpoints: [a, b],
    namespaces: [{ name: 'x', labels: {} }],
    networkSets: [],
    tiers: [],
    profiles: [namespaceProfile('x')],
    policies: denyB
      ? [
          {
            name: 'deny-b',
            namespace: 'x',
            tier: 'default',
            selector: "app == 'b'",
            types: ['Ingress'],
            ingress: [],
            egress: [],
          },
        ]
      : [],
  };
}

const local = (endpoint: Endpoint, ifindex: number, id: number): LocalEndpointInfo => ({
  endpoint,
  ifindex,
  id,
  interfaceName: `tor${ifindex}`,
  wep: { metadata: { resourceVersion: '1' } } as LocalEndpointInfo['wep'],
});
const locals = [local(a, 10, 1), local(b, 11, 2)];

function snapshot(w: World, ls: readonly LocalEndpointInfo[] = locals): Snapshot {
  return {
    world: w,
    model: new ClusterModel(),
    locals: ls,
    links: new Map(ls.map((l) => [l.interfaceName, l.ifindex])),
    routes: { self: 'node-a', nodes: [], blocks: [], pools: [] },
    address: undefined,
  };
}

function collect(): MetricsOut & { failed: Map<string, string> } {
  const failed = new Map<string, string>();
  return {
    families: [],
    histograms: [],
    failed,
    part(name, read) {
      try {
        read();
      } catch (e) {
        failed.set(name, (e as Error).message);
      }
    },
  };
}

describe('bpf-policy manager (in memory)', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('attaches, compiles and reports the endpoints programmed', () => {
    const dp = new SoftPolicyDataplane();
    const m = new BpfPolicyManager(softContext(captureLogger().log), dp);
    const pass = newPass(snapshot(world(false)));
    const r = m.reconcile(pass);
    expect(r.writes).toBeGreaterThan(0);
    expect([...dp.attached].sort()).toEqual([10, 11]);
    expect(pass.programmed.map((l) => l.ifindex)).toEqual([10, 11]);
    expect(m.endpointRev(locals[0]!)).toBeGreaterThan(0);
    expect(dp.danglingSets()).toEqual([]);
  });

  it('an endpoint whose attach fails is unresolved, not programmed', () => {
    const dp = new SoftPolicyDataplane();
    dp.failAttach = new Error('tc: no such device');
    const m = new BpfPolicyManager(softContext(captureLogger().log), dp);
    const pass = newPass(snapshot(world(false)));
    m.reconcile(pass);
    expect(pass.programmed).toEqual([]);
    expect(pass.unresolved.map((u) => u.reason)).toEqual([
      'tc: no such device',
      'tc: no such device',
    ]);
  });

  it("a restart lands beside the pinned sets, then retires the previous agent's entries", () => {
    const dp = new SoftPolicyDataplane();
    new BpfPolicyManager(softContext(captureLogger().log), dp).reconcile(
      newPass(snapshot(world(true))),
    );
    const before = dp.policyEntries();
    const restarted = new BpfPolicyManager(softContext(captureLogger().log), dp);
    expect(restarted.adopted()).toEqual({ endpoints: 2, policyEntries: before });
    restarted.reconcile(newPass(snapshot(world(true))));
    expect(dp.policyEntries()).toBe(2 * before);
    expect(dp.danglingSets()).toEqual([]);
    vi.advanceTimersByTime(PINNED_CLEANUP_DELAY_MS);
    expect(dp.policyEntries()).toBe(before);
    expect(dp.danglingSets()).toEqual([]);
  });

  it('two good reconciles then a failed write leave no timer that deletes the live sets', () => {
    const dp = new SoftPolicyDataplane();
    const m = new BpfPolicyManager(softContext(captureLogger().log), dp);
    m.reconcile(newPass(snapshot(world(false))));
    m.reconcile(newPass(snapshot(world(true))));
    expect(dp.danglingSets()).toEqual([]);
    // A write that fails: the manager adopts the maps as they are (the live sets).
    dp.failApply = new Error('map full');
    expect(() => m.reconcile(newPass(snapshot(world(false))))).toThrow('map full');
    vi.advanceTimersByTime(PINNED_CLEANUP_DELAY_MS * 4);
    // Every endpoint still points at sets that exist: no flow drops as DROP_NO_POLICY.
    expect(dp.danglingSets()).toEqual([]);
    dp.failApply = undefined;
    m.reconcile(newPass(snapshot(world(false))));
    vi.advanceTimersByTime(PINNED_CLEANUP_DELAY_MS);
    expect(dp.danglingSets()).toEqual([]);
  });

  it('drops count the dropped reasons; a counter read that fails is an error, not "no drops"', () => {
    const dp = new SoftPolicyDataplane();
    const m = new BpfPolicyManager(softContext(captureLogger().log), dp);
    dp.counterRows = [
      { epId: 1, reason: 'DROP_POLICY', dropped: true, dir: 'to-pod', packets: 3n, bytes: 300n },
      { epId: 2, reason: 'DROP_POLICY', dropped: true, dir: 'from-pod', packets: 2n, bytes: 200n },
      { epId: 1, reason: 'PASS_POLICY', dropped: false, dir: 'from-pod', packets: 9n, bytes: 900n },
    ];
    expect(m.status().drops).toEqual({ DROP_POLICY: 5 });
    expect(m.status().errors).toBeUndefined();
    dp.failCounters = new Error('EBADF');
    const s = m.status();
    expect(s.drops).toEqual({});
    expect(s.errors?.drops).toMatch(/cannot read the dataplane counters: EBADF/);
  });

  it('a map that cannot be read leaves its rows out, not the whole of /metrics', () => {
    const dp = new SoftPolicyDataplane();
    const m = new BpfPolicyManager(softContext(captureLogger().log), dp);
    m.reconcile(newPass(snapshot(world(false))));
    dp.failMap = { role: 'routes', error: new Error('EPERM') };
    dp.failCounters = new Error('EBADF');
    const out = collect();
    m.metrics(out);
    const entries = out.families.find((f) => f.name === 'tortie_bpf_map_entries');
    expect(entries?.samples.map((s) => s.labels?.map)).toContain('tortie_ifaces');
    expect(entries?.samples.map((s) => s.labels?.map)).not.toContain('tortie_routes');
    expect(out.families.some((f) => f.name === 'tortie_conntrack_capacity')).toBe(true);
    expect(out.families.some((f) => f.name === 'tortie_dataplane_packets_total')).toBe(false);
    expect(out.failed.get('dataplane-counters')).toBe('EBADF');
    expect(out.failed.get('bpf-maps')).toMatch(/routes: EPERM/);
  });

  it('stop removes the pinned entries due, at once', () => {
    const dp = new SoftPolicyDataplane();
    const previous = new BpfPolicyManager(softContext(captureLogger().log), dp);
    previous.reconcile(newPass(snapshot(world(true))));
    previous.stop();
    const before = dp.policyEntries();
    const restarted = new BpfPolicyManager(softContext(captureLogger().log), dp);
    restarted.reconcile(newPass(snapshot(world(true))));
    restarted.stop();
    expect(dp.policyEntries()).toBe(before);
    expect(vi.getTimerCount()).toBe(0);
  });
});
