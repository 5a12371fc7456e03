/**
 * Pod plumbing against the real kernel (root): a "node" namespace and pod namespaces,
 * all named tortie-t<run id>-…, removed in afterAll whatever happens.
 */
import { createHash } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  HOST_VETH_MAC,
  PlumbingError,
  checkPodNetwork,
  createPodNetwork,
  deletePodNetwork,
  hostVethName,
  type PodNetwork,
  type PodNetworkOptions,
} from '../../src/plumbing/index.js';
import {
  TestNetnsSet,
  execIn,
  execInOk,
  ipJson,
  runLinkName,
  sysctlIn,
  type TestNetns,
} from '../helpers/netns.js';

interface Link {
  ifindex: number;
  ifname: string;
  flags: string[];
  address?: string;
  mtu: number;
  link_index?: number;
  linkinfo?: { info_kind?: string };
}
interface Addr {
  ifname: string;
  addr_info: Array<{ family: string; local: string; prefixlen: number }>;
}
interface Route {
  dst: string;
  gateway?: string;
  dev?: string;
  scope?: string;
  flags: string[];
}

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const run = new TestNetnsSet();
const runByte = (i: number): number => parseInt(run.runId.slice(2 * i, 2 * i + 2), 16);
/** Pod addresses from 10.254.0.0/16, chosen with the run id: 10.254.<b0>.<b1 % 200 + 1 + k>. */
const podIp = (k: number): string => `10.254.${runByte(0)}.${(runByte(1) % 200) + 1 + k}`;
const workload = (role: string): string => `${run.prefix}/${role}`;

let node: TestNetns;
let podA: TestNetns;
let podB: TestNetns;
let optsA: PodNetworkOptions;
let optsB: PodNetworkOptions;
let netA: PodNetwork;
let netB: PodNetwork;

async function nodeLinkNames(): Promise<string[]> {
  return (await ipJson<Link[]>(node.path, ['link', 'show'])).map((link) => link.ifname).sort();
}

async function expectPlumbingError(promise: Promise<unknown>): Promise<PlumbingError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PlumbingError);
  return err as PlumbingError;
}

/**
 * A node routes 169.254.1.1 somewhere else (its default route), else proxy ARP stays
 * silent. Here the "uplink" is a veth whose peer stays down: nothing leaves the node.
 */
async function addUplink(ns: TestNetns): Promise<void> {
  const uplink = runLinkName(run.runId, 'up');
  await execInOk(ns.path, 'ip', ['-batch', '-'], {
    stdin: [
      `link add ${uplink} type veth peer name ${runLinkName(run.runId, 'upp')}`,
      `link set dev ${uplink} up`,
      `route add default dev ${uplink}`,
    ].join('\n'),
  });
}

beforeAll(async () => {
  [node, podA, podB] = await Promise.all([
    run.create('node'),
    run.create('pod-a'),
    run.create('pod-b'),
  ]);
  await addUplink(node);
  optsA = { workloadId: workload('a'), podNetns: podA.path, hostNetns: node.path, ip: podIp(0) };
  optsB = {
    workloadId: workload('b'),
    podNetns: podB.path,
    hostNetns: node.path,
    ip: podIp(1),
    mtu: 1400,
  };

  const started = performance.now();
  netA = await createPodNetwork(optsA);
  const createMs = performance.now() - started;
  netB = await createPodNetwork(optsB);
  console.info(`createPodNetwork took ${createMs.toFixed(1)} ms (host in another namespace)`);
});

afterAll(async () => {
  await run.removeAll();
});

describe('hostVethName', () => {
  it('is "tor" plus the first 12 hex digits of the SHA-1 of the workload id', () => {
    const sha1 = createHash('sha1').update('default/nginx-1').digest('hex');
    expect(hostVethName('default/nginx-1')).toBe(`tor${sha1.slice(0, 12)}`);
    expect(hostVethName('default/nginx-1')).toHaveLength(15);
  });

  it('is deterministic and differs between workloads', () => {
    expect(hostVethName('w1')).toBe(hostVethName('w1'));
    expect(hostVethName('w1')).not.toBe(hostVethName('w2'));
  });

  it('refuses an empty workload id', () => {
    expect(() => hostVethName('')).toThrow(/workload id/);
  });
});

