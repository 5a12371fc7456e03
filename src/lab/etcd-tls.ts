/**
 * Certificates for a lab's etcd run with `--client-cert-auth` (`tortie lab up --etcd-tls`),
 * made with openssl when the lab starts, in a directory of the lab's:
 *
 *   ca.pem, ca.key          a CA of this lab only (P-256, valid 30 days)
 *   server.pem, server.key  etcd's: SAN IP:127.0.0.1 (where the lab's members listen),
 *                           serverAuth for clients and clientAuth for the peer links
 *   client.pem, client.key  the lab's one client certificate (CN tortie-lab-client): the
 *                           agents, the CNI plugin and the CLI (the lab's tortie.yaml)
 *
 * Keys are 0600. Nothing here is meant for a real cluster, where each component gets a
 * certificate of its own (docs/etcd-security.md).
 */
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);

/** Where a lab's etcd TLS files are (absolute paths). */
export interface EtcdTlsFiles {
  readonly dir: string;
  readonly ca: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
}

/** The files `makeEtcdCertificates(dir)` writes, without making them. */
export function etcdTlsFiles(dir: string): EtcdTlsFiles {
  return {
    dir,
    ca: join(dir, 'ca.pem'),
    serverCert: join(dir, 'server.pem'),
    serverKey: join(dir, 'server.key'),
    clientCert: join(dir, 'client.pem'),
    clientKey: join(dir, 'client.key'),
  };
}

/** What a client (src/datastore's `tls`) needs of them. */
export function clientTls(files: EtcdTlsFiles): { ca: string; cert: string; key: string } {
  return { ca: files.ca, cert: files.clientCert, key: files.clientKey };
}

async function openssl(dir: string, args: string[]): Promise<void> {
  try {
    await exec('openssl', args, { cwd: dir });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT')
      throw new Error('etcd TLS: openssl is not installed (apt-get install openssl)');
    throw new Error(`etcd TLS: openssl ${args[0]} failed: ${err.stderr ?? err.message}`);
  }
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** A key and a certificate for `name` signed by the CA in `dir`, with these extensions. */
async function signed(dir: string, name: string, cn: string, extensions: string): Promise<void> {
  writeFileSync(join(dir, `${name}.ext`), `${extensions}\n`);
  await openssl(dir, [
    'req',
    ...EC_KEY,
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
    '-subj',
    `/CN=${cn}`,
  ]);
  await openssl(dir, [
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
    '30',
    '-extfile',
    `${name}.ext`,
  ]);
  chmodSync(join(dir, `${name}.key`), 0o600);
}

/** Makes the CA, etcd's server certificate and the lab's client certificate in `dir`. */
export async function makeEtcdCertificates(dir: string, labId: string): Promise<EtcdTlsFiles> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  await openssl(dir, [
    'req',
    '-x509',
    ...EC_KEY,
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '30',
    '-subj',
    `/CN=tortie lab ${labId} etcd CA`,
  ]);
  chmodSync(join(dir, 'ca.key'), 0o600);
  await signed(
    dir,
    'server',
    `tortie-${labId}-etcd`,
    'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth',
  );
  await signed(dir, 'client', 'tortie-lab-client', 'extendedKeyUsage=clientAuth');
  return etcdTlsFiles(dir);
}
