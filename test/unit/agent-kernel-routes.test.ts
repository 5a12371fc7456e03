import { describe, expect, it } from 'vitest';
import { newPass, type Pass } from '../../src/agent/manager.js';
import {
  KernelRoutesManager,
  plainKernelRoutes,
  VxlanEncap,
  type VxlanPort,
} from '../../src/agent/managers/kernel-routes.js';
import { TORTIE_ROUTE_PROTO, type DesiredRoute } from '../../src/agent/routes.js';
import { captureLogger, SoftNetns, softContext, softSnapshot } from '../helpers/softdataplane.js';

const route = (
  cidr: string,
  nextHop: string,
  enc: { ipip?: boolean; vxlan?: boolean } = {},
): DesiredRoute => ({
  cidr,
  node: 'node-b',
  nextHop,
  ipip: enc.ipip ?? false,
  vxlan: enc.vxlan ?? false,
});

function netns(): SoftNetns {
  const n = new SoftNetns();
  n.links.set('lo', 1);
  n.links.set('eth0', 2);
  n.addresses.set(2, ['192.0.2.1']);
  return n;
}

function pass(
  wanted: DesiredRoute[],
  address: string | null = '192.0.2.1/24',
  ipipMtu?: number,
  vxlanMtu?: number,
): Pass {
  const p = newPass(
    softSnapshot({
      settings: {
        ...(ipipMtu === undefined ? {} : { ipipMtu }),
        ...(vxlanMtu === undefined ? {} : { vxlanMtu }),
      },
      address: address ?? undefined,
      links: new Map([
        ['lo', 1],
        ['eth0', 2],
      ]),
    }),
  );
  p.wanted = wanted;
  return p;
}

class SoftVxlan implements VxlanPort {
  created = 0;
  mtu = 0;
  peers: string[] = [];
  async ensureDevice(mtu: number): Promise<boolean> {
    this.mtu = mtu;
    return this.created++ === 0;
  }
  async syncPeers(peers: readonly { ip: string }[]): Promise<number> {
    this.peers = peers.map((p) => p.ip);
    return peers.length;
  }
}

