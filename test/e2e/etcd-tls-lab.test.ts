/**
 * Issue 11 end to end: a 2-node lab built with `tortie lab up --etcd-tls` (etcd with
 * `--client-cert-auth`, certificates made at start). Pods created through the CNI plugin
 * (TLS files in its network config) get addresses; a NetworkPolicy applied with `tortie
 * apply` (the lab's tortie.yaml, with the client certificate) is enforced. A client
 * without a certificate is refused: the etcd3 client, the plugin's own gateway client,
 * plain HTTP, the CNI plugin.
 *
 * The attack as reported: a pod talking to etcd's client port. In the lab etcd listens on
 * 127.0.0.1 of the machine's namespace, which no pod can reach (checked). Production runs
 * it on a node address (Calico's etcd deployments), which pods of other nodes can reach
 * (their own node's addresses they cannot: defaultEndpointToHostAction Drop): here a relay
 * in node 0's namespace puts etcd's port on that node's underlay address, port 2379, and
 * the pod on node 1 tries to read every key and to delete the NetworkPolicy, over plain
 * HTTP and over TLS without a certificate. Both fail, the policy stays enforced; the same
 * request with the client certificate succeeds (so it is the certificate that decides).
 *
 * Needs root and `npm run build` first. Lab ids start with "et".
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdUnavailableError } from '../../src/datastore/etcd/errors.js';
import { EtcdGatewayClient } from '../../src/datastore/etcd/gateway.js';
import { invokePlugin } from '../../src/cni/invoke.js';
import { Datastore, isDatastoreError, prefixEnd } from '../../src/datastore/index.js';
import { ClusterLab, destroyClusterLab, labCniSocket } from '../../src/lab/cluster/cluster-lab.js';
import type { LabState } from '../../src/lab/cluster/state.js';
import { newLabId } from '../helpers/netns.js';

const ROOT = join(import.meta.dirname, '..', '..');
const MAIN = join(ROOT, 'dist', 'bin', 'tortie.js');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** One process; never rejects (the exit code is part of the result). */
function run(file: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  const base = { ...process.env };
  for (const k of Object.keys(base)) if (k.startsWith('TORTIE_')) delete base[k];
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { cwd: ROOT, env: { ...base, ...env }, timeout: 90_000, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        const code =
          err === null ? 0 : typeof err.code === 'number' ? err.code : err.killed ? -9 : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

const tortie = (args: string[], env: Record<string, string> = {}) =>
  run(process.execPath, [MAIN, ...args], env);

function ok(r: Run, what: string): Run {
  if (r.code !== 0) throw new Error(`${what}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}

const id = newLabId('et');
const work = mkdtempSync(join(tmpdir(), `tortie-etls-${id}-`));
let state: LabState;
let lab: ClusterLab | undefined;
/** The relay putting etcd's client port on node 1's underlay address (see the header). */
let relayUnix: Server | undefined;
let relayNode: ChildProcess | undefined;

const labState = () =>
  JSON.parse(readFileSync(`/run/tortie/labs/${id}/state.json`, 'utf8')) as LabState;
const etcdPort = () => Number(new URL(state.etcd.endpoints[0]!).port);
const b64 = (s: string) => Buffer.from(s).toString('base64');

/** Every key under the lab's prefix, read with the lab's client certificate. */
async function keysWithCertificate(): Promise<string[]> {
  const tls = state.etcd.tls!;
  const ds = await Datastore.connect({
    endpoints: state.etcd.endpoints,
    tls: { ca: tls.ca, cert: tls.clientCert, key: tls.clientKey },
  });
  try {
    const prefix = `${state.etcdPrefix}/`;
    const r = await ds.etcd.kv.range({ key: Buffer.from(prefix), range_end: prefixEnd(prefix) });
    return r.kvs.map((kv) => kv.key.toString());
  } finally {
    await ds.close();
  }
}

/** Probes until the answer is `want` or 20 s passed; returns the last answer. */
async function probeUntil(from: string, to: string, want: boolean): Promise<boolean> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const got = await lab!.probe(from, to);
    if (got === want || Date.now() > deadline) return got;
  }
}

/** Runs `argv` in pod `key`'s network namespace, as `tortie lab exec` does. */
function inPod(key: string, argv: string[]): Promise<Run> {
  return tortie(['lab', 'exec', '--id', id, key, '--', ...argv]);
}

beforeAll(async () => {
  ok(await tortie(['lab', 'up', '--id', id, '--nodes', '2', '--etcd-tls']), 'lab up --etcd-tls');
  ok(
    await tortie(['lab', 'pod', 'add', 'x/web', '--id', id, '--node', '0', '--labels', 'app=web']),
    'pod add x/web',
  );
  ok(
    await tortie([
      'lab',
      'pod',
      'add',
      'x/client',
      '--id',
      id,
      '--node',
      '1',
      '--labels',
      'app=client',
    ]),
    'pod add x/client',
  );
  state = labState();
  lab = await ClusterLab.open(id);
}, 120_000);

afterAll(async () => {
  relayNode?.kill('SIGKILL');
  relayUnix?.close();
  await lab?.close().catch(() => undefined);
  await tortie(['lab', 'down', '--id', id]);
  await destroyClusterLab(id);
  rmSync(work, { recursive: true, force: true });
  const left = [
    ...(existsSync(`/run/tortie/labs/${id}`) ? [`/run/tortie/labs/${id}`] : []),
    ...readdirSync('/run/netns').filter((n) => n.startsWith(`tortie-${id}-`)),
    ...readdirSync(tmpdir()).filter((n) => n.includes(`-${id}-`)),
  ];
  if (left.length > 0) throw new Error(`left behind: ${left.join(', ')}`);
}, 60_000);

describe('a lab with etcd TLS client certificates (tortie lab up --etcd-tls)', () => {
  it('runs etcd on https with --client-cert-auth; state, tortie.yaml and the reopened lab name the files', () => {
    const tls = state.etcd.tls!;
    const dir = `/run/tortie/labs/${id}/tls`;
    expect(tls).toMatchObject({
      ca: `${dir}/ca.pem`,
      clientCert: `${dir}/client.pem`,
      clientKey: `${dir}/client.key`,
    });
    for (const f of [tls.ca, tls.serverCert, tls.serverKey, tls.clientCert, tls.clientKey])
      expect(existsSync(f)).toBe(true);
    expect(state.etcd.endpoints.every((e) => e.startsWith('https://127.0.0.1:'))).toBe(true);
    const args = readFileSync(`/proc/${state.etcd.members[0]!.pid!}/cmdline`, 'utf8').split('\0');
    expect(args).toContain('--client-cert-auth');
    expect(args).toContain('--peer-client-cert-auth');
    expect(readFileSync(state.configFile, 'utf8')).toContain(
      `etcdCACert: ${tls.ca}\netcdCert: ${tls.clientCert}\netcdKey: ${tls.clientKey}\n`,
    );
    expect(lab!.etcdTls).toEqual(tls);
  });

  it('pods created through the CNI plugin got addresses; a policy applied with tortie apply is enforced', async () => {
    expect(state.pods.map((p) => [p.key, p.ip.startsWith('10.231.')])).toEqual([
      ['x/web', true],
      ['x/client', true],
    ]);
    // ADD waits for the pod's own node; the other node learns its route a moment later.
    expect(await probeUntil('x/client', 'x/web', true)).toBe(true);
    const file = join(work, 'isolate-web.yaml');
    writeFileSync(
      file,
      [
        'apiVersion: networking.k8s.io/v1',
        'kind: NetworkPolicy',
        'metadata: {name: isolate-web, namespace: x}',
        'spec:',
        '  podSelector: {matchLabels: {app: web}}',
        '  policyTypes: [Ingress]',
        '',
      ].join('\n'),
    );
    ok(await tortie(['apply', '-f', file], { TORTIE_CONFIG: state.configFile }), 'apply');
    // Read back through the reopened lab's own connection (it presents the certificate too).
    const stored = await lab!.store!.get('K8sNetworkPolicy', 'isolate-web', 'x');
    await lab!.waitForRevision(stored!.metadata.resourceVersion!);
    expect(await lab!.probe('x/client', 'x/web')).toBe(false);
    expect(await lab!.probe('x/web', 'x/client')).toBe(true);
  }, 60_000);

  it('a client without a certificate is refused: etcd3, the gateway client, plain HTTP', async () => {
    const { ca } = state.etcd.tls!;
    const grpc = await Datastore.connect({
      endpoints: state.etcd.endpoints,
      prefix: state.etcdPrefix,
      tls: { ca },
      timeoutMs: 2000,
    });
    try {
      const e = await grpc.list('NetworkPolicy').catch((x: unknown) => x);
      expect(isDatastoreError(e, 'unavailable')).toBe(true);
    } finally {
      await grpc.close();
    }
    const gateway = new EtcdGatewayClient({
      hosts: state.etcd.endpoints,
      credentials: { rootCertificate: readFileSync(ca) },
    });
    try {
      const e = await gateway.kv
        .range({ key: Buffer.from('\0'), range_end: Buffer.from('\0') })
        .catch((x: unknown) => x);
      expect(e).toBeInstanceOf(EtcdUnavailableError);
    } finally {
      gateway.close();
    }
    // Plain HTTP to the TLS port: etcd closes the connection without a byte.
    const plain = await fetch(`http://127.0.0.1:${etcdPort()}/v3/kv/range`, {
      method: 'POST',
      body: JSON.stringify({ key: b64('\0'), range_end: b64('\0') }),
    }).catch((x: unknown) => x);
    expect((plain as Error & { cause?: { code?: string } }).cause?.code).toBe('UND_ERR_SOCKET');
  }, 30_000);

  it('the CNI plugin without its certificate fails with 11; with an http:// endpoint its config is refused (7)', async () => {
    const config = {
      cniVersion: '1.1.0',
      name: 'tortie-lab',
      type: 'tortie',
      datastore: { endpoints: state.etcd.endpoints, prefix: state.etcdPrefix },
      nodename: state.nodes[0]!.name,
      // The plugin hands the call to the node's agent, which runs it with these files.
      agent_socket: labCniSocket(state.id, state.nodes[0]!.name),
    };
    const withCa = { ...config, etcd_ca_cert_file: state.etcd.tls!.ca };
    const noCert = await invokePlugin({ plugin: state.cniShim, command: 'STATUS', config: withCa });
    expect(noCert.exitCode).toBe(1);
    // STATUS says the plugin cannot work (50); DEL, which must reach etcd, asks for a retry (11).
    expect(noCert.json).toMatchObject({
      code: 50,
      details: expect.stringContaining('refused the TLS handshake'),
    });
    const del = await invokePlugin({
      plugin: state.cniShim,
      command: 'DEL',
      containerId: 'no-such-container',
      ifName: 'eth0',
      netns: '',
      config: withCa,
    });
    expect(del.exitCode).toBe(1);
    expect(del.json).toMatchObject({
      code: 11,
      details: expect.stringContaining('etcd_cert_file and etcd_key_file'),
    });
    const tls = state.etcd.tls!;
    const full = {
      ...withCa,
      etcd_cert_file: tls.clientCert,
      etcd_key_file: tls.clientKey,
    };
    const good = await invokePlugin({ plugin: state.cniShim, command: 'STATUS', config: full });
    expect([good.exitCode, good.stdout]).toEqual([0, '']);
    const http = await invokePlugin({
      plugin: state.cniShim,
      command: 'STATUS',
      config: {
        ...full,
        datastore: { endpoints: ['http://127.0.0.1:2379'], prefix: state.etcdPrefix },
      },
    });
    expect(http.json).toMatchObject({
      code: 7,
      details: expect.stringContaining(
        'etcd_ca_cert_file, etcd_cert_file, etcd_key_file need https:// etcd endpoints',
      ),
    });
  }, 30_000);

  it("from a pod: the lab's etcd (127.0.0.1 of the machine) cannot be reached at all", async () => {
    const port = String(etcdPort());
    const node = state.nodes.find((n) => n.name === state.pods[1]!.node)!;
    for (const host of ['127.0.0.1', node.underlayIp, '169.254.1.1']) {
      const r = await inPod('x/client', [
        'curl',
        '-sS',
        '-k',
        '--max-time',
        '3',
        `https://${host}:${port}/health`,
      ]);
      // 7: could not connect, 28: timed out.
      expect([host, [7, 28].includes(r.code)]).toEqual([host, true]);
    }
  }, 30_000);

  describe("etcd's port on a node address, as Calico deployments run it", () => {
    let nodeIp: string;
    let policyKey: string;

    beforeAll(async () => {
      // node 0's namespace: <underlay address>:2379 → unix socket → etcd on 127.0.0.1.
      const sock = join(work, 'relay.sock');
      relayUnix = createServer((c) => {
        const up = createConnection(etcdPort(), '127.0.0.1');
        c.pipe(up).pipe(c);
        c.on('error', () => up.destroy());
        up.on('error', () => c.destroy());
      });
      await new Promise<void>((r) => relayUnix!.listen(sock, r));
      // The other node: a pod's own node drops its new flows to the node's addresses
      // (defaultEndpointToHostAction Drop), so the attack comes across the cluster.
      const node = state.nodes.find((n) => n.name !== state.pods[1]!.node)!;
      nodeIp = node.underlayIp;
      const script = [
        "const net = require('node:net');",
        'const s = net.createServer((c) => {',
        `  const up = net.createConnection(${JSON.stringify(sock)});`,
        '  c.pipe(up).pipe(c);',
        "  c.on('error', () => up.destroy()); up.on('error', () => c.destroy());",
        '});',
        `s.listen(2379, ${JSON.stringify(nodeIp)}, () => console.log('listening'));`,
      ].join('\n');
      relayNode = spawn('nsenter', [`--net=${node.netns}`, '--', process.execPath, '-e', script], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      await new Promise<void>((resolve, reject) => {
        relayNode!.stdout!.once('data', () => resolve());
        relayNode!.once('exit', (code) => reject(new Error(`relay exited with ${code}`)));
      });
      policyKey = (await keysWithCertificate()).find((k) => k.includes('isolate-web'))!;
      expect(policyKey).toBeDefined();
    }, 30_000);

    const curl = (args: string[]) => inPod('x/client', ['curl', '-sS', '--max-time', '5', ...args]);
    const readAll = JSON.stringify({ key: b64('\0'), range_end: b64('\0') });

    it('with the client certificate the pod could read every key (the path works)', async () => {
      const tls = state.etcd.tls!;
      const r = await curl([
        '-k',
        '--cert',
        tls.clientCert,
        '--key',
        tls.clientKey,
        '-d',
        readAll,
        `https://${nodeIp}:2379/v3/kv/range`,
      ]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(b64(policyKey));
    }, 30_000);

    it('without one it reads nothing and cannot delete the NetworkPolicy: plain HTTP or TLS', async () => {
      // Plain HTTP: etcd closes the connection unanswered (curl 52: empty reply).
      const del = JSON.stringify({ key: b64(policyKey) });
      for (const [path, body] of [
        ['range', readAll],
        ['deleterange', del],
      ] as const) {
        const r = await curl(['-d', body, `http://${nodeIp}:2379/v3/kv/${path}`]);
        expect([path, r.code, r.stdout]).toEqual([path, 52, '']);
      }
      for (const [path, body] of [
        ['range', readAll],
        ['deleterange', del],
        ['put', JSON.stringify({ key: b64(policyKey), value: b64('{}') })],
      ] as const) {
        const r = await curl(['-k', '-d', body, `https://${nodeIp}:2379/v3/kv/${path}`]);
        // etcd asks for a certificate and gets none. Under TLS 1.3 the server's alert comes
        // after the client's Finished, so curl meets it in the handshake (35), writing the
        // request (55) or reading the answer (56), whichever comes first.
        expect([path, [35, 55, 56].includes(r.code) ? 'refused' : r.code, r.stdout]).toEqual([
          path,
          'refused',
          '',
        ]);
      }
      expect(await keysWithCertificate()).toContain(policyKey);
      expect(await lab!.probe('x/client', 'x/web')).toBe(false);
    }, 60_000);
  });
});
