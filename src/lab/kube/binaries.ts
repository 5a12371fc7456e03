/**
 * Where the lab's kube-apiserver and etcd (3.6) binaries are: the env overrides
 * TORTIE_KUBE_APISERVER and TORTIE_KUBE_ETCD, otherwise what `scripts/build-peers.sh
 * kube-apiserver etcd` prints (it builds them into /var/cache/tortie/peers once, then
 * answers from the cache at once; docs/peers.md). Debian's etcd 3.4 is too old for
 * Kubernetes 1.34 (it needs >= 3.5.24), so the lab never takes `etcd` from PATH here.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { packagePath } from '../../util/package-root.js';

export interface KubeBinaries {
  readonly apiserver: string;
  readonly etcd: string;
}

/** The pinned releases (scripts/build-peers.sh). */
export const KUBE_RELEASE = 'v1.34.4';
export const ETCD_RELEASE = 'v3.6.5';

function executable(path: string, what: string): string {
  try {
    accessSync(path, constants.X_OK);
  } catch {
    throw new Error(`${what}: ${path} is not an executable file`);
  }
  return path;
}

function buildPeers(peers: readonly string[]): Promise<string[]> {
  const script = packagePath('scripts', 'build-peers.sh');
  return new Promise((resolve, reject) => {
    // Asynchronous: a cold build takes minutes and must not block the caller's event loop.
    const child = spawn('bash', [script, ...peers], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', (e) => reject(new Error(`${script} did not start: ${e.message}`)));
    child.on('close', (code) => {
      const paths = out.trim().split('\n').filter(Boolean);
      if (code === 0 && paths.length === peers.length) resolve(paths);
      else
        reject(
          new Error(
            `scripts/build-peers.sh ${peers.join(' ')} failed (exit ${code}):\n` +
              err.trim().split('\n').slice(-15).join('\n'),
          ),
        );
    });
  });
}

/** The binaries to run, built first when neither an override nor the cache has them. */
export async function kubeBinaries(env: NodeJS.ProcessEnv = process.env): Promise<KubeBinaries> {
  const apiserverEnv = env.TORTIE_KUBE_APISERVER;
  const etcdEnv = env.TORTIE_KUBE_ETCD;
  const wanted: string[] = [];
  if (!apiserverEnv) wanted.push('kube-apiserver');
  if (!etcdEnv) wanted.push('etcd');
  const built = wanted.length === 0 ? [] : await buildPeers(wanted);
  const pick = (name: string, override: string | undefined, what: string) =>
    executable(override || built[wanted.indexOf(name)]!, what);
  return {
    apiserver: pick('kube-apiserver', apiserverEnv, 'TORTIE_KUBE_APISERVER (kube-apiserver)'),
    etcd: pick('etcd', etcdEnv, 'TORTIE_KUBE_ETCD (etcd 3.6)'),
  };
}