describe('kernel-routes manager (in memory)', () => {
  it('a route per remote block out of the uplink, with the IPIP mtu; none written twice', async () => {
    const n = netns();
    const m = new KernelRoutesManager(softContext(captureLogger().log), {
      netns: n,
      shape: plainKernelRoutes,
      withdrawOnly: false,
    });
    const r = await m.reconcile(pass([route('10.0.1.0/26', '192.0.2.2', { ipip: true })]));
    expect(r).toEqual({ writes: 1, deletes: 0 });
    expect(n.applied[0]).toEqual([
      expect.stringMatching(/^route replace 10\.0\.1\.0\/26 via 192\.0\.2\.2 dev eth0 .*mtu 1480/),
    ]);
    n.routes.set(TORTIE_ROUTE_PROTO, [
      { cidr: '10.0.1.0/26', via: '192.0.2.2', dev: 'eth0', mtu: 1480, src: '192.0.2.1' },
    ]);
    expect(await m.reconcile(pass([route('10.0.1.0/26', '192.0.2.2', { ipip: true })]))).toEqual(
      {},
    );
  });

  it("FelixConfiguration ipipMTU (the pass's settings) changes the IPIP routes' mtu at once", async () => {
    const n = netns();
    const m = new KernelRoutesManager(softContext(captureLogger().log), {
      netns: n,
      shape: plainKernelRoutes,
      withdrawOnly: false,
    });
    const wanted = [
      route('10.0.1.0/26', '192.0.2.2', { ipip: true }),
      route('10.0.2.0/26', '192.0.2.3'),
    ];
    await m.reconcile(pass(wanted, undefined, 1440));
    expect(n.applied[0]).toEqual([
      expect.stringMatching(/^route replace 10\.0\.1\.0\/26 .*mtu 1440/),
      expect.not.stringMatching(/mtu/),
    ]);
  });

  it("without ipipMTU the IPIP routes follow the uplink's MTU less 20, read on every pass", async () => {
    const n = netns();
    n.mtus.set('eth0', 9000);
    const m = new KernelRoutesManager(softContext(captureLogger().log), {
      netns: n,
      shape: plainKernelRoutes,
      withdrawOnly: false,
    });
    const wanted = [route('10.0.1.0/26', '192.0.2.2', { ipip: true })];
    await m.reconcile(pass(wanted));
    expect(n.applied[0]).toEqual([
      expect.stringMatching(/^route replace 10\.0\.1\.0\/26 .*mtu 8980/),
    ]);
    n.routes.set(TORTIE_ROUTE_PROTO, [
      { cidr: '10.0.1.0/26', via: '192.0.2.2', dev: 'eth0', mtu: 8980, src: '192.0.2.1' },
    ]);
    n.mtus.set('eth0', 1400);
    await m.reconcile(pass(wanted));
    expect(n.applied[1]).toEqual([
      expect.stringMatching(/^route replace 10\.0\.1\.0\/26 .*mtu 1380/),
    ]);
  });

  it('with BGP only withdraws what tortie installed', async () => {
    const n = netns();
    n.routes.set(TORTIE_ROUTE_PROTO, [
      { cidr: '10.0.1.0/26', via: '192.0.2.2', dev: 'eth0', mtu: undefined, src: '192.0.2.1' },
    ]);
    const m = new KernelRoutesManager(softContext(captureLogger().log), {
      netns: n,
      shape: plainKernelRoutes,
      withdrawOnly: true,
    });
    expect(await m.reconcile(pass([route('10.0.1.0/26', '192.0.2.2')]))).toEqual({
      writes: 0,
      deletes: 1,
    });
    expect(n.applied[0]![0]).toMatch(/^route del 10\.0\.1\.0\/26/);
  });

  it('no interface with the node address: an error kept, counted and retried', async () => {
    const n = netns();
    n.addresses.clear();
    const ctx = softContext(captureLogger().log);
    const m = new KernelRoutesManager(ctx, {
      netns: n,
      shape: plainKernelRoutes,
      withdrawOnly: false,
    });
    expect(await m.reconcile(pass([route('10.0.1.0/26', '192.0.2.2')]))).toEqual({ retryMs: 2000 });
    expect(m.status().kernelRouteError).toMatch(/no interface holds the node address 192\.0\.2\.1/);
    expect(ctx.tally.routeErrors).toBe(1);
  });

  it('iptables: VXLAN through vxlan.tortie after its peers; IPIP refused and reported', async () => {
    const n = netns();
    const vx = new SoftVxlan();
    const { log } = captureLogger();
    const m = new KernelRoutesManager(softContext(log), {
      netns: n,
      shape: new VxlanEncap(log, () => vx),
      withdrawOnly: false,
    });
    await m.reconcile(
      pass([
        route('10.0.1.0/26', '192.0.2.2', { vxlan: true }),
        route('10.0.2.0/26', '192.0.2.3', { ipip: true }),
      ]),
    );
    expect(vx.peers).toEqual(['192.0.2.2']);
    expect(n.applied[0]).toEqual([
      expect.stringMatching(
        /^route replace 10\.0\.1\.0\/26 via 192\.0\.2\.2 dev vxlan\.tortie .*onlink/,
      ),
    ]);
    expect(m.status().encapError).toMatch(/cannot encapsulate IPIP.*10\.0\.2\.0\/26/);
    expect(m.status().kernelRouteError).toBeUndefined();
  });

  it("iptables: the VXLAN device and routes take the uplink's MTU less 50; vxlanMTU wins", async () => {
    const n = netns();
    n.mtus.set('eth0', 9000);
    const vx = new SoftVxlan();
    const { log } = captureLogger();
    const m = new KernelRoutesManager(softContext(log), {
      netns: n,
      shape: new VxlanEncap(log, () => vx),
      withdrawOnly: false,
    });
    const wanted = [route('10.0.1.0/26', '192.0.2.2', { vxlan: true })];
    await m.reconcile(pass(wanted));
    expect(vx.mtu).toBe(8950);
    expect(n.applied[0]).toEqual([expect.stringMatching(/dev vxlan\.tortie .*mtu 8950/)]);
    await m.reconcile(pass(wanted, undefined, undefined, 1400));
    expect(vx.mtu).toBe(1400);
    expect(n.applied[1]).toEqual([expect.stringMatching(/dev vxlan\.tortie .*mtu 1400/)]);
  });

  it('no node address: nothing to do', async () => {
    const m = new KernelRoutesManager(softContext(captureLogger().log), {
      netns: netns(),
      shape: plainKernelRoutes,
      withdrawOnly: false,
    });
    expect(await m.reconcile(pass([route('10.0.1.0/26', '192.0.2.2')], null))).toEqual({});
  });
});
