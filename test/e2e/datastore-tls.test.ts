/**
 * etcd over TLS with client certificates: the lab's certificates (src/lab/etcd-tls.ts,
 * made with openssl) and an etcd member started by the lab's startEtcd (https on
 * loopback, --client-cert-auth; fresh ports when one is taken before etcd binds it),
 * stopped in afterAll. Needs the Debian packages openssl and etcd-server: a missing one
 * fails, naming it.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { datastoreFrom } from '../../src/cli/context.js';
import { Datastore, isDatastoreError } from '../../src/datastore/index.js';
import { freePort, startEtcd } from '../../src/lab/etcd.js';
import { clientTls, makeEtcdCertificates, type EtcdTlsFiles } from '../../src/lab/etcd-tls.js';
import { requireCommand } from '../helpers/tools.js';
import { newRunId } from '../helpers/netns.js';

const run = newRunId();
let dir: string;
let stopEtcd: (() => Promise<void>) | undefined;
let endpoint: string;
const file = (name: string) => join(dir, name);

let files: EtcdTlsFiles;
const tls = () => clientTls(files);

/** A member serving https with the lab's certificates, its ports from `port`. */
async function startTlsEtcd(
  id: string,
  port: () => Promise<number> = freePort,
): Promise<{ endpoint: string; stop: () => Promise<void> }> {
  const cluster = await startEtcd(id, 1, { tls: files, port });
  return { endpoint: cluster.endpoints[0]!, stop: () => cluster.stop() };
}

beforeAll(async () => {
  requireCommand('openssl');
  requireCommand('etcd');
  dir = await mkdtemp(join(tmpdir(), `tortie-tls-${run}-`));
  files = await makeEtcdCertificates(join(dir, 'certs'), `tls${run}`);
  const member = await startTlsEtcd(`tls${run}`);
  endpoint = member.endpoint;
  stopEtcd = member.stop;
});

afterAll(async () => {
  await stopEtcd?.();
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
      etcdCaCert: files.ca,
      etcdCert: files.clientCert,
      etcdKey: files.clientKey,
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
      tls: { ca: files.ca },
      timeoutMs: 2000,
    });
    try {
      const e = await ds.list('Tier').catch((x: unknown) => x);
      expect(isDatastoreError(e, 'unavailable')).toBe(true);
    } finally {
      await ds.close();
    }
  });

  it('a member whose port is taken before it binds starts on fresh ports', async () => {
    // The first port handed out is one this test listens on, as another process might.
    // Clients that reached it (the first attempt's) are ended, or close() waits for them.
    const held: Socket[] = [];
    const holder = createServer((socket) => held.push(socket));
    const taken = await new Promise<number>((resolve) =>
      holder.listen(0, '127.0.0.1', () => resolve((holder.address() as AddressInfo).port)),
    );
    const handedOut: number[] = [];
    const port = async (): Promise<number> => {
      const p = handedOut.length === 0 ? taken : await freePort();
      handedOut.push(p);
      return p;
    };
    try {
      const member = await startTlsEtcd(`tls2${run}`, port);
      try {
        expect(handedOut[0]).toBe(taken);
        expect(member.endpoint).not.toContain(`:${taken}`);
        const ds = await Datastore.connect({ endpoints: [member.endpoint], tls: tls() });
        try {
          expect(await ds.list('Tier')).toEqual([]);
        } finally {
          await ds.close();
        }
      } finally {
        await member.stop();
      }
    } finally {
      for (const socket of held) socket.destroy();
      await new Promise((r) => holder.close(r));
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
