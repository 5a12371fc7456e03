/**
 * The ClusterInformation `default` every Calico store has: calicoctl reads it (`version`
 * refuses a store without it; `ipam check` and `datastore migrate` need it), and Calico's
 * node agent creates it when it starts. tortie's agent does the same, once, when it
 * registers its node (src/agent/agent.ts): the one place a store is initialised.
 *
 * What it writes is what Calico's client writes (libcalico-go ensureClusterInformation):
 * a random `clusterGUID` (32 hex digits) and `datastoreReady: true`, plus `clusterType`
 * "tortie". It writes no `calicoVersion`: calicoctl compares that with its own version and
 * refuses every command on a mismatch (without --allow-version-mismatch), so a tortie
 * version there would lock calicoctl out. An existing ClusterInformation (a Calico store
 * taken over) is left exactly as it is.
 */
import { randomBytes } from 'node:crypto';
import type { EtcdKvClient } from './etcd/client.js';
import { isDatastoreError } from './errors.js';
import type { Datastore } from './store.js';

export const CLUSTER_INFO_NAME = 'default';

/** `calicoctl version` prints it as "Cluster Type". */
export const TORTIE_CLUSTER_TYPE = 'tortie';

/** The ClusterInformation a new store gets (clusterGUID random, as Calico's). */
export function newClusterInformation(guid: string = randomBytes(16).toString('hex')): unknown {
  return {
    apiVersion: 'projectcalico.org/v3',
    kind: 'ClusterInformation',
    metadata: { name: CLUSTER_INFO_NAME },
    spec: { clusterGUID: guid, clusterType: TORTIE_CLUSTER_TYPE, datastoreReady: true },
  };
}

/**
 * Creates ClusterInformation `default` unless the store has one; true when it created
 * it. Safe to race: whoever loses finds it there.
 */
export async function ensureClusterInformation<C extends EtcdKvClient>(
  ds: Datastore<C>,
): Promise<boolean> {
  if ((await ds.get('ClusterInformation', CLUSTER_INFO_NAME)) !== undefined) return false;
  try {
    await ds.create(newClusterInformation());
    return true;
  } catch (e) {
    if (isDatastoreError(e) && e.kind === 'already-exists') return false;
    throw e;
  }
}
