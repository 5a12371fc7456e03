/**
 * Peer programs the tests drive tortie with, built from their Go modules by
 * scripts/build-peers.sh into a cache outside the repo (docs/peers.md). A cached binary of the
 * pinned version is reused at once; a cold build takes minutes (.ci/run builds before the
 * tests, so a CI run finds it cached). A build that cannot happen (no Go, Go too old, the
 * module proxy refusing) is a failure with the script's message, never a skip.
 */
import { spawn } from 'node:child_process';
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
