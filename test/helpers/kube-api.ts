/**
 * A real kube-apiserver (with its etcd 3.6) for a test file, from src/lab/kube:
 *
 *   let api: KubeApiserver;
 *   beforeAll(async () => (api = await startTestKubeApiserver()), KUBE_START_TIMEOUT_MS);
 *   afterAll(() => api?.stop());
 *
 * The id comes from `newRunId()`, so a run killed before `stop()` leaves a directory and
 * processes that the next run's leftover sweep removes ($TMPDIR/tortie-kube-<id>-…; the
 * processes' command lines name it). The binaries: TORTIE_KUBE_APISERVER / TORTIE_KUBE_ETCD,
 * else scripts/build-peers.sh (built once into /var/cache/tortie/peers; .ci/run builds them
 * before the tests). A missing binary or kubectl is a failure naming what to install.
 */
import {
  kubeBinaries,
  startKubeApiserver,
  type KubeApiserver,
  type KubeBinaries,
  type StartKubeApiserverOptions,
} from '../../src/lab/kube/index.js';
import { newRunId } from './netns.js';
import { PEER_BUILD_TIMEOUT_MS } from './peers.js';

export type { KubeApiserver } from '../../src/lab/kube/index.js';

/** A hook's timeout for starting one: a cold build of the binaries, then the start. */
export const KUBE_START_TIMEOUT_MS = PEER_BUILD_TIMEOUT_MS + 5 * 60_000;

let binaries: Promise<KubeBinaries> | undefined;

/** The binaries, resolved (and built if need be) once per test file. */
export function testKubeBinaries(): Promise<KubeBinaries> {
  binaries ??= kubeBinaries();
  return binaries;
}

/** Starts an API server named for a fresh run id (`k<run id>`). */
export async function startTestKubeApiserver(
  options: Partial<StartKubeApiserverOptions> = {},
): Promise<KubeApiserver> {
  return startKubeApiserver({
    id: `k${newRunId()}`,
    binaries: await testKubeBinaries(),
    ...options,
  });
}

/** A kubectl run that must succeed, as the admin: its stdout. */
export function kubectlOk(api: KubeApiserver, args: readonly string[], input?: string) {
  return api.kubectlOk(args, input === undefined ? {} : { input });
}