describe('createPodNetwork', () => {
  it('returns the names, ifindexes and pod MAC it created', async () => {
    const [hostLink] = await ipJson<Link[]>(node.path, ['link', 'show', 'dev', netA.hostIfName]);
    const [podLink] = await ipJson<Link[]>(podA.path, ['link', 'show', 'dev', 'eth0']);
    expect(netA).toEqual({
      hostIfName: hostVethName(optsA.workloadId),
      hostIfindex: hostLink?.ifindex,
      podIfName: 'eth0',
      podIfindex: podLink?.ifindex,
      podMac: podLink?.address,
    });
  });

  it('puts the host end in the node namespace: a veth with MAC ee:ee:ee:ee:ee:ee, up, peered with eth0', async () => {
    for (const [net, pod] of [
      [netA, podA],
      [netB, podB],
    ] as const) {
      const [host] = await ipJson<Link[]>(node.path, [
        '-details',
        'link',
        'show',
        'dev',
        net.hostIfName,
      ]);
      expect(host?.linkinfo?.info_kind).toBe('veth');
      expect(host?.address).toBe(HOST_VETH_MAC);
      expect(host?.flags).toContain('UP');
      expect(host?.link_index).toBe(net.podIfindex);
      const [podLink] = await ipJson<Link[]>(pod.path, ['link', 'show', 'dev', 'eth0']);
      expect(podLink?.link_index).toBe(net.hostIfindex);
    }
    // and not in the pod namespaces
    expect(await execIn(podA.path, 'ip', ['link', 'show', 'dev', netA.hostIfName])).toMatchObject({
      code: 1,
    });
  });

  it('gives the pod end its /32, brings it and lo up, and applies the MTU to both ends', async () => {
    const addrs = await ipJson<Addr[]>(podB.path, ['address', 'show']);
    const eth0 = addrs.find((a) => a.ifname === 'eth0');
    expect(eth0?.addr_info.filter((a) => a.family === 'inet')).toEqual([
      expect.objectContaining({ local: optsB.ip, prefixlen: 32 }),
    ]);
    const links = await ipJson<Link[]>(podB.path, ['link', 'show']);
    expect(links.find((l) => l.ifname === 'eth0')?.flags).toContain('UP');
    expect(links.find((l) => l.ifname === 'lo')?.flags).toContain('UP');
    expect(links.find((l) => l.ifname === 'eth0')?.mtu).toBe(1400);
    const [host] = await ipJson<Link[]>(node.path, ['link', 'show', 'dev', netB.hostIfName]);
    expect(host?.mtu).toBe(1400);
  });

  it('routes the pod to 169.254.1.1 on eth0 and by default via 169.254.1.1 onlink', async () => {
    const routes = await ipJson<Route[]>(podA.path, ['route', 'show']);
    expect(routes).toContainEqual(
      expect.objectContaining({ dst: '169.254.1.1', dev: 'eth0', scope: 'link' }),
    );
    expect(routes).toContainEqual(
      expect.objectContaining({
        dst: 'default',
        gateway: '169.254.1.1',
        dev: 'eth0',
        flags: ['onlink'],
      }),
    );
  });

  it("routes each pod's /32 in the node namespace to its host veth, scope link", async () => {
    const routes = await ipJson<Route[]>(node.path, ['route', 'show']);
    expect(routes).toContainEqual(
      expect.objectContaining({ dst: optsA.ip, dev: netA.hostIfName, scope: 'link' }),
    );
    expect(routes).toContainEqual(
      expect.objectContaining({ dst: optsB.ip, dev: netB.hostIfName, scope: 'link' }),
    );
  });

  it('turns proxy ARP on for each host veth and IP forwarding on in the node namespace', async () => {
    expect(await sysctlIn(node.path, 'net.ipv4.ip_forward')).toBe('1');
    expect(await sysctlIn(node.path, `net.ipv4.conf.${netA.hostIfName}.proxy_arp`)).toBe('1');
    expect(await sysctlIn(node.path, `net.ipv4.conf.${netB.hostIfName}.proxy_arp`)).toBe('1');
    expect(await sysctlIn(node.path, `net.ipv4.neigh.${netA.hostIfName}.proxy_delay`)).toBe('0');
  });

  it('lets the two pods ping each other, routed by the node (TTL 63)', async () => {
    const aToB = await execIn(podA.path, 'ping', ['-c', '1', '-W', '1', optsB.ip]);
    expect(aToB.stdout).toMatch(/1 received/);
    expect(aToB.stdout).toMatch(/ttl=63/);
    const bToA = await execIn(podB.path, 'ping', ['-c', '1', '-W', '1', optsA.ip]);
    expect(bToA.stdout).toMatch(/1 received/);
    // The gateway was learned by proxy ARP from the host end.
    const neigh = await ipJson<Array<{ dst: string; lladdr?: string }>>(podA.path, [
      'neigh',
      'show',
      'dev',
      'eth0',
    ]);
    expect(neigh).toContainEqual(
      expect.objectContaining({ dst: '169.254.1.1', lladdr: HOST_VETH_MAC }),
    );
  });
});

