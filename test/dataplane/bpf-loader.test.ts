/**
 * The loader against the real kernel (root): pinning under a per-run bpffs root,
 * adopting pins across reloads, configuration errors, and tc attachment to real pod
 * veths in namespaces this file creates (a "node" and two "pods", built with
 * src/plumbing), ending with pings between the pods through the attached programs.
 * Namespaces and pins carry tortie-t<run id> and are removed in afterAll.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  configGlobals,
  loadDataplane,
  removePins,
  TC_HANDLE,
  TC_PRIORITY,
  type Dataplane,
} from '../../src/loader/index.js';
import { Dir, ipToU32, PINNED_MAP_NAMES, Reason, RouteType } from '../../src/maps/index.js';
import { native } from '../../src/native/index.js';
import { createPodNetwork, type PodNetwork } from '../../src/plumbing/index.js';
import { execIn, execInOk, runLinkName, TestNetnsSet, type TestNetns } from '../helpers/netns.js';
import { PROTO } from '../../src/util/packets.js';
import { buildObject } from './bpf-harness.js';

const run = new TestNetnsSet();
const PIN_ROOT = `/sys/fs/bpf/${run.prefix}`;
const opened: Dataplane[] = [];

function load(pinRoot = PIN_ROOT, config = {}): Dataplane {
  const dp = loadDataplane({ pinRoot, config });
  opened.push(dp);
  return dp;
}

/** The kernel's id of a loaded program, from its fd. */
function progId(fd: number): number {
  const m = /prog_id:\s+(\d+)/.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
  if (!m) throw new Error(`fd ${fd} is not a BPF program`);
  return Number(m[1]);
}

beforeAll(() => {
  buildObject();
});

afterAll(async () => {
  for (const dp of opened) dp.close();
  try {
    removePins(PIN_ROOT);
    removePins(`${PIN_ROOT}-b`);
  } finally {
    await run.removeAll();
  }
});

describe('loading and pinning', () => {
  it('pins every map under the pin root by its name', () => {
    load();
    expect(readdirSync(PIN_ROOT).sort()).toEqual([...PINNED_MAP_NAMES].sort());
  });

  it('adopts the maps a previous load pinned: their contents survive a reload', () => {
    const first = load();
    first.views.ifaces.update(42, {
      ip: ipToU32('10.9.9.9'),
      id: 9,
      ingress_set: 1,
      egress_set: 2,
      policy_rev: 3,
      flags: 0,
    });
    const id = first.maps.ifaces.info().id;
    first.close();

    const second = load();
    expect(second.maps.ifaces.info().id).toBe(id);
    expect(second.views.ifaces.lookup(42)).toMatchObject({
      ip: ipToU32('10.9.9.9'),
      id: 9,
      policy_rev: 3,
    });
    second.views.ifaces.delete(42);
  });

  it('refuses to adopt an incompatible pinned map, naming it', () => {
    const root = `${PIN_ROOT}-b`;
    mkdirSync(root, { recursive: true });
    execFileSync('bpftool', [
      'map',
      'create',
      `${root}/tortie_frags`,
      'type',
      'hash',
      'key',
      '4',
      'value',
      '4',
      'entries',
      '8',
      'name',
      'tortie_frags',
    ]);
    expect(() => load(root)).toThrow(/tortie_frags/);
  });

  it('names a missing object file and how to build it', () => {
    expect(() =>
      loadDataplane({ objectPath: `/nonexistent/${run.prefix}.o`, pinRoot: PIN_ROOT }),
    ).toThrow(/nonexistent.*not found.*make -C bpf/);
  });

  it('refuses a pin root outside bpffs and creates nothing there', () => {
    const outside = `/tmp/${run.prefix}-pins/sub`;
    expect(() => load(outside)).toThrow(/not on a bpf filesystem/);
    expect(existsSync(`/tmp/${run.prefix}-pins`)).toBe(false);
  });

  it('refuses to remove what is not a pin directory', () => {
    expect(() => removePins('/tmp')).toThrow(/not on a bpf filesystem/);
    expect(() => removePins('/sys/fs/bpf')).toThrow(/mount point/);
    expect(() => removePins(`${PIN_ROOT}-never-created`)).not.toThrow();
  });

  it('refuses a conntrack timeout that is not a positive number of milliseconds', () => {
    expect(() => configGlobals({ ctTimeoutsMs: { syn: 0 } })).toThrow(/ctTimeoutsMs\.syn/);
    expect(() => configGlobals({ ctTimeoutsMs: { other: Number.NaN } })).toThrow(
      /ctTimeoutsMs\.other/,
    );
    const globals = Object.fromEntries(
      configGlobals({ ctTimeoutsMs: { established: 1500 } }).map((g) => [g.name, g.value]),
    );
    expect(globals.tortie_cfg_ct_established_timeout_ns?.readBigUInt64LE()).toBe(1_500_000_000n);
    expect(globals.tortie_cfg_drop_events?.readUInt32LE()).toBe(1);
  });
});

