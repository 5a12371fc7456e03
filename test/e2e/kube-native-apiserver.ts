/**
 * A kube-apiserver (with its own etcd) for kube-native.test.ts, until the lab's launcher
 * (src/lab/kube/apiserver.ts, test/helpers/kube-api.ts) is on main; then that replaces
 * this file. Binaries: TORTIE_KUBE_APISERVER / TORTIE_KUBE_ETCD, else the prebuilt ones in
 * /tmp/kas and /tmp/etcdb. Certificates made with openssl at start; loopback, free ports;
 * everything under one temporary directory named for the run id, removed by stop().
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, rmSync, writeFileSync, closeSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { newRunId } from '../helpers/netns.js';

export interface NativeTestApiserver {
  readonly kubeconfig: string;
  readonly url: string;
  stop(): Promise<void>;
}

function run(cmd: string, args: readonly string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${stderr || err.message}`));
      else resolve(stdout);
    });
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      s.close(() =>
        typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port')),
      );
    });
  });
}

function binary(env: string, fallback: string, what: string): string {
  const path = process.env[env] ?? fallback;
  if (!existsSync(path)) {
    throw new Error(
      `${what} not found at ${path}: build it with scripts/build-peers.sh (or point ${env} at one)`,
    );
  }
  return path;
}

async function certificates(dir: string): Promise<void> {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await run(
    'openssl',
    [
      'req',
      '-x509',
      ...ec,
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
      '-days',
      '2',
      '-subj',
      '/CN=tortie native test CA',
    ],
    dir,
  );
  const sign = async (base: string, subj: string, ext: string) => {
    writeFileSync(join(dir, `${base}.ext`), ext);
    await run(
      'openssl',
      ['req', ...ec, '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', subj],
      dir,
    );
    await run(
      'openssl',
      [
        'x509',
        '-req',
        '-in',
        `${base}.csr`,
        '-CA',
        'ca.pem',
        '-CAkey',
        'ca.key',
        '-CAcreateserial',
        '-out',
        `${base}.pem`,
        '-days',
        '2',
        '-extfile',
        `${base}.ext`,
      ],
      dir,
    );
  };
  await sign(
    'server',
    '/CN=kube-apiserver',
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n',
  );
  await sign('admin', '/CN=admin/O=system:masters', 'extendedKeyUsage=clientAuth\n');
  await run(
    'openssl',
    ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'sa.key'],
    dir,
  );
  await run('openssl', ['pkey', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], dir);
}

function start(bin: string, args: string[], log: string): ChildProcess {
  const fd = openSync(log, 'a');
  try {
    const child = spawn(bin, args, { stdio: ['ignore', fd, fd] });
    child.on('error', () => undefined);
    return child;
  } finally {
    closeSync(fd);
  }
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
  });
}

export async function startNativeTestApiserver(): Promise<NativeTestApiserver> {
  const apiserverBin = binary('TORTIE_KUBE_APISERVER', '/tmp/kas/kube-apiserver', 'kube-apiserver');
  const etcdBin = binary('TORTIE_KUBE_ETCD', '/tmp/etcdb/etcd', 'etcd');
  const id = newRunId();
  const dir = mkdtempSync(join(tmpdir(), `tortie-kube-native-${id}-`));
  const children: ChildProcess[] = [];
  const stop = async () => {
    for (const c of children.reverse()) await stopChild(c);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await certificates(dir);
    const [etcdPort, peerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    children.push(
      start(
        etcdBin,
        [
          `--name=native-${id}`,
          `--data-dir=${join(dir, 'etcd')}`,
          `--listen-client-urls=${etcdUrl}`,
          `--advertise-client-urls=${etcdUrl}`,
          `--listen-peer-urls=${peerUrl}`,
          `--initial-advertise-peer-urls=${peerUrl}`,
          `--initial-cluster=native-${id}=${peerUrl}`,
          '--log-level=warn',
        ],
        join(dir, 'etcd.log'),
      ),
    );
    children.push(
      start(
        apiserverBin,
        [
          `--etcd-servers=${etcdUrl}`,
          '--bind-address=127.0.0.1',
          '--advertise-address=127.0.0.1',
          `--secure-port=${apiPort}`,
          `--tls-cert-file=${join(dir, 'server.pem')}`,
          `--tls-private-key-file=${join(dir, 'server.key')}`,
          `--cert-dir=${join(dir, 'certs')}`,
          `--client-ca-file=${join(dir, 'ca.pem')}`,
          '--service-account-issuer=https://kubernetes.default.svc',
          `--service-account-key-file=${join(dir, 'sa.pub')}`,
          `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
          '--authorization-mode=RBAC',
          '--service-cluster-ip-range=10.96.0.0/24',
          '--profiling=false',
        ],
        join(dir, 'apiserver.log'),
      ),
    );
    const url = `https://127.0.0.1:${apiPort}`;
    const kubeconfig = join(dir, 'admin.kubeconfig');
    writeFileSync(
      kubeconfig,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters: [{name: native, cluster: {server: "' +
          url +
          '", certificate-authority: "' +
          join(dir, 'ca.pem') +
          '"}}]',
        'users: [{name: admin, user: {client-certificate: "' +
          join(dir, 'admin.pem') +
          '", client-key: "' +
          join(dir, 'admin.key') +
          '"}}]',
        'contexts: [{name: native, context: {cluster: native, user: admin}}]',
        'current-context: native',
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    // Until /readyz answers ok (each try is a real request; the API server takes ~10 s).
    const deadline = Date.now() + 120_000;
    for (;;) {
      const exited = children.find((c) => c.exitCode !== null);
      if (exited !== undefined) {
        throw new Error(
          `${exited.spawnfile} exited with ${exited.exitCode}; see the logs in ${dir}`,
        );
      }
      const ok = await run('kubectl', ['--kubeconfig', kubeconfig, 'get', '--raw', '/readyz'], dir)
        .then((out) => out.trim() === 'ok')
        .catch(() => false);
      if (ok) break;
      if (Date.now() > deadline)
        throw new Error(`kube-apiserver not ready in 120 s; see ${dir}/apiserver.log`);
      await new Promise((r) => setTimeout(r, 500));
    }
    return { kubeconfig, url, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
