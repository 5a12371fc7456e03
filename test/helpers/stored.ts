/**
 * A resource as the store hands it to its readers (uid, creationTimestamp and a
 * resourceVersion filled in), for unit tests that feed the cluster model or buildWorld
 * without an etcd.
 */
import type { StoredResource } from '../../src/datastore/index.js';

export function storedResource(
  o: {
    readonly apiVersion: string;
    readonly kind: string;
    readonly name: string;
    readonly namespace?: string | undefined;
    readonly labels?: Record<string, string> | undefined;
    readonly resourceVersion: number;
  },
  spec: object,
): StoredResource {
  return {
    apiVersion: o.apiVersion,
    kind: o.kind,
    metadata: {
      name: o.name,
      ...(o.namespace === undefined ? {} : { namespace: o.namespace }),
      uid: `uid-${o.name}`,
      creationTimestamp: '2026-01-01T00:00:00Z',
      resourceVersion: String(o.resourceVersion),
      ...(o.labels ? { labels: o.labels } : {}),
    },
    spec: spec as Record<string, unknown>,
  };
}
