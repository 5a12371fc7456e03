/**
 * Host endpoint programs in the compiler against the reference evaluator
 * (src/policy/evaluate-host.ts): for random worlds, a host endpoint labelled like one of
 * the world's pods (so the pods' policies select it too) and random failsafe ports, the
 * compiled sets must give every host-process packet the verdict `judgeHostPacket` gives
 * — action, deciding rule (failsafe refs included) and logged flag.
 */
import { describe, expect, it } from 'vitest';
import { PolicyCompiler, type LocalEndpoint } from '../../src/policy/compile/index.js';
import { judgeHostPacket } from '../../src/policy/evaluate-host.js';
import { DEFAULT_FAILSAFE } from '../../src/policy/failsafe.js';
import type { Endpoint, Failsafe, HostEndpoint, Packet } from '../../src/policy/model.js';
import { judge } from '../helpers/softdataplane.js';
import { prng, randomCase } from '../helpers/worldgen.js';

const HOST_IP = '10.1.2.3';
const HOST_IFINDEX = 9999;

function failsafeFor(rand: () => number): Failsafe {
  if (rand() < 0.3) return DEFAULT_FAILSAFE;
  const ports = (): Failsafe['inbound'] =>
    Array.from({ length: Math.floor(rand() * 4) }, () => ({
      protocol: rand() < 0.5 ? 6 : 17,
      port: [22, 53, 80, 179, 443, 2379][Math.floor(rand() * 6)]!,
      ...(rand() < 0.3
        ? { net: ['10.0.0.0/8', '10.1.0.0/16', '192.168.0.0/16'][Math.floor(rand() * 3)]! }
        : {}),
    }));
  return { inbound: ports(), outbound: ports() };
}

describe('host endpoint programs decide as the reference evaluator', () => {
  it('agrees on host-process packets of 400 random worlds', () => {
    let judged = 0;
    let byFailsafe = 0;
    let byPolicy = 0;
    for (let seed = 91_000; seed < 91_400; seed++) {
      const c = randomCase(seed);
      const rand = prng(seed);
      const model = c.world.endpoints[Math.floor(rand() * c.world.endpoints.length)];
      const hep: HostEndpoint = {
        name: 'eth0',
        node: 'n1',
        interfaceName: '*',
        expectedIPs: [],
        labels: model?.labels ?? {},
        profiles: model !== undefined && rand() < 0.5 ? model.profiles : [],
        ports: [],
      };
      const failsafe = failsafeFor(rand);
      const asEndpoint: Endpoint = {
        key: 'hostendpoint:eth0',
        namespace: '',
        name: 'eth0',
        ip: HOST_IP,
        labels: hep.labels,
        profiles: hep.profiles,
        ports: [],
        kind: 'host',
      };
      const locals: LocalEndpoint[] = [
        ...c.locals,
        { endpoint: asEndpoint, ifindex: HOST_IFINDEX, id: 4242, host: { failsafe } },
      ];
      const { state } = new PolicyCompiler().update(c.world, locals);
      const ctx = { node: 'n1', hostEndpoints: [hep], failsafe };
      const iface = { name: 'eth0', addresses: [HOST_IP] };
      for (const pc of c.packets) {
        const p = pc.packet;
        const packets: [Packet, 'to-host' | 'from-host'][] = [
          [{ ...p, daddr: HOST_IP }, 'to-host'],
          [{ ...p, saddr: HOST_IP }, 'from-host'],
          [{ ...p, daddr: HOST_IP, dport: [22, 53, 179, 2379][seed % 4]! }, 'to-host'],
        ];
        for (const [packet, path] of packets) {
          const want = judgeHostPacket(c.world, ctx, iface, path, packet);
          const got = judge(state, HOST_IFINDEX, path === 'to-host' ? 'ingress' : 'egress', packet);
          const what = `seed ${seed} ${path} ${JSON.stringify(packet)}`;
          expect(got.ok, `${what}: ${got.ok ? '' : got.miss}`).toBe(true);
          if (got.ok) expect(got.verdict, what).toEqual(want.verdict);
          judged++;
          if (want.stage === 'failsafe') byFailsafe++;
          if (want.verdict?.rule.startsWith('policy/')) byPolicy++;
        }
      }
    }
    // The worlds exercise both failsafe and policy decisions (the test can fail).
    expect(byFailsafe).toBeGreaterThan(judged / 50);
    expect(byPolicy).toBeGreaterThan(judged / 50);
  });
});
