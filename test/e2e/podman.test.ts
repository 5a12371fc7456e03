/**
 * A real runtime: podman 4.3 with its CNI backend runs two busybox containers on a tortie
 * network; they get pool addresses, reach each other, and removing one releases its
 * address and endpoint.
 *
 * Everything podman keeps is private to the run (a temporary CONTAINERS_CONF and
 * CONTAINERS_STORAGE_CONF: vfs storage, runroot, tmp_dir, events log, network config dir,
 * CNI plugin dir with the tortie shim), except what podman 4.3 cannot be told to put
 * elsewhere: libcni's result cache (/var/lib/cni/results, one file per live container,
 * removed with it) and the image layer cache (/var/lib/containers/cache/blob-info-cache).
 * The image is imported from a tarball of busybox-static (nothing can be pulled here).
 *
 * The node is a network namespace, not the machine: podman runs the plugin in the root
 * namespace (which reaches the test's etcd on loopback), and the network config's
 * `host_netns` puts every host-side veth and pod /32 route in the node namespace. The
 * machine's own interfaces and routes are never touched.
 *
 * Needs root, `npx tsc -p tsconfig.build.json` first, and the Debian packages podman,
 * runc and busybox-static (scripts/install.sh installs them): a missing one fails the
 * file, naming the package; nothing is skipped.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, copyFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { endpointName } from '../../src/cni/identity.js';
import { installCni } from '../../src/cni/install.js';
import { Datastore } from '../../src/datastore/index.js';
import { Ipam } from '../../src/ipam/index.js';
import { startEtcd, type EtcdCluster } from '../../src/lab/etcd.js';
import { TestNetnsSet, execIn, ipJson, type TestNetns } from '../helpers/netns.js';
import { REPO, addUplink, assertDistBuilt, inCidr } from '../fixtures/cni/harness.js';
import { requireCommand, requirePackagedProgram } from '../helpers/tools.js';

const run = new TestNetnsSet();
const NETWORK = `tortie-t${run.runId}`;
const PREFIX = `/tortie-t${run.runId}`;
const POOL = '10.72.0.0/16';
const NODE = 'podman-node';
const IMAGE = `localhost/tortie-t${run.runId}-busybox:e2e`;
const containerName = (role: string): string => `tortie-t${run.runId}-${role}`;

const dir = mkdtempSync(join(tmpdir(), `tortie-podman-${run.runId}-`));
const paths = {
  conf: join(dir, 'containers.conf'),
  storage: join(dir, 'storage.conf'),
  netd: join(dir, 'net.d'),
  bin: join(dir, 'cni-bin'),
  rootfs: join(dir, 'rootfs'),
  tarball: join(dir, 'rootfs.tar'),
};
mkdirSync(paths.netd);
mkdirSync(paths.bin);
writeFileSync(
  paths.conf,
  [
    '[containers]',
    // Containers may not raise limits above the machine's: keep podman's defaults low.
    'default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]',
    '[network]',
    'network_backend = "cni"',
    `cni_plugin_dirs = ["${paths.bin}"]`,
    `network_config_dir = "${paths.netd}"`,
    '[engine]',
    'runtime = "runc"',
    'cgroup_manager = "cgroupfs"',
    'events_logger = "file"',
    `events_logfile_path = "${join(dir, 'events.log')}"`,
    `tmp_dir = "${join(dir, 'tmp')}"`,
    '',
  ].join('\n'),
);
writeFileSync(
  paths.storage,
  [
    '[storage]',
    'driver = "vfs"',
    `runroot = "${join(dir, 'runroot')}"`,
    `graphroot = "${join(dir, 'graphroot')}"`,
    '',
  ].join('\n'),
);
const podmanEnv = {
  ...process.env,
  CONTAINERS_CONF: paths.conf,
  CONTAINERS_STORAGE_CONF: paths.storage,
};

function podman(
  args: string[],
  timeoutMs = 60_000,
): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync('podman', args, { env: podmanEnv, encoding: 'utf8', timeout: timeoutMs });
  return {
    code: r.error ? null : r.status,
    stdout: r.stdout ?? '',
    stderr: r.error ? r.error.message : (r.stderr ?? ''),
  };
}

function podmanOk(args: string[]): string {
  const r = podman(args);
  if (r.code !== 0)
    throw new Error(
      `podman ${args.join(' ')} exited ${String(r.code)}: ${r.stderr.trim() || r.stdout.trim()}`,
    );
  return r.stdout.trim();
}

afterAll(() => rmSync(dir, { recursive: true, force: true }));

let etcd: EtcdCluster | undefined;
let store: Datastore | undefined;
let ipam: Ipam;
let node: TestNetns;
/**
 * The node agent's CNI server (without the agent: nothing waits for programming here), in
 * a process of its own: podman runs through spawnSync, which blocks this one.
 */