describe('checkPodNetwork', () => {
  it('finds nothing wrong with pods just created', async () => {
    expect(await checkPodNetwork(optsA)).toEqual([]);
    expect(await checkPodNetwork(optsB)).toEqual([]);
  });

  // Each case breaks pod B one way, checks the report names it, then repairs it.
  const hostIf = (): string => netB.hostIfName;
  const cases: Array<{
    what: string;
    kind: string;
    side: 'host' | 'pod';
    ns: () => string;
    breakIt: () => string[];
    repair: () => string[];
  }> = [
    {
      what: 'a removed host route',
      kind: 'missing-route',
      side: 'host',
      ns: () => node.path,
      breakIt: () => [`route del ${optsB.ip}/32 dev ${hostIf()}`],
      repair: () => [`route add ${optsB.ip}/32 dev ${hostIf()} scope link`],
    },
    {
      what: 'a removed pod default route',
      kind: 'missing-route',
      side: 'pod',
      ns: () => podB.path,
      breakIt: () => ['route del default'],
      repair: () => ['route add default via 169.254.1.1 dev eth0 onlink'],
    },
    {
      what: 'a host end that is down',
      kind: 'link-down',
      side: 'host',
      ns: () => node.path,
      breakIt: () => [`link set dev ${hostIf()} down`],
      // Setting the link down removed its route: put both back.
      repair: () => [
        `link set dev ${hostIf()} up`,
        `route replace ${optsB.ip}/32 dev ${hostIf()} scope link`,
      ],
    },
    {
      what: 'a wrong host MAC',
      kind: 'wrong-mac',
      side: 'host',
      ns: () => node.path,
      breakIt: () => [`link set dev ${hostIf()} address ee:ee:ee:ee:ee:ef`],
      repair: () => [`link set dev ${hostIf()} address ${HOST_VETH_MAC}`],
    },
    {
      what: 'a missing pod address',
      kind: 'wrong-address',
      side: 'pod',
      ns: () => podB.path,
      breakIt: () => [`address del ${optsB.ip}/32 dev eth0`],
      // Removing the last IPv4 address also flushed the routes through eth0.
      repair: () => [
        `address add ${optsB.ip}/32 dev eth0`,
        'route add 169.254.1.1 dev eth0 scope link',
        'route add default via 169.254.1.1 dev eth0 onlink',
      ],
    },
  ];

  for (const c of cases) {
    it(`reports ${c.what} as ${c.kind} on the ${c.side} side`, async () => {
      await execInOk(c.ns(), 'ip', ['-batch', '-'], { stdin: c.breakIt().join('\n') });
      try {
        const problems = await checkPodNetwork(optsB);
        expect(problems).toContainEqual(expect.objectContaining({ kind: c.kind, side: c.side }));
        expect(problems.every((p) => p.message.length > 0)).toBe(true);
      } finally {
        await execInOk(c.ns(), 'ip', ['-batch', '-'], { stdin: c.repair().join('\n') });
      }
      expect(await checkPodNetwork(optsB)).toEqual([]);
    });
  }

  it('reports proxy ARP off on the host end', async () => {
    const key = `net.ipv4.conf.${netB.hostIfName}.proxy_arp`;
    await execInOk(node.path, 'sysctl', ['-w', `${key}=0`]);
    try {
      expect(await checkPodNetwork(optsB)).toContainEqual(
        expect.objectContaining({ kind: 'proxy-arp-off', side: 'host', ifName: netB.hostIfName }),
      );
    } finally {
      await execInOk(node.path, 'sysctl', ['-w', `${key}=1`]);
    }
  });

  it('reports a node without a route for 169.254.1.1 (proxy ARP would stay silent)', async () => {
    await execInOk(node.path, 'ip', ['route', 'del', 'default']);
    try {
      expect(await checkPodNetwork(optsA)).toEqual([
        expect.objectContaining({ kind: 'gateway-unroutable', side: 'host' }),
      ]);
    } finally {
      await execInOk(node.path, 'ip', [
        'route',
        'add',
        'default',
        'dev',
        runLinkName(run.runId, 'up'),
      ]);
    }
  });
});

