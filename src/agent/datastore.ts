/**
 * The agent's (and the CLI's) way to the datastore: etcd v3, or the Kubernetes API
 * (src/datastore/kubernetes: the same KV calls served by API resources). Both give a
 * `Datastore` over a client with etcd's range, txn and watch stream; what differs is
 * said by `capabilities`: etcd has leases and one revision order for every key, the
 * Kubernetes API has neither (status records carry a renew time; revisions are compared
 * per kind).
 */
import {
  connectKubernetesDatastore,
  Datastore,
  type ConnectOptions,
  type EtcdWatchClient,
} from '../datastore/index.js';
import type { DatastoreType } from './config.js';

/** A store over either client. */
export type AgentStore = Datastore<EtcdWatchClient>;

export interface DatastoreSettings {
  readonly datastoreType: DatastoreType;
  /** etcd's connection; its prefix is the key layout's prefix on both datastores. */
  readonly etcd: ConnectOptions;
  /** Kubernetes: the kubeconfig file; undefined: the in-cluster service account. */
  readonly kubeconfig: string | undefined;
}

/** What a datastore can do that the agent's status and waits depend on. */
export interface DatastoreCapabilities {
  /**
   * etcd: keys bound to a lease expire with it (the heartbeat). Kubernetes: no leases;
   * a status record carries its renew time and TTL and readers judge it.
   */
  readonly leases: boolean;
  /**
   * etcd: one revision counter orders every key, so "programmed at revision R" covers every
   * kind. Kubernetes: the watch delivers several API resources whose resourceVersions are
   * not ordered across them, so a wait names the kind.
   */
  readonly globalRevisions: boolean;
}

export function capabilitiesOf(type: DatastoreType): DatastoreCapabilities {
  return type === 'kubernetes'
    ? { leases: false, globalRevisions: false }
    : { leases: true, globalRevisions: true };
}

/** Where the store is, for logs and messages. */
export function describeDatastore(s: DatastoreSettings): string {
  if (s.datastoreType === 'etcd') return `etcd ${s.etcd.endpoints.join(',')}`;
  return `kubernetes ${s.kubeconfig ?? '(in-cluster service account)'}`;
}

/**
 * A store for these settings (nothing dialled before the first call on etcd); the caller
 * closes it, which closes its client. `timeoutMs` overrides the settings' call deadline.
 *
 * `checkCrds` (Kubernetes): ask the API server at once whether tortie's custom resources
 * are installed, naming the missing ones. The CLI does; the agent does not, since it must
 * start (and keep its dataplane) while the API server is down, as it does while etcd is.
 */
export async function connectDatastore(
  s: DatastoreSettings,
  timeoutMs?: number,
  options: { readonly checkCrds?: boolean } = {},
): Promise<AgentStore> {
  const deadline = timeoutMs ?? s.etcd.timeoutMs;
  if (s.datastoreType === 'kubernetes') {
    const { datastore, kv } = await connectKubernetesDatastore({
      ...(s.kubeconfig === undefined ? {} : { kubeconfig: s.kubeconfig }),
      ...(s.etcd.prefix === undefined ? {} : { prefix: s.etcd.prefix }),
      ...(deadline === undefined ? {} : { timeoutMs: deadline }),
      checkCrds: options.checkCrds ?? true,
    });
    // The store is made over a client it does not own; this one is ours alone, so
    // closing the store closes it too (as Datastore.connect's does on etcd).
    const closeStore = datastore.close.bind(datastore);
    datastore.close = async () => {
      try {
        await closeStore();
      } finally {
        kv.close();
      }
    };
    return datastore;
  }
  return Datastore.connect(deadline === undefined ? s.etcd : { ...s.etcd, timeoutMs: deadline });
}
