/**
 * The certificates and keys of a lab's kube-apiserver, made with openssl when it starts, in
 * its directory (keys 0600):
 *
 *   ca.pem, ca.key            a CA of this API server only (P-256, valid 30 days): it signs
 *                             the serving certificate and every client certificate, and is
 *                             the API server's --client-ca-file
 *   apiserver.pem, .key       the serving certificate: 127.0.0.1, localhost, and the names
 *                             and service IP a pod would use (kubernetes.default.svc, 10.96.0.1)
 *   admin.pem, admin.key      the lab's administrator: CN tortie-admin, O system:masters
 *   sa.key, sa.pub            the service-account signing key pair (RSA 2048)
 *   users/<name>.pem, .key    further client certificates (`makeClientCertificate`), e.g. a
 *                             node's (CN system:node:<node>, O system:nodes)
 *
 * Nothing here is meant for a real cluster.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);

/** Where an API server's certificate files are (absolute paths). */
export interface KubeCertFiles {
  readonly dir: string;
  readonly ca: string;
  readonly caKey: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly adminCert: string;
  readonly adminKey: string;
  readonly saKey: string;
  readonly saPub: string;
}

export function kubeCertFiles(dir: string): KubeCertFiles {
  return {
    dir,
    ca: join(dir, 'ca.pem'),
    caKey: join(dir, 'ca.key'),
    serverCert: join(dir, 'apiserver.pem'),
    serverKey: join(dir, 'apiserver.key'),
    adminCert: join(dir, 'admin.pem'),
    adminKey: join(dir, 'admin.key'),
    saKey: join(dir, 'sa.key'),
    saPub: join(dir, 'sa.pub'),
  };
}

async function openssl(cwd: string, args: string[]): Promise<void> {
  try {
    await exec('openssl', args, { cwd });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT')
      throw new Error(
        'kube-apiserver certificates: openssl is not installed (apt-get install openssl)',
      );
    throw new Error(
      `kube-apiserver certificates: openssl ${args[0]} failed: ${err.stderr ?? err.message}`,
    );
  }
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** `/CN=…/O=…/O=…` with the characters openssl's -subj treats specially escaped. */
function subject(cn: string, orgs: readonly string[]): string {
  const esc = (s: string) => s.replace(/[/\\+=,]/g, (c) => `\\${c}`);
  return `/CN=${esc(cn)}${orgs.map((o) => `/O=${esc(o)}`).join('')}`;
}

/** A key and certificate `<base>.key` and `<base>.pem`, signed by the API server's CA. */
async function signed(
  files: KubeCertFiles,
  base: string,
  cn: string,
  orgs: readonly string[],
  extensions: string,
): Promise<{ cert: string; key: string }> {
  const ext = `${base}.ext`;
  writeFileSync(ext, `${extensions}\n`);
  await openssl(files.dir, [
    'req',
    ...EC_KEY,
    '-keyout',
    `${base}.key`,
    '-out',
    `${base}.csr`,
    '-subj',
    subject(cn, orgs),
  ]);
  await openssl(files.dir, [
    'x509',
    '-req',
    '-in',
    `${base}.csr`,
    '-CA',
    files.ca,
    '-CAkey',
    files.caKey,
    // A random serial rather than a serial file: certificates may be signed side by side.
    '-set_serial',
    `0x01${randomBytes(15).toString('hex')}`,
    '-out',
    `${base}.pem`,
    '-days',
    '30',
    '-extfile',
    ext,
  ]);
  chmodSync(`${base}.key`, 0o600);
  return { cert: `${base}.pem`, key: `${base}.key` };
}

/** Makes the CA, the serving and admin certificates and the service-account keys in `dir`. */
export async function makeKubeCertificates(dir: string, id: string): Promise<KubeCertFiles> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const files = kubeCertFiles(dir);
  await openssl(dir, [
    'req',
    '-x509',
    ...EC_KEY,
    '-keyout',
    files.caKey,
    '-out',
    files.ca,
    '-days',
    '30',
    '-subj',
    `/CN=tortie lab ${id} kubernetes CA`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign,digitalSignature',
  ]);
  chmodSync(files.caKey, 0o600);
  await signed(
    files,
    join(dir, 'apiserver'),
    'kube-apiserver',
    [],
    [
      'subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,' +
        'DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local',
      'extendedKeyUsage=serverAuth',
      'keyUsage=critical,digitalSignature,keyEncipherment',
    ].join('\n'),
  );
  await signed(files, join(dir, 'admin'), 'tortie-admin', ['system:masters'], CLIENT_EXT);
  await openssl(dir, [
    'genpkey',
    '-algorithm',
    'RSA',
    '-pkeyopt',
    'rsa_keygen_bits:2048',
    '-out',
    files.saKey,
  ]);
  chmodSync(files.saKey, 0o600);
  await openssl(dir, ['pkey', '-in', files.saKey, '-pubout', '-out', files.saPub]);
  return files;
}

const CLIENT_EXT = 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature';

/**
 * A client certificate for user `cn` in groups `orgs` (Kubernetes reads the user from CN and
 * the groups from O), signed by the API server's CA: `users/<file>.pem` and `.key`.
 */
export async function makeClientCertificate(
  files: KubeCertFiles,
  file: string,
  cn: string,
  orgs: readonly string[] = [],
): Promise<{ cert: string; key: string }> {
  if (!/^[A-Za-z0-9._-]+$/.test(file))
    throw new Error(`client certificate file name "${file}": use letters, digits, . _ -`);
  const users = join(files.dir, 'users');
  mkdirSync(users, { recursive: true, mode: 0o700 });
  return signed(files, join(users, file), cn, orgs, CLIENT_EXT);
}
