/**
 * Kubernetes API objects as the API server serves them, and what tests do with them:
 * apply a JSON merge patch (RFC 7386, what the API server does with one), decode what a
 * native mapping stores and validate it as tortie validates user input.
 */
import { decodeKeyValue, validateObject, type StoredResource } from '../../src/datastore/index.js';
import type { KubeObject } from '../../src/datastore/kubernetes/mapping.js';

export function pod(
  o: {
    name: string;
    namespace?: string;
    node?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    serviceAccountName?: string;
    hostNetwork?: boolean;
    phase?: string;
    podIP?: string;
    podIPs?: string[];
    containers?: unknown[];
  },
  uid = `uid-${o.name}`,
): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: o.name,
      namespace: o.namespace ?? 'default',
      uid,
      resourceVersion: '100',
      creationTimestamp: '2026-12-07T06:00:00Z',
      ...(o.labels === undefined ? {} : { labels: o.labels }),
      ...(o.annotations === undefined ? {} : { annotations: o.annotations }),
    },
    spec: {
      ...(o.node === undefined ? {} : { nodeName: o.node }),
      ...(o.serviceAccountName === undefined ? {} : { serviceAccountName: o.serviceAccountName }),
      ...(o.hostNetwork === undefined ? {} : { hostNetwork: o.hostNetwork }),
      containers: o.containers ?? [{ name: 'main', image: 'busybox' }],
    },
    status: {
      phase: o.phase ?? 'Running',
      ...(o.podIP === undefined ? {} : { podIP: o.podIP }),
      ...(o.podIPs === undefined ? {} : { podIPs: o.podIPs.map((ip) => ({ ip })) }),
    },
  };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** RFC 7386: what the API server does with a merge patch. */
export function mergePatch<T>(target: T, patch: unknown): T {
  if (!isRecord(patch)) return patch as T;
  const out: Record<string, unknown> = isRecord(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out as T;
}

/** The stored value decoded as the store decodes it, at a resourceVersion. */
export function decoded(
  entry: { key: string; value: string },
  prefix: string,
  revision = '100',
): { kind: string; resource: StoredResource } {
  return decodeKeyValue(
    { key: Buffer.from(entry.key), value: Buffer.from(entry.value), mod_revision: revision },
    prefix,
  );
}

/** Validates a decoded resource as the store validates a user's object; the problems, if any. */
export function validationProblems(r: StoredResource): string[] {
  const v = validateObject({
    apiVersion: r.apiVersion,
    kind: r.kind,
    metadata: {
      name: r.metadata.name,
      ...(r.metadata.namespace === undefined ? {} : { namespace: r.metadata.namespace }),
      ...(r.metadata.labels === undefined ? {} : { labels: r.metadata.labels }),
      ...(r.metadata.annotations === undefined ? {} : { annotations: r.metadata.annotations }),
    },
    spec: r.spec,
  });
  return v.ok ? [] : v.details.map((d) => d.message);
}
