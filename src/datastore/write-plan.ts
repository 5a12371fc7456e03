/**
 * What a create / replace / apply does to each object, decided from what the store
 * held when it was read: the stored form to write, or why the call is refused. Pure:
 * the Datastore reads, plans, then writes everything in one guarded transaction.
 */
import { isDeepStrictEqual } from 'node:util';
import type { StoredResource } from './codec.js';
import { encodeResource, storedSpec } from './codec.js';
import { detail, type DatastoreErrorKind, type ErrorDetail } from './errors.js';
import { describeRef } from './kinds.js';
import type { ValidObject } from './schema/index.js';
import { checkPoolOverlaps, checkPoolUpdate } from './invariants.js';
import type { IPPoolSpec } from './schema/ippool.js';

export type WriteMode = 'apply' | 'create' | 'replace';

export type WriteAction = 'created' | 'updated' | 'unchanged';

export interface PlannedWrite {
  readonly index: number;
  readonly action: WriteAction;
  /** The object as it will be stored (without resourceVersion). */
  readonly resource: StoredResource;
  /** Its encoding; unchanged objects are not written. */
  readonly value: string;
}

export interface Refusal {
  readonly kind: DatastoreErrorKind;
  readonly detail: ErrorDetail;
}

export interface PlanInput {
  readonly mode: WriteMode;
  readonly objects: readonly ValidObject[];
  /** What the store holds for each object's key (aligned with objects). */
  readonly current: readonly (StoredResource | undefined)[];
  /** Every stored IPPool (needed only when the call writes pools). */
  readonly pools: readonly StoredResource<IPPoolSpec>[];
  /** creationTimestamp of new objects. */
  readonly now: string;
  /** uid for each new object, fixed for the whole call so a retried create recognises its own write. */
  readonly uids: readonly string[];
}

export interface Plan {
  readonly writes: readonly PlannedWrite[];
  readonly refusals: readonly Refusal[];
}

/** Which error kind wins when a call is refused for several reasons. */
const SEVERITY: readonly DatastoreErrorKind[] = [
  'invalid',
  'not-found',
  'already-exists',
  'conflict',
  'unavailable',
];

export function dominantKind(refusals: readonly Refusal[]): DatastoreErrorKind {
  return SEVERITY.find((k) => refusals.some((r) => r.kind === k)) ?? 'invalid';
}

function nameOf(o: ValidObject): string {
  return describeRef({ kind: o.info.name, name: o.metadata.name, namespace: o.metadata.namespace });
}

function guard(
  o: ValidObject,
  index: number,
  current: StoredResource | undefined,
  mode: WriteMode,
): Refusal | undefined {
  const who = nameOf(o);
  const refuse = (kind: DatastoreErrorKind, path: string, reason: string): Refusal => ({
    kind,
    detail: detail(who, path, reason, index),
  });
  if (mode === 'replace' && current === undefined) {
    return refuse(
      'not-found',
      '',
      'does not exist, so it cannot be replaced (use create or apply)',
    );
  }
  if (mode === 'create') return undefined;
  const { resourceVersion, uid } = o.metadata;
  // As calicoctl: `apply` of an object that does not exist creates it, whatever
  // resourceVersion it carries (an export applied to an empty store is created); the
  // version guards only an object that is there. (`replace` of a missing one is refused above.)
  if (resourceVersion !== undefined && current !== undefined) {
    if (current.metadata.resourceVersion !== resourceVersion) {
      return refuse(
        'conflict',
        'metadata.resourceVersion',
        `is ${resourceVersion} but the stored object is at ${current.metadata.resourceVersion}: someone changed it since you read it; get it again and redo your change`,
      );
    }
  }
  if (uid !== undefined && current !== undefined && current.metadata.uid !== uid) {
    return refuse(
      'conflict',
      'metadata.uid',
      `is ${uid} but the stored object's uid is ${current.metadata.uid}: it was deleted and created again since you read it`,
    );
  }
  return undefined;
}

function storedForm(
  o: ValidObject,
  current: StoredResource | undefined,
  now: string,
  uid: string,
): StoredResource {
  const { name, namespace, labels, annotations } = o.metadata;
  return {
    apiVersion: o.info.apiVersion,
    kind: o.info.kind,
    metadata: {
      name,
      ...(namespace === undefined ? {} : { namespace }),
      uid: current?.metadata.uid ?? uid,
      creationTimestamp: current?.metadata.creationTimestamp ?? now,
      labels,
      annotations,
    },
    spec: storedSpec(o.info.name, o.spec),
    // What Calico's components reported stays (tortie writes no status of its own).
    ...(current?.status === undefined ? {} : { status: current.status }),
  };
}

export function planWrites(input: PlanInput): Plan {
  const refusals: Refusal[] = [];
  const writes: PlannedWrite[] = [];
  input.objects.forEach((o, index) => {
    const current = input.current[index];
    if (input.mode === 'create' && current !== undefined) {
      // Our own write from an earlier attempt of this call (e.g. a retried timeout)?
      if (current.metadata.uid === input.uids[index]) {
        writes.push({
          index,
          action: 'created',
          resource: current,
          value: encodeResource(current),
        });
        return;
      }
      refusals.push({
        kind: 'already-exists',
        detail: detail(nameOf(o), '', 'already exists (use replace or apply to change it)', index),
      });
      return;
    }
    const refused = guard(o, index, current, input.mode);
    if (refused !== undefined) {
      refusals.push(refused);
      return;
    }
    if (o.info.name === 'IPPool' && current !== undefined) {
      const problem = checkPoolUpdate(
        current.spec as unknown as IPPoolSpec,
        o.spec as unknown as IPPoolSpec,
      );
      if (problem !== undefined) {
        refusals.push({
          kind: 'invalid',
          detail: detail(nameOf(o), problem.path, problem.reason, index),
        });
        return;
      }
    }
    const resource = storedForm(o, current, input.now, input.uids[index]!);
    const value = encodeResource(resource);
    const action: WriteAction =
      current === undefined
        ? 'created'
        : // The same object stored under another spelling of its apiVersion is unchanged.
          sameEncoding(encodeResource({ ...current, apiVersion: resource.apiVersion }), value)
          ? 'unchanged'
          : 'updated';
    writes.push({ index, action, resource, value });
  });

  const pools = input.objects.flatMap((o, index) =>
    o.info.name === 'IPPool' ? [{ o, index }] : [],
  );
  if (pools.length > 0) {
    for (const overlap of checkPoolOverlaps(
      pools.map(({ o, index }) => ({
        name: o.metadata.name,
        cidr: (o.spec as unknown as IPPoolSpec).cidr,
        index,
      })),
      input.pools.map((p) => ({ name: p.metadata.name, cidr: p.spec.cidr })),
    )) {
      refusals.push({
        kind: 'invalid',
        detail: detail(`IPPool ${overlap.name}`, 'spec.cidr', overlap.reason, overlap.index),
      });
    }
  }
  return { writes: refusals.length > 0 ? [] : writes, refusals };
}

/**
 * The same stored object: the same text, or (read back from the Kubernetes API, which
 * orders a custom resource's fields its own way) the same JSON in another key order.
 */
function sameEncoding(a: string, b: string): boolean {
  return a === b || isDeepStrictEqual(JSON.parse(a), JSON.parse(b));
}