describe('createPodNetwork failures', () => {
  it('fails for a pod namespace that does not exist, naming the step, and leaves nothing behind', async () => {
    const before = await nodeLinkNames();
    const missing = run.planned('pod-missing');
    const err = await expectPlumbingError(
      createPodNetwork({
        workloadId: workload('missing'),
        podNetns: missing.path,
        hostNetns: node.path,
        ip: podIp(5),
      }),
    );
    expect(err.kind).toBe('not-found');
    expect(err.step).toBe('open the pod network namespace');
    expect(err.message).toContain(missing.path);
    expect(await nodeLinkNames()).toEqual(before);
  });

  it('refuses a duplicate workload, naming its host veth, and leaves the existing pod working', async () => {
    const err = await expectPlumbingError(
      createPodNetwork({ ...optsA, podNetns: podB.path, ifName: 'eth1' }),
    );
    expect(err.kind).toBe('already-exists');
    expect(err.step).toMatch(/create the veth pair/);
    expect(err.ifName).toBe(netA.hostIfName);
    expect(err.message).toContain(`${netA.hostIfName} already exists`);
    expect(await checkPodNetwork(optsA)).toEqual([]);
    expect((await ipJson<Link[]>(podB.path, ['link', 'show'])).map((l) => l.ifname)).not.toContain(
      'eth1',
    );
  });

  it('undoes the veth when the host route fails midway (address already routed to another pod)', async () => {
    const before = await nodeLinkNames();
    const opts = {
      workloadId: workload('dup-ip'),
      podNetns: podB.path,
      hostNetns: node.path,
      ip: optsA.ip,
      ifName: 'eth1',
    };
    const err = await expectPlumbingError(createPodNetwork(opts));
    expect(err.step).toBe(`add the host route to ${optsA.ip}/32`);
    expect(err.ifName).toBe(hostVethName(opts.workloadId));
    expect(err.message).toMatch(/File exists/);
    expect(err.message).toMatch(/undone/);
    expect(await nodeLinkNames()).toEqual(before);
    expect((await ipJson<Link[]>(podB.path, ['link', 'show'])).map((l) => l.ifname)).not.toContain(
      'eth1',
    );
    expect(await checkPodNetwork(optsA)).toEqual([]);
  });

  it('undoes the veth when a pod-side step fails (the pod already has a default route)', async () => {
    const pod = await run.create('pod-c');
    await execInOk(pod.path, 'ip', ['-batch', '-'], {
      stdin: [
        'link add x0 type veth peer name x1',
        'link set dev x0 up',
        'route add default dev x0',
      ].join('\n'),
    });
    const before = await nodeLinkNames();
    const opts = {
      workloadId: workload('c'),
      podNetns: pod.path,
      hostNetns: node.path,
      ip: podIp(2),
    };
    const err = await expectPlumbingError(createPodNetwork(opts));
    expect(err.step).toBe("add the pod's default route via 169.254.1.1");
    expect(err.ifName).toBe('eth0');
    expect(err.message).toContain(pod.path);
    expect(await nodeLinkNames()).toEqual(before);
    expect((await ipJson<Link[]>(pod.path, ['link', 'show'])).map((l) => l.ifname).sort()).toEqual([
      'lo',
      'x0',
      'x1',
    ]);
    const nodeRoutes = await ipJson<Route[]>(node.path, ['route', 'show']);
    expect(nodeRoutes.map((r) => r.dst)).not.toContain(podIp(2));
  });

  it('refuses malformed input before touching anything', async () => {
    const base = { workloadId: workload('bad'), podNetns: podB.path, hostNetns: node.path };
    for (const bad of [
      { ...base, ip: '10.254.0.1/32' },
      { ...base, ip: '10.254.0.1', ifName: 'a-much-too-long-name' },
      { ...base, ip: '10.254.0.1', mtu: 10 },
      { ...base, ip: '10.254.0.1', podNetns: 'relative/path' },
    ]) {
      const err = await expectPlumbingError(createPodNetwork(bad));
      expect(err.kind).toBe('invalid-argument');
    }
  });
});

