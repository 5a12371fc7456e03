import { describe, expect, it } from 'vitest';
import { newPass } from '../../src/agent/manager.js';
import { RemoteRoutesManager, storeRoutes } from '../../src/agent/managers/remote-routes.js';
import type { RouteInputs } from '../../src/agent/routes.js';
import {
  captureLogger,
  SoftRoutesMap,
  softContext,
  softSnapshot,
} from '../helpers/softdataplane.js';

const inputs = (ipipMode: 'Always' | 'Never'): RouteInputs => ({
  self: 'node-a',
  nodes: [
    { name: 'node-a', address: '192.0.2.1/24', alive: true },
    { name: 'node-b', address: '192.0.2.2/24', alive: true },
  ],
  blocks: [
    { cidr: '10.0.0.0/26', affinity: 'node-a', allocations: [] },
    { cidr: '10.0.1.0/26', affinity: 'node-b', allocations: [] },
  ],
  pools: [{ cidr: '10.0.0.0/16', ipipMode, vxlanMode: 'Never' }],
});

describe('remote-routes manager (in memory)', () => {
  it("writes other nodes' blocks and the known nodes into the routes map", async () => {
    const map = new SoftRoutesMap();
    const m = new RemoteRoutesManager(softContext(captureLogger().log), storeRoutes, map);
    const pass = newPass(softSnapshot({ routes: inputs('Always') }));
    expect(await m.reconcile(pass)).toEqual({ writes: 1, deletes: 0 });
    expect([...map.remote]).toEqual([['10.0.1.0/26', { nextHop: '192.0.2.2', ipip: true }]]);
    expect(map.knownNodes).toEqual(['192.0.2.2']);
    expect(pass.wanted.map((r) => r.cidr)).toEqual(['10.0.1.0/26']);
    expect(m.status()).toMatchObject({ remoteRoutesProgrammed: true, knownNodes: ['192.0.2.2'] });
    // The same again: nothing written.
    expect(await m.reconcile(newPass(softSnapshot({ routes: inputs('Always') })))).toEqual({
      writes: 0,
      deletes: 0,
    });
  });

  it('a pinned route that is no longer wanted is withdrawn', async () => {
    const map = new SoftRoutesMap();
    const pinned = new Map([
      [
        '10.9.0.0/26',
        { cidr: '10.9.0.0/26', node: '', nextHop: '192.0.2.9', ipip: false, vxlan: false },
      ],
    ]);
    map.remote.set('10.9.0.0/26', { nextHop: '192.0.2.9', ipip: false });
    const m = new RemoteRoutesManager(softContext(captureLogger().log), storeRoutes, map, pinned);
    expect(await m.reconcile(newPass(softSnapshot({ routes: inputs('Never') })))).toEqual({
      writes: 1,
      deletes: 1,
    });
    expect([...map.remote.keys()]).toEqual(['10.0.1.0/26']);
  });

  it('a failure is kept: shown, counted, retried — the pass goes on', async () => {
    const map = new SoftRoutesMap();
    map.failRemote = new Error('routes map full');
    const ctx = softContext(captureLogger().log);
    const m = new RemoteRoutesManager(ctx, storeRoutes, map);
    const pass = newPass(softSnapshot({ routes: inputs('Never') }));
    expect(await m.reconcile(pass)).toEqual({ retryMs: 2000 });
    expect(pass.wanted).toHaveLength(1);
    expect(m.status().remoteRouteError).toBe('routes map full');
    expect(ctx.tally.routeErrors).toBe(1);
    map.failRemote = undefined;
    await m.reconcile(newPass(softSnapshot({ routes: inputs('Never') })));
    expect(m.status().remoteRouteError).toBeUndefined();
  });

  it('without a routes map (iptables) the routes are computed for the kernel, not written', async () => {
    const m = new RemoteRoutesManager(softContext(captureLogger().log), storeRoutes, undefined);
    const pass = newPass(softSnapshot({ routes: inputs('Never') }));
    expect(await m.reconcile(pass)).toEqual({});
    expect(pass.wanted.map((r) => r.cidr)).toEqual(['10.0.1.0/26']);
    expect(m.status().remoteRoutesProgrammed).toBe(false);
  });
});
