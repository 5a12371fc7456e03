/**
 * etcd over TLS with client certificates: certificates made here with openssl, an etcd
 * member started here (https on loopback, --client-cert-auth), stopped in afterAll.
 * Needs the Debian packages openssl and etcd-server: a missing one fails, naming it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { datastoreFrom } from '../../src/cli/context.js';
import { Datastore, isDatastoreError } from '../../src/datastore/index.js';
import { freePort } from '../../src/lab/etcd.js';
import { requireCommand } from '../helpers/tools.js';
import { newRunId } from '../helpers/netns.js';

const run = newRunId();
let dir: string;
let etcd: ChildProcess | undefined;
let endpoint: string;
const file = (name: string) => join(dir, name);

let opensslPath = 'openssl';

function openssl(args: string[]): void {
  const r = spawnSync(opensslPath, args, { cwd: dir, encoding: 'utf8' });
  if (r.error) throw new Error(`openssl ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`);
}

/** A CA, and a certificate it signs for `name` with these X.509 extensions. */
async function certificate(name: string, extensions: string): Promise<void> {
  await writeFile(file(`${name}.ext`), `${extensions}\n`);
  openssl([
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
    '-subj',
    `/CN=${name}`,
  ]);
  openssl([
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    `${name}.pem`,
    '-days',
    '1',
    '-extfile',
    `${name}.ext`,
  ]);
}

/** Until the member answers a TLS client (it is starting); fails at once if it exited. */
async function waitUntilServing(
  tls: { ca: string; cert: string; key: string },
  output: () => string,
): Promise<void> {
  const ds = await Datastore.connect({ endpoints: [endpoint], tls, timeoutMs: 5000 });
  try {
    const deadline = Date.now() + 90_000;
    for (;;) {
      if (etcd?.exitCode !== null) throw new Error(`etcd exited: ${output().slice(-2000)}`);
      try {
        await ds.list('Tier');
        return;
      } catch (e) {
        if (Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  } finally {
    await ds.close();
  }
}

const tls = () => ({ ca: file('ca.pem'), cert: file('client.pem'), key: file('client.key') });

beforeAll(async () => {
  opensslPath = requireCommand('openssl');
  const etcdPath = requireCommand('etcd');
  dir = await mkdtemp(join(tmpdir(), `tortie-tls-${run}-`));
  openssl([
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '1',
    '-subj',
    '/CN=tortie-test-ca',
  ]);
  await certificate('server', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth');
  await certificate('client', 'extendedKeyUsage=clientAuth');
  const [client, peer] = [await freePort(), await freePort()];
  endpoint = `https://127.0.0.1:${client}`;
  etcd = spawn(
    etcdPath,
    [
      `--name=tls-${run}`,
      `--data-dir=${file('data')}`,
      `--listen-client-urls=${endpoint}`,
      `--advertise-client-urls=${endpoint}`,
      `--listen-peer-urls=http://127.0.0.1:${peer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peer}`,
      `--initial-cluster=tls-${run}=http://127.0.0.1:${peer}`,
      `--cert-file=${file('server.pem')}`,
      `--key-file=${file('server.key')}`,
      `--trusted-ca-file=${file('ca.pem')}`,
      '--client-cert-auth',
      '--log-level=error',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let etcdErr = '';
  etcd.stderr!.on('data', (d: Buffer) => (etcdErr += d.toString()));
  await waitUntilServing(tls(), () => etcdErr);
});

afterAll(async () => {
  if (etcd && etcd.exitCode === null) {
    const exited = new Promise((r) => etcd!.once('exit', r));
    etcd.kill('SIGTERM');
    await exited;
  }
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('etcd with TLS client certificates', () => {
  it('the store reads and writes with CA, certificate and key given as files', async () => {
    const ds = await Datastore.connect({
      endpoints: [endpoint],
      tls: tls(),
      prefix: `/tls-${run}`,
    });
    try {
      await ds.apply({
        apiVersion: 'tortie.io/v1',
        kind: 'Tier',
        metadata: { name: 'secure' },
        spec: { order: 1 },
      });
      expect((await ds.get('Tier', 'secure'))?.spec).toEqual({ order: 1 });
    } finally {
      await ds.close();
    }
  });

  it('the CLI options --etcd-ca-cert, --etcd-cert and --etcd-key reach the connection', async () => {
    const config = file('empty.yaml');
    await writeFile(config, '');
    const ds = await datastoreFrom({
      config,
      etcdEndpoints: endpoint.replace('https://', ''), // no scheme: TLS settings make it https
      etcdCaCert: file('ca.pem'),
      etcdCert: file('client.pem'),
      etcdKey: file('client.key'),
      etcdPrefix: `/tls-${run}`,
    });
    try {
      expect((await ds.list('Tier')).map((t) => t.metadata.name)).toEqual(['secure']);
    } finally {
      await ds.close();
    }
  });

  it('without a client certificate the server refuses: unavailable, within the deadline', async () => {
    const ds = await Datastore.connect({
      endpoints: [endpoint],
      tls: { ca: file('ca.pem') },
      timeoutMs: 2000,
    });
    try {
      const e = await ds.list('Tier').catch((x: unknown) => x);
      expect(isDatastoreError(e, 'unavailable')).toBe(true);
    } finally {
      await ds.close();
    }
  });

  it('a certificate file that cannot be read is named', async () => {
    const e = await Datastore.connect({
      endpoints: [endpoint],
      tls: { ca: file('nope.pem') },
    }).catch((x: unknown) => x);
    expect(isDatastoreError(e, 'invalid')).toBe(true);
    expect((e as Error).message).toBe(
      `cannot read the etcd CA certificate ${file('nope.pem')}: ENOENT`,
    );
  });
});