describe('deletePodNetwork', () => {
  it('removes the host veth, its peer and its route; deleting again succeeds', async () => {
    const started = performance.now();
    expect(await deletePodNetwork({ workloadId: optsB.workloadId, hostNetns: node.path })).toBe(
      true,
    );
    console.info(
      `deletePodNetwork took ${(performance.now() - started).toFixed(1)} ms (host in another namespace)`,
    );
    expect(await nodeLinkNames()).not.toContain(netB.hostIfName);
    expect((await ipJson<Link[]>(podB.path, ['link', 'show'])).map((l) => l.ifname)).toEqual([
      'lo',
    ]);
    const routes = await ipJson<Route[]>(node.path, ['route', 'show']);
    expect(routes.map((r) => r.dst)).not.toContain(optsB.ip);
    expect(await checkPodNetwork(optsB)).toContainEqual(
      expect.objectContaining({ kind: 'missing-link', side: 'host', ifName: netB.hostIfName }),
    );

    expect(await deletePodNetwork({ workloadId: optsB.workloadId, hostNetns: node.path })).toBe(
      false,
    );
    // Pod A is untouched.
    expect(await checkPodNetwork(optsA)).toEqual([]);
  });

  it('fails, naming the namespace, when the host namespace does not exist', async () => {
    const missing = run.planned('node-missing');
    const err = await expectPlumbingError(
      deletePodNetwork({ workloadId: workload('a'), hostNetns: missing.path }),
    );
    expect(err.kind).toBe('not-found');
    expect(err.message).toContain(missing.path);
  });
});

describe('with no hostNetns (the caller is in the node namespace, as the CNI plugin is)', () => {
  it('creates, checks and deletes a pod from a process running inside the node namespace', async () => {
    const node2 = await run.create('node2');
    const pod = await run.create('pod-d');
    await addUplink(node2);
    const opts: PodNetworkOptions = { workloadId: workload('d'), podNetns: pod.path, ip: podIp(3) };
    const script = join(tmpdir(), `${run.prefix}-current-ns.ts`);
    await writeFile(
      script,
      [
        `import * as plumbing from ${JSON.stringify(join(REPO, 'src/plumbing/index.js'))};`,
        `const opts = JSON.parse(process.env.TORTIE_OPTS ?? '');`,
        `let t = performance.now();`,
        `const net = await plumbing.createPodNetwork(opts);`,
        `const createMs = performance.now() - t;`,
        `const problems = await plumbing.checkPodNetwork(opts);`,
        `t = performance.now();`,
        `const deleted = await plumbing.deletePodNetwork({ workloadId: opts.workloadId });`,
        `const deleteMs = performance.now() - t;`,
        `const again = await plumbing.deletePodNetwork({ workloadId: opts.workloadId });`,
        `console.log(JSON.stringify({ net, problems, deleted, again, createMs, deleteMs }));`,
      ].join('\n'),
    );
    try {
      const result = await execInOk(
        node2.path,
        join(REPO, 'node_modules/.bin/vite-node'),
        [script],
        {
          cwd: REPO,
          env: { ...process.env, TORTIE_OPTS: JSON.stringify(opts) },
          timeoutMs: 60_000,
        },
      );
      const lastLine = result.stdout.trim().split('\n').pop() ?? '';
      const out = JSON.parse(lastLine) as {
        net: PodNetwork;
        problems: unknown[];
        deleted: boolean;
        again: boolean;
        createMs: number;
        deleteMs: number;
      };
      console.info(
        `in the current namespace: createPodNetwork ${out.createMs.toFixed(1)} ms, deletePodNetwork ${out.deleteMs.toFixed(1)} ms`,
      );
      expect(out.net.hostIfName).toBe(hostVethName(opts.workloadId));
      expect(out.problems).toEqual([]);
      expect(out.deleted).toBe(true);
      expect(out.again).toBe(false);
      // The sysctls were written in node2 (through /proc/sys of the child), not in this process's namespace.
      expect(await sysctlIn(node2.path, 'net.ipv4.ip_forward')).toBe('1');
      const node2Links = await ipJson<Link[]>(node2.path, ['link', 'show']);
      expect(node2Links.map((l) => l.ifname)).not.toContain(out.net.hostIfName);
    } finally {
      await rm(script, { force: true });
    }
  });
});
