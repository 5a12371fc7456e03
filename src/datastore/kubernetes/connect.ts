/**
 * The store on the Kubernetes API: `connectKubernetesDatastore` reads the connection
 * settings (a kubeconfig file, $KUBECONFIG, or the pod's service account), checks that the
 * custom resources tortie stores its ranges in are installed (naming the missing ones), and
 * returns a Datastore over the emulated etcd client (./kv.ts) together with that client,
 * which IPAM takes as it takes an etcd client.
 */
import { Datastore } from '../store.js';
import { DatastoreError } from '../errors.js';
import { DEFAULT_PREFIX } from '../kinds.js';
import { KubeClient, isKubeApiError } from './client.js';
import { KubeKv, registerMappings } from './kv.js';
import type { KeyMapping } from './mapping.js';

export interface KubernetesConnectOptions {
  /** A kubeconfig file; else $KUBECONFIG; else the in-cluster service account. */
  readonly kubeconfig?: string;
  /** The kubeconfig context (default: its current-context). */
  readonly context?: string;
  /** The store's key prefix (default "/calico"); it names no object, only the key layout. */
  readonly prefix?: string;
  /** Deadline of each call, ms. */
  readonly timeoutMs?: number;
  /** Check that the custom resources are installed (default true). */
  readonly checkCrds?: boolean;
}

export interface KubernetesDatastore {
  readonly datastore: Datastore<KubeKv>;
  /** The emulated etcd client (for IPAM: `new Ipam(kv, datastore.prefix)`); close() closes it. */
  readonly kv: KubeKv;
}

/** The custom resources (`<plural>.<group>`) the mappings need that the API server does not serve. */
export async function missingResources(
  api: KubeClient,
  mappings: readonly KeyMapping[],
  deadline: number = Date.now() + 10_000,
): Promise<string[]> {
  const byGroupVersion = new Map<string, Set<string>>();
  for (const m of mappings) {
    if (m.resource.group === '') continue;
    const gv = `${m.resource.group}/${m.resource.version}`;
    const s = byGroupVersion.get(gv) ?? new Set<string>();
    s.add(m.resource.plural);
    byGroupVersion.set(gv, s);
  }
  const missing: string[] = [];
  for (const [gv, plurals] of byGroupVersion) {
    let served = new Set<string>();
    try {
      const list = await api.request<{ resources?: { name: string }[] }>('GET', `/apis/${gv}`, {
        deadline,
      });
      served = new Set((list.resources ?? []).map((r) => r.name));
    } catch (e) {
      if (!isKubeApiError(e, 404)) throw e;
    }
    const group = gv.slice(0, gv.indexOf('/'));
    for (const p of plurals) if (!served.has(p)) missing.push(`${p}.${group}`);
  }
  return missing.sort();
}

export async function connectKubernetesDatastore(
  options: KubernetesConnectOptions = {},
): Promise<KubernetesDatastore> {
  let api: KubeClient;
  try {
    api = await KubeClient.connect(options);
  } catch (e) {
    throw new DatastoreError('invalid', (e as Error).message, [], { cause: e });
  }
  const prefix = (options.prefix ?? DEFAULT_PREFIX).replace(/\/+$/, '');
  const kv = new KubeKv(api, { prefix, mappings: registerMappings(prefix) });
  if (options.checkCrds !== false) {
    let missing: string[];
    try {
      missing = await missingResources(
        api,
        kv.mappings,
        Date.now() + (options.timeoutMs ?? 10_000),
      );
    } catch (e) {
      kv.close();
      throw new DatastoreError(
        'unavailable',
        `the Kubernetes API server ${api.connection.server} (${api.connection.source}): ${(e as Error).message}`,
        [],
        { cause: e },
      );
    }
    if (missing.length > 0) {
      kv.close();
      throw new DatastoreError(
        'unavailable',
        `the Kubernetes API server ${api.connection.server} does not serve ${missing.join(', ')}: install tortie's CustomResourceDefinitions (kubectl apply -f manifests/)`,
      );
    }
  }
  const datastore = Datastore.fromClient(kv, {
    prefix,
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    endpoints: [`${api.connection.server} (Kubernetes API)`],
  });
  return { datastore, kv };
}
