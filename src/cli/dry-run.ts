/**
 * What apply / create / replace would do, without writing: every object validated, the
 * store read, and the same pure plan the Datastore makes (write-plan.ts) — so a dry run
 * is refused for exactly the reasons the real call would be, and says created /
 * configured / unchanged for the rest. `validate` is the part that needs no store.
 */
import { randomUUID } from 'node:crypto';
import { detail } from '../datastore/errors.js';
import {
  DatastoreError,
  describeRef,
  type Datastore,
  type EtcdWatchClient,
  type ErrorDetail,
  type StoredResource,
} from '../datastore/index.js';
import { validateObject, type ValidObject } from '../datastore/schema/index.js';
import {
  dominantKind,
  planWrites,
  type PlannedWrite,
  type WriteMode,
} from '../datastore/write-plan.js';
import type { IPPoolSpec } from '../datastore/schema/ippool.js';

function refOfValid(o: ValidObject): string {
  return describeRef({ kind: o.info.name, name: o.metadata.name, namespace: o.metadata.namespace });
}

/** Every object validated; all problems of all objects in one refusal. */
export function validateAll(objects: readonly unknown[]): ValidObject[] {
  const valid: ValidObject[] = [];
  const refused: ErrorDetail[] = [];
  objects.forEach((o, i) => {
    const v = validateObject(o, objects.length > 1 ? i : undefined);
    if (v.ok) valid.push(v.object);
    else refused.push(v.detail);
  });
  if (refused.length > 0) throw DatastoreError.fromDetails('invalid', refused);
  const first = new Map<string, number>();
  const dups: ErrorDetail[] = [];
  valid.forEach((o, i) => {
    const ref = refOfValid(o);
    const j = first.get(ref);
    if (j === undefined) first.set(ref, i);
    else dups.push(detail(ref, '', `appears twice in one call (objects ${j + 1} and ${i + 1})`, i));
  });
  if (dups.length > 0) throw DatastoreError.fromDetails('invalid', dups);
  return valid;
}

export interface DryRunResult {
  readonly ref: string;
  readonly action: PlannedWrite['action'];
}

/** The call's plan against what the store holds now; refused as the real call would be. */
export async function dryRun(
  ds: Datastore<EtcdWatchClient>,
  mode: WriteMode,
  objects: readonly unknown[],
): Promise<DryRunResult[]> {
  const valid = validateAll(objects);
  const current: (StoredResource | undefined)[] = [];
  for (const o of valid)
    current.push(await ds.get(o.info.name, o.metadata.name, o.metadata.namespace));
  const pools = valid.some((o) => o.info.name === 'IPPool')
    ? ((await ds.list('IPPool')) as unknown as StoredResource<IPPoolSpec>[])
    : [];
  const plan = planWrites({
    mode,
    objects: valid,
    current,
    pools,
    now: new Date().toISOString(),
    uids: valid.map(() => randomUUID()),
  });
  if (plan.refusals.length > 0)
    throw DatastoreError.fromDetails(
      dominantKind(plan.refusals),
      plan.refusals.map((r) => r.detail),
    );
  return plan.writes.map((w) => ({ ref: refOfValid(valid[w.index]!), action: w.action }));
}

/** The objects' names, once valid (the offline check of `validate`). */
export function validRefs(objects: readonly unknown[]): string[] {
  return validateAll(objects).map(refOfValid);
}