let server: ChildProcess | undefined;
const socketPath = join(dir, 'cni.sock');

function networkIp(container: string): string {
  return podmanOk([
    'inspect',
    container,
    '--format',
    `{{(index .NetworkSettings.Networks "${NETWORK}").IPAddress}}`,
  ]);
}

describe('podman with the tortie CNI plugin', () => {
  const ids: Record<string, string> = {};
  /** podman was found (cleanup asks it to remove what it made only then). */
  let podmanFound = false;

  beforeAll(async () => {
    assertDistBuilt();
    requireCommand('podman');
    requireCommand('conmon');
    requireCommand('runc');
    requireCommand('tar');
    // The image is this one binary: it must be the static one (no libc in the image).
    const busybox = requirePackagedProgram('/bin/busybox');
    podmanOk(['--version']);
    podmanFound = true;
    etcd = await startEtcd(`p${run.runId}`);
    store = await Datastore.connect({ endpoints: etcd.endpoints, prefix: PREFIX });
    ipam = new Ipam(store.etcd, store.prefix);
    await store.apply([
      {
        apiVersion: 'tortie.io/v1',
        kind: 'IPPool',
        metadata: { name: 'podman-pool' },
        spec: { cidr: POOL, blockSize: 26 },
      },
    ]);
    node = await run.create('pnode');
    await addUplink(run.runId, node, 'pn');
    expect(podmanOk(['info', '--format', '{{.Host.NetworkBackend}}'])).toBe('cni');
    await installCni({ binDir: paths.bin });
    server = spawn(
      process.execPath,
      [join(REPO, 'test/fixtures/cni/server-process.mjs'), socketPath],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    await new Promise<void>((resolve, reject) => {
      server!.stdout!.once('data', () => resolve());
      server!.once('exit', (code) => reject(new Error(`the CNI server exited (${String(code)})`)));
    });
    writeFileSync(
      join(paths.netd, `${NETWORK}.conflist`),
      JSON.stringify({
        cniVersion: '1.0.0',
        name: NETWORK,
        plugins: [
          {
            type: 'tortie',
            datastore: { endpoints: etcd.endpoints, prefix: PREFIX },
            nodename: NODE,
            host_netns: node.path,
            agent_socket: socketPath,
            ipam: { type: 'tortie-ipam' },
            agent_wait_ms: 0, // no agent in this test
          },
        ],
      }),
    );
    mkdirSync(join(paths.rootfs, 'bin'), { recursive: true });
    for (const d of ['etc', 'tmp', 'proc', 'sys', 'dev']) mkdirSync(join(paths.rootfs, d));
    copyFileSync(busybox, join(paths.rootfs, 'bin', 'busybox'));
    for (const applet of ['sh', 'ping', 'nc', 'sleep', 'ip', 'cat', 'echo']) {
      symlinkSync('busybox', join(paths.rootfs, 'bin', applet));
    }
    const tar = spawnSync('tar', ['-C', paths.rootfs, '-cf', paths.tarball, '.'], {
      encoding: 'utf8',
    });
    if (tar.status !== 0) throw new Error(`tar of the busybox rootfs failed: ${tar.stderr}`);
    podmanOk(['import', paths.tarball, IMAGE]);
  });

  afterAll(async () => {
    const failures: string[] = [];
    if (podmanFound) {
      const r = podman(['rm', '--force', '--all', '--time', '0']);
      if (r.code !== 0) failures.push(`podman rm: ${r.stderr.trim()}`);
      podman(['rmi', '--force', IMAGE]);
    }
    for (const step of [
      () =>
        new Promise<void>((resolve) => {
          if (server === undefined || server.exitCode !== null) return resolve();
          server.once('exit', () => resolve());
          server.kill('SIGTERM');
        }),
      () => store?.close(),
      () => etcd?.stop(),
      () => run.removeAll(),
    ]) {
      try {
        await step();
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
    if (failures.length > 0) throw new Error(`cleanup failed: ${failures.join('; ')}`);
  });

  it('two containers get pool addresses, recorded as endpoints on the node namespace, and reach each other', async () => {
    const started = performance.now();
    ids.a = podmanOk([
      'run',
      '--detach',
      '--name',
      containerName('a'),
      '--network',
      NETWORK,
      '--cap-add',
      'NET_RAW',
      IMAGE,
      'nc',
      '-ll',
      '-p',
      '7070',
      '-e',
      '/bin/echo',
      'hello-from-a',
    ]);
    ids.b = podmanOk([
      'run',
      '--detach',
      '--name',
      containerName('b'),
      '--network',
      NETWORK,
      '--cap-add',
      'NET_RAW',
      IMAGE,
      'sleep',
      '600',
    ]);
    console.info(
      `podman run ×2 on the tortie network: ${(performance.now() - started).toFixed(0)} ms`,
    );
    const [ipA, ipB] = [networkIp(containerName('a')), networkIp(containerName('b'))];
    expect(inCidr(ipA, POOL), ipA).toBe(true);
    expect(inCidr(ipB, POOL), ipB).toBe(true);
    expect(ipA).not.toBe(ipB);

    for (const [role, ip] of [
      ['a', ipA],
      ['b', ipB],
    ] as const) {
      const id = ids[role] as string;
      expect(await ipam.addressesOf(`${NETWORK}.${id}`)).toEqual([ip]);
      const wep = await (store as Datastore).get(
        'WorkloadEndpoint',
        endpointName(NODE, 'cni', 'default', containerName(role), 'eth0'),
        'default',
      );
      expect(wep?.spec).toMatchObject({
        node: NODE,
        containerID: id,
        workload: containerName(role),
        ipNetworks: [`${ip}/32`],
      });
    }
    // The host ends are in the node namespace, the machine has no route to the pods.
    const nodeRoutes = await ipJson<Array<{ dst: string; dev?: string }>>(node.path, [
      'route',
      'show',
    ]);
    expect(nodeRoutes.map((r) => r.dst)).toEqual(expect.arrayContaining([ipA, ipB]));
    const machineRoutes = await ipJson<Array<{ dst: string }>>(undefined, ['route', 'show']);
    expect(machineRoutes.filter((r) => inCidr(r.dst.split('/')[0] ?? '', POOL))).toEqual([]);

    // Waits long enough for a loaded machine: an answer ends them at once.
    const ping = podman(['exec', containerName('b'), 'ping', '-c', '1', '-W', '20', ipA]);
    expect(ping.code, ping.stderr + ping.stdout).toBe(0);
    const nc = podman(['exec', containerName('b'), 'sh', '-c', `nc -w 20 ${ipA} 7070 </dev/null`]);
    expect(nc.stdout.trim(), nc.stderr).toBe('hello-from-a');
  });

  it('removing a container releases its address and endpoint, and leaves the other one be', async () => {
    const ipB = networkIp(containerName('b'));
    podmanOk(['rm', '--force', '--time', '0', containerName('a')]);
    expect(await ipam.addressesOf(`${NETWORK}.${ids.a as string}`)).toEqual([]);
    expect(
      await (store as Datastore).get(
        'WorkloadEndpoint',
        endpointName(NODE, 'cni', 'default', containerName('a'), 'eth0'),
        'default',
      ),
    ).toBeUndefined();
    expect(await ipam.addressesOf(`${NETWORK}.${ids.b as string}`)).toEqual([ipB]);
    const hostVeths = (await ipJson<Array<{ ifname: string }>>(node.path, ['link', 'show'])).filter(
      (l) => l.ifname.startsWith('tor'),
    );
    expect(hostVeths).toHaveLength(1);

    podmanOk(['rm', '--force', '--time', '0', containerName('b')]);
    expect(await ipam.addressesOf(`${NETWORK}.${ids.b as string}`)).toEqual([]);
    expect(await (store as Datastore).list('WorkloadEndpoint')).toEqual([]);
    expect((await execIn(node.path, 'ip', ['-o', 'link', 'show'])).stdout).not.toMatch(
      /\btor[0-9a-f]{12}\b/,
    );
  });
});
