/**
 * Object metadata at the edge. Strict: a field outside Kubernetes' ObjectMeta is refused
 * (with the nearest name). `uid`, `resourceVersion` and `creationTimestamp` are accepted
 * (objects read back with `get -o yaml` or exported by calicoctl carry them); the store
 * owns them: `resourceVersion` becomes the optimistic-concurrency guard, `uid` must match
 * the stored object, the timestamp is ignored. The other ObjectMeta fields (generation,
 * ownerReferences, finalizers…) are accepted and dropped: nothing in tortie acts on them.
 */
import { z } from 'zod';
import type { KindInfo } from '../kinds.js';
import { annotations, dnsLabel, dnsSubdomain, labels } from './fields.js';
import { fail } from '../../policy/fields.js';

export interface InputMetadata {
  readonly name: string;
  readonly namespace?: string;
  readonly labels: Record<string, string>;
  readonly annotations: Record<string, string>;
  readonly uid?: string;
  readonly resourceVersion?: string;
}

/** Kubernetes ObjectMeta fields that objects may carry; accepted and dropped. */
const K8S_ONLY = {
  deletionTimestamp: z.unknown().optional(),
  deletionGracePeriodSeconds: z.unknown().optional(),
  generation: z.unknown().optional(),
  managedFields: z.unknown().optional(),
  selfLink: z.unknown().optional(),
  finalizers: z.unknown().optional(),
  ownerReferences: z.unknown().optional(),
  generateName: z.unknown().optional(),
};

const resourceVersion = z.string().superRefine((v, ctx) => {
  if (!/^[1-9]\d*$/.test(v))
    fail(ctx, `${JSON.stringify(v)} is not a resource version (a positive integer, as a string)`);
});

/**
 * The metadata schema of one kind. `name` checks the name (policy kinds pass a plain
 * string: src/policy/resources.ts checks their names).
 */
export function metadataSchema(
  info: Pick<KindInfo, 'kind' | 'namespaced'>,
  name: z.ZodType<string, z.ZodTypeDef, unknown> = dnsSubdomain,
) {
  const namespace = info.namespaced
    ? dnsLabel.default('default')
    : z.unknown().superRefine((v, ctx) => {
        if (v !== undefined) fail(ctx, `${info.kind} is cluster-scoped and takes no namespace`);
      });
  const fields = {
    name,
    namespace,
    labels: labels.optional(),
    annotations: annotations.optional(),
    uid: z.string().min(1).optional(),
    resourceVersion: resourceVersion.optional(),
    // calicoctl prints `null` for objects it has built in (projectcalico-default-allow).
    creationTimestamp: z.string().nullable().optional(),
    ...K8S_ONLY,
  };
  return z
    .object(fields)
    .strict()
    .transform((m): InputMetadata => ({
      name: m.name,
      ...(info.namespaced ? { namespace: m.namespace as string } : {}),
      labels: m.labels ?? {},
      annotations: m.annotations ?? {},
      ...(m.uid === undefined ? {} : { uid: m.uid }),
      ...(m.resourceVersion === undefined ? {} : { resourceVersion: m.resourceVersion }),
    }));
}
