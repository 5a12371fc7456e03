import { describe, expect, it } from 'vitest';
import {
  deletePinnedEndpoints,
  deletePinnedPolicy,
  IdSpace,
  readPinnedPolicy,
  staleEndpoints,
} from '../../src/agent/adopt.js';
import { applyDelta } from '../../src/dataplane/apply.js';
import { MAPS } from '../../src/maps/catalog.js';
import { u32Codec } from '../../src/maps/structs.js';
import type { BpfMap } from '../../src/native/types.js';
import { PolicyCompiler } from '../../src/policy/compile/index.js';
import type { Endpoint, World } from '../../src/policy/model.js';
import { SoftBpfMap } from '../helpers/softdataplane.js';
import { namespaceProfile } from '../../src/policy/resources.js';

/** The policy maps and tortie_ifaces in memory (the agent's soft dataplane's maps). */
function fakeMaps() {
  const m = (spec: { key: { size: number }; value: { size: number } }) =>
    new SoftBpfMap('soft', spec.key.size, spec.value.size) as unknown as BpfMap & SoftBpfMap;
  return {
    ifaces: m(MAPS.ifaces),
    polIp32: m(MAPS.polIp32),
    polAddr: m(MAPS.polAddr),
    polPort: m(MAPS.polPort),
    polL4: m(MAPS.polL4),
    polDflt: m(MAPS.polDflt),
    polSport: m(MAPS.polSport),
  };
}

const ep = (name: string, ip: string, labels: Record<string, string>): Endpoint => ({
  key: `x/${name}`,
  namespace: 'x',
  name,
  ip,
  labels,
  profiles: ['kns.x'],
  ports: [],
});
const a = ep('a', '10.0.0.1', { app: 'a' });
const b = ep('b', '10.0.0.2', { app: 'b' });

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
const locals = [
  { endpoint: a, ifindex: 10, id: 1 },
  { endpoint: b, ifindex: 11, id: 2 },
];

function endpointsOf(maps: ReturnType<typeof fakeMaps>) {
  const e = maps.ifaces.entries();
  return new Map(
    e.keys.map((k, i) => [u32Codec.decode(k), MAPS.ifaces.value.decode(e.values[i]!)]),
  );
}

describe('adopting what a previous agent pinned', () => {
  it('a new compiler lands beside the pinned sets, endpoints switch, then the old entries go', () => {
    const maps = fakeMaps();
    // The previous agent: deny-b in force.
    applyDelta(maps, new PolicyCompiler().update(world(true), locals).delta);
    const before = endpointsOf(maps);
    const oldSets = new Set([...before.values()].flatMap((e) => [e.ingress_set, e.egress_set]));

    // The new agent: reads the pins, compiles from empty, shifted above them.
    const pinned = readPinnedPolicy(maps);
    expect(pinned.endpoints.size).toBe(2);
    expect(pinned.maxSetId).toBeGreaterThanOrEqual(Math.max(...oldSets));
    const ids = IdSpace.above(pinned);
    const { delta, state } = new PolicyCompiler().update(world(true), locals);
    // The first delta deletes nothing: the compiler started empty.
    expect(delta.addrDeletes.length + delta.l4Deletes.length + delta.endpointDeletes.length).toBe(
      0,
    );
    const shifted = ids.delta(delta);
    for (const e of shifted.addrWrites) expect(oldSets.has(e.setId)).toBe(false);
    applyDelta(maps, shifted);
    const after = endpointsOf(maps);
    for (const [ifindex, e] of after) {
      expect(oldSets.has(e.ingress_set)).toBe(false);
      expect(e.policy_rev).toBeGreaterThan(before.get(ifindex)!.policy_rev);
      expect(e.id).toBe(before.get(ifindex)!.id);
    }
    // Old and new side by side until the cleanup: nothing was overwritten in place.
    const total = (m: ReturnType<typeof fakeMaps>) =>
      m.polAddr.data.size +
      m.polIp32.data.size +
      m.polDflt.data.size +
      m.polPort.data.size +
      m.polL4.data.size +
      m.polSport.data.size;
    const sideBySide = total(maps);
    expect(staleEndpoints(pinned, new Set(state.endpoints.keys()))).toEqual([]);
    expect(deletePinnedPolicy(maps, pinned)).toBeGreaterThan(0);
    expect(total(maps)).toBe(sideBySide / 2);
    // What remains is exactly the new compilation.
    const fresh = fakeMaps();
    applyDelta(fresh, shifted);
    expect(total(maps)).toBe(total(fresh));
    expect([...maps.polDflt.data.keys()].sort()).toEqual([...fresh.polDflt.data.keys()].sort());
  });

  it('pinned endpoints that are no longer local are named for deletion', () => {
    const maps = fakeMaps();
    applyDelta(maps, new PolicyCompiler().update(world(false), locals).delta);
    const pinned = readPinnedPolicy(maps);
    expect(staleEndpoints(pinned, new Set([10]))).toEqual([11]);
    expect(deletePinnedEndpoints(maps, [11])).toBe(1);
    expect([...endpointsOf(maps).keys()]).toEqual([10]);
  });

  it('an empty pin directory shifts nothing', () => {
    const ids = IdSpace.above(readPinnedPolicy(fakeMaps()));
    const delta = new PolicyCompiler().update(world(false), locals).delta;
    expect(ids.delta(delta)).toBe(delta);
  });

  it('ids that would leave the u32 range are refused; revisions wrap, never to 0, never twice', () => {
    const ids = new IdSpace(0xfffffff0, 0, 0xfffffffe);
    expect(ids.set(15)).toBe(0xffffffff);
    expect(() => ids.set(16)).toThrow(/u32 range/);
    expect(ids.rev(1)).toBe(0xffffffff);
    expect(ids.rev(2)).toBe(1);
    expect(ids.rev(3)).toBe(2);
  });
});