describe('attached to pod veths in a node namespace', () => {
  let node: TestNetns;
  let pods: { ns: TestNetns; net: PodNetwork; ip: string; id: number }[];
  let dp: Dataplane;
  const b = (i: number): number => parseInt(run.runId.slice(2 * i, 2 * i + 2), 16);
  const podIp = (k: number): string => `10.77.${b(0)}.${(b(1) % 200) + 1 + k}`;

  const query = (ifindex: number, direction: 'ingress' | 'egress') =>
    inNode(() => native.tcQuery(ifindex, direction, { priority: TC_PRIORITY, handle: TC_HANDLE }));
  const inNode = <T>(fn: () => T): T => {
    const back = native.enterNetns(node.path);
    try {
      return fn();
    } finally {
      native.restoreNetns(back);
    }
  };

  beforeAll(async () => {
    node = await run.create('node');
    // Proxy ARP answers for 169.254.1.1 only when the node routes it through another
    // interface (its default route). The "uplink" is a veth whose peer stays down.
    const uplink = runLinkName(run.runId, 'up');
    await execInOk(node.path, 'ip', ['-batch', '-'], {
      stdin: [
        `link add ${uplink} type veth peer name ${runLinkName(run.runId, 'upp')}`,
        `link set dev ${uplink} up`,
        `route add default dev ${uplink}`,
      ].join('\n'),
    });
    pods = [];
    for (const k of [0, 1]) {
      const ns = await run.create(`pod${k}`);
      const ip = podIp(k);
      const net = await createPodNetwork({
        workloadId: `${run.prefix}/pod${k}`,
        podNetns: ns.path,
        hostNetns: node.path,
        ip,
      });
      pods.push({ ns, net, ip, id: 100 + k });
    }
    dp = load();
  });

  it('puts tortie_from_pod on tc ingress and tortie_to_pod on tc egress', () => {
    const host = pods[0]!.net.hostIfindex;
    dp.attachToEndpoint(host, { netnsPath: node.path });
    expect(query(host, 'ingress')?.progId).toBe(progId(dp.programs.fromPod.fd));
    expect(query(host, 'egress')?.progId).toBe(progId(dp.programs.toPod.fd));
  });

  it('attaches idempotently', () => {
    const host = pods[0]!.net.hostIfindex;
    dp.attachToEndpoint(host, { netnsPath: node.path });
    dp.attachToEndpoint(host, { netnsPath: node.path });
    expect(query(host, 'ingress')?.progId).toBe(progId(dp.programs.fromPod.fd));
    const filters = execFileSync(
      'nsenter',
      [`--net=${node.path}`, 'tc', 'filter', 'show', 'dev', pods[0]!.net.hostIfName, 'ingress'],
      {
        encoding: 'utf8',
      },
    );
    // One filter line per attached program: `... pref 1 bpf chain 0 handle 0x1 tortie_from_pod:[id] ...`
    expect(filters.split('\n').filter((line) => /handle 0x1 /.test(line))).toHaveLength(1);
  });

  it('replaces the programs of a previous load when a reloaded dataplane attaches', () => {
    const host = pods[0]!.net.hostIfindex;
    const reloaded = load();
    reloaded.attachToEndpoint(host, { netnsPath: node.path });
    expect(query(host, 'ingress')?.progId).toBe(progId(reloaded.programs.fromPod.fd));
    expect(progId(reloaded.programs.fromPod.fd)).not.toBe(progId(dp.programs.fromPod.fd));
    dp.attachToEndpoint(host, { netnsPath: node.path }); // back to the first, for what follows
  });

  it('detaches both programs, and reports when nothing was attached', () => {
    const host = pods[1]!.net.hostIfindex;
    dp.attachToEndpoint(host, { netnsPath: node.path });
    expect(dp.detachFromEndpoint(host, { netnsPath: node.path })).toBe(true);
    expect(query(host, 'ingress')).toBeNull();
    expect(query(host, 'egress')).toBeNull();
    expect(dp.detachFromEndpoint(host, { netnsPath: node.path })).toBe(false);
  });

  describe('pod to pod through the programs', () => {
    const ALLOW_ALL = 1;
    const DENY_ICMP = 2;

    beforeAll(() => {
      // Set 1 → class 1: allow everything. Set 2 → class 2: deny ICMP, allow the rest.
      dp.views.polAddr.update({ prefixlen: 32, set_id: 1, addr: 0 }, { class_id: 1 });
      dp.views.polAddr.update({ prefixlen: 32, set_id: 2, addr: 0 }, { class_id: 2 });
      dp.views.polDflt.update(1, { action: 1, flags: 0, reserved: 0, rule_id: 11 });
      dp.views.polDflt.update(2, { action: 1, flags: 0, reserved: 0, rule_id: 21 });
      dp.views.polL4.update(
        { prefixlen: 48, class_id: 2, l4: PROTO.ICMP << 16 },
        { action: 2, flags: 0, reserved: 0, rule_id: 22 },
      );
      for (const p of pods) {
        dp.views.ifaces.update(p.net.hostIfindex, {
          ip: ipToU32(p.ip),
          id: p.id,
          ingress_set: ALLOW_ALL,
          egress_set: ALLOW_ALL,
          policy_rev: 1,
          flags: 0,
        });
        dp.views.routes.update(
          { prefixlen: 32, addr: ipToU32(p.ip) },
          { type: RouteType.LOCAL_EP, ifindex: p.net.hostIfindex, next_hop: 0, flags: 0 },
        );
        dp.attachToEndpoint(p.net.hostIfindex, { netnsPath: node.path });
      }
    });

    const ping = (from: number, to: number) =>
      execIn(pods[from]!.ns.path, 'ping', ['-c', '2', '-i', '0.2', '-W', '1', pods[to]!.ip], {
        timeoutMs: 10_000,
      });
    const count = (ep: number, reason: number, dir: number) =>
      dp.views.metrics.lookupSum({ ep_id: ep, reason, dir })?.packets ?? 0n;

    it('delivers a ping redirected between the pods, judged once per flow', async () => {
      const result = await ping(0, 1);
      expect(result.code, result.stdout + result.stderr).toBe(0);
      expect(result.stdout).toMatch(/ttl=63/); // one routed hop: the redirect decremented it
      const [a, z] = [pods[0]!, pods[1]!];
      expect(count(a.id, Reason.PASS_POLICY, Dir.FROM_POD)).toBeGreaterThanOrEqual(1n);
      expect(count(z.id, Reason.PASS_POLICY, Dir.TO_POD)).toBeGreaterThanOrEqual(1n);
      expect(count(z.id, Reason.PASS_CT_REPLY, Dir.FROM_POD)).toBeGreaterThanOrEqual(1n);
      expect(count(a.id, Reason.PASS_ARP, Dir.FROM_POD)).toBeGreaterThanOrEqual(1n);
    });

    it("stops the ping once the receiver's ingress set denies ICMP and its revision moves", async () => {
      const z = pods[1]!;
      dp.views.ifaces.update(z.net.hostIfindex, {
        ip: ipToU32(z.ip),
        id: z.id,
        ingress_set: DENY_ICMP,
        egress_set: ALLOW_ALL,
        policy_rev: 2,
        flags: 0,
      });
      const before =
        count(z.id, Reason.DROP_POLICY, Dir.TO_POD) +
        count(z.id, Reason.DROP_POLICY_REVOKED, Dir.TO_POD);
      const result = await ping(0, 1);
      expect(result.code).not.toBe(0);
      const after =
        count(z.id, Reason.DROP_POLICY, Dir.TO_POD) +
        count(z.id, Reason.DROP_POLICY_REVOKED, Dir.TO_POD);
      expect(after - before).toBeGreaterThanOrEqual(2n);
    });
  });
});
