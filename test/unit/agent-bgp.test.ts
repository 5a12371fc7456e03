import { describe, expect, it } from 'vitest';
import type { ApplyResult, BgpSession } from '../../src/bgp/bird.js';
import { ClusterModel } from '../../src/agent/model.js';
import { newPass, type Snapshot } from '../../src/agent/manager.js';
import { BgpManager, type BirdPort } from '../../src/agent/managers/bgp.js';
import { BIRD_ROUTE_PROTO, type RouteInputs } from '../../src/agent/routes.js';
import { captureLogger, SoftNetns, softContext } from '../helpers/softdataplane.js';

class SoftBird implements BirdPort {
  readonly paths = {
    conf: '/run/t/bird-node-a.conf',
    ctl: '/run/t/bird-node-a.ctl',
    pid: '/run/t/bird-node-a.pid',
    log: '/run/t/bird-node-a.log',
  };
  running: number | undefined;
  text: string | undefined;
  failSessions: Error | undefined;
  failApply: Error | undefined;
  list: BgpSession[] = [];
  pid(): number | undefined {
    return this.running;
  }
  async apply(text: string): Promise<ApplyResult> {
    if (this.failApply) throw this.failApply;
    if (text === this.text && this.running !== undefined) return 'unchanged';
    const result = this.running === undefined ? 'started' : 'reconfigured';
    this.text = text;
    this.running = 4242;
    return result;
  }
  async sessions(): Promise<BgpSession[]> {
    if (this.failSessions) throw this.failSessions;
    return this.list;
  }
}

const inputs: RouteInputs = {
  self: 'node-a',
  nodes: [
    { name: 'node-a', address: '192.0.2.1/24', alive: true },
    { name: 'node-b', address: '192.0.2.2/24', alive: true },
  ],
  blocks: [
    { cidr: '10.0.1.0/26', affinity: 'node-b', allocations: [] },
    { cidr: '10.0.0.0/26', affinity: 'node-a', allocations: [] },
  ],
  pools: [{ cidr: '10.0.0.0/16', ipipMode: 'Never', vxlanMode: 'Never' }],
};

function model(): ClusterModel {
  const m = new ClusterModel();
  for (const [name, ip] of [
    ['node-a', '192.0.2.1/24'],
    ['node-b', '192.0.2.2/24'],
  ] as const) {
    m.apply({
      type: 'put',
      kind: 'Node',
      resource: {
        apiVersion: 'tortie.io/v1',
        kind: 'Node',
        metadata: { name, resourceVersion: '2' },
        spec: { bgp: { ipv4Address: ip } },
      } as never,
      revision: '2',
      synthetic: false,
    });
  }
  return m;
}

function snapshot(): Snapshot {
  return {
    world: {
      endpoints: [],
      namespaces: [],
      networkSets: [],
      tiers: [],
      profiles: [],
      policies: [],
    },
    model: model(),
    locals: [],
    links: new Map([['eth0', 2]]),
    routes: inputs,
    address: '192.0.2.1/24',
  };
}

function manager(bird = new SoftBird(), netns = new SoftNetns()) {
  const { log, lines } = captureLogger();
  const ctx = softContext(log);
  const m = new BgpManager(ctx, {
    bird,
    netns,
    monitor: () => ({ start() {}, stop() {} }),
    asNumber: 64512,
    holdTimeSeconds: undefined,
    runDir: '/run/t',
    secretsDir: '/nonexistent/tortie-secrets',
  });
  return { m, bird, netns, ctx, lines };
}

describe('bgp manager (in memory)', () => {
  it('starts BIRD with the rendered configuration, then leaves it alone', async () => {
    const { m, bird } = manager();
    const pass = newPass(snapshot());
    expect(await m.reconcile(pass)).toEqual({});
    expect(bird.running).toBe(4242);
    expect(bird.text).toContain('node-b');
    expect(await m.reconcile(newPass(snapshot()))).toEqual({});
    expect(m.status().bgp).toMatchObject({ routing: 'bgp', birdPid: 4242, error: undefined });
  });

  it('a configuration that fails is shown, counted as a route error and retried', async () => {
    const { m, bird, ctx } = manager();
    bird.failApply = new Error('bird: syntax error, line 3');
    expect(await m.reconcile(newPass(snapshot()))).toEqual({ retryMs: 2000 });
    expect(m.status().bgp?.error).toBe('bird: syntax error, line 3');
    expect(ctx.tally.routeErrors).toBe(1);
  });

  it('is the route source: the routes BIRD installed, as remote routes', async () => {
    const { m, netns } = manager();
    netns.routes.set(BIRD_ROUTE_PROTO, [
      { cidr: '10.0.1.0/26', via: '192.0.2.2', dev: 'eth0', mtu: undefined, src: undefined },
    ]);
    const wanted = await m.wanted(inputs);
    expect(wanted.map((r) => `${r.cidr} via ${r.nextHop}`)).toEqual(['10.0.1.0/26 via 192.0.2.2']);
    expect(m.status().bgp?.learned).toHaveLength(1);
  });

  it('a learned route that changes asks for a reconcile', async () => {
    const { m, bird, netns, ctx } = manager();
    bird.running = 1;
    await m.poll();
    const before = ctx.triggers;
    netns.routes.set(BIRD_ROUTE_PROTO, [
      { cidr: '10.0.1.0/26', via: '192.0.2.2', dev: 'eth0', mtu: undefined, src: undefined },
    ]);
    await m.poll();
    expect(ctx.triggers).toBe(before + 1);
  });

  it('poll failures are logged at warn, once per different failure, and the recovery at info', async () => {
    const { m, bird, lines } = manager();
    bird.running = 1;
    bird.failSessions = new Error('birdc: cannot connect to /run/t/bird-node-a.ctl');
    await m.poll();
    await m.poll();
    bird.failSessions = new Error('birdc: timeout');
    await m.poll();
    bird.failSessions = undefined;
    await m.poll();
    const warns = lines.filter((l) => l.level === 'warn' && l.msg.startsWith('BGP poll failed'));
    expect(warns.map((l) => l.err)).toEqual([
      'birdc: cannot connect to /run/t/bird-node-a.ctl',
      'birdc: timeout',
    ]);
    expect(lines.some((l) => l.level === 'info' && l.msg === 'BGP poll works again')).toBe(true);
  });
});
