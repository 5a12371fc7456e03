/**
 * Peer programs the tests drive tortie with, built from their Go modules by
 * scripts/build-peers.sh into a cache outside the repo (docs/peers.md). A cached binary of the
 * pinned version is reused at once; a cold build takes minutes (.ci/run builds before the
 * tests, so a CI run finds it cached). A build that cannot happen (no Go, Go too old, the
 * module proxy refusing) is a failure with the script's message, never a skip.
 */
import { execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(new URL('../../scripts/build-peers.sh', import.meta.url));

/** calicoctl's pinned release (scripts/build-peers.sh, CALICO_RELEASE). */
export const CALICOCTL_RELEASE = 'v3.28.5';

/** How long a cold build may take in a test hook (a loaded 2-core machine took ~6 min). */
export const PEER_BUILD_TIMEOUT_MS = 20 * 60_000;

/** The path of the cached calicoctl, built first when the cache has none of the pin. */
export function calicoctlBinary(): Promise<string> {
  return new Promise((resolve, reject) => {
    // Asynchronous: the build's minutes must not block vitest's worker (its RPC heartbeat).
    const child = spawn('bash', [SCRIPT, 'calicoctl'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', (e) =>
      reject(new Error(`scripts/build-peers.sh did not start: ${e.message}`)),
    );
    child.on('close', (code) => {
      const path = out.trim().split('\n').pop() ?? '';
      if (code === 0 && path.endsWith('/calicoctl')) resolve(path);
      else
        reject(
          new Error(
            `scripts/build-peers.sh calicoctl failed (exit ${code}):\n${err.trim().split('\n').slice(-15).join('\n')}`,
          ),
        );
    });
  });
}

export interface CalicoctlRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Where calicoctl finds its etcd: endpoints, and the client certificate files if any. */
export interface CalicoctlEtcd {
  readonly endpoints: readonly string[];
  readonly tls?: { readonly ca: string; readonly clientCert: string; readonly clientKey: string };
}

/**
 * Runs calicoctl against an etcd as a Calico user points it at one (DATASTORE_TYPE=etcdv3,
 * ETCD_ENDPOINTS, ETCD_*_FILE), with nothing else of the test's environment. Never rejects:
 * the exit code is the caller's to judge (a refusal is what some tests look for).
 */
export function runCalicoctl(
  bin: string,
  etcd: CalicoctlEtcd,
  args: readonly string[],
): Promise<CalicoctlRun> {
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    DATASTORE_TYPE: 'etcdv3',
    ETCD_ENDPOINTS: etcd.endpoints.join(','),
    ...(etcd.tls === undefined
      ? {}
      : {
          ETCD_CA_CERT_FILE: etcd.tls.ca,
          ETCD_CERT_FILE: etcd.tls.clientCert,
          ETCD_KEY_FILE: etcd.tls.clientKey,
        }),
  };
  return execCalicoctl(bin, env, args);
}

/**
 * Runs calicoctl against a Kubernetes API server as a Calico user on the Kubernetes
 * datastore does (DATASTORE_TYPE=kubernetes, KUBECONFIG), with nothing else of the test's
 * environment; never rejects.
 */
export function runCalicoctlKube(
  bin: string,
  kubeconfig: string,
  args: readonly string[],
): Promise<CalicoctlRun> {
  return execCalicoctl(
    bin,
    {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      DATASTORE_TYPE: 'kubernetes',
      KUBECONFIG: kubeconfig,
    },
    args,
  );
}

function execCalicoctl(
  bin: string,
  env: NodeJS.ProcessEnv,
  args: readonly string[],
): Promise<CalicoctlRun> {
  return new Promise((resolve) => {
    execFile(bin, [...args], { env, timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}
