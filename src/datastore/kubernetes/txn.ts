/**
 * etcd's transaction on the Kubernetes API, as the store, IPAM and the agent send it:
 *
 *   - reads only (no compares, `request_range` ops): one snapshot — the first range read
 *     fresh, every other one at its revision exactly (../kubernetes/kv.ts);
 *   - compares "Mod Equal" on a key (mod_revision 0: the key is absent) and "Mod Less" over
 *     a prefix ("nothing under it changed since revision R"), then puts and deletes.
 *
 * The API has no multi-object transaction. A written key's own compare becomes the write's
 * precondition (create for 0, an update or delete at that resourceVersion otherwise), so
 * that part is exactly etcd's compare-and-swap, object by object. Compares on keys that are
 * not written, and prefix compares, are checked by reading just before the first write:
 * a change landing between that read and the writes goes unnoticed (Calico's Kubernetes
 * datastore is not transactional either). Writes go key by key in order; when one loses its
 * race, those already made are undone (in reverse, each guarded by the resourceVersion it
 * wrote) and the transaction reports `succeeded: false`, as etcd's would have. An undo that
 * itself loses a race fails the call with an error naming the keys left changed. A write
 * that changes nothing keeps the object's resourceVersion, so an undo cannot tell its own
 * write from another writer's identical one made since: callers put the write that decides
 * first (IPAM's block create), so that a loser has written nothing to undo.
 *
 * A put's `lease` is ignored: the API has no leases (the agent's status records are kept
 * alive by rewriting them; their age is in the record).
 */
import type { ICompare, IRequestOp, IResponseOp, ITxnRequest, ITxnResponse } from 'etcd3';
import { etcdError } from '../etcd/errors.js';
import { DatastoreError } from '../errors.js';
import { isKubeApiError } from './client.js';
import { isCrdMapping } from './crds.js';
import { modRevisionOf } from './native/index.js';
import {
  checkRevision,
  header,
  rangeResponse,
  readFailure,
  type KeyRange,
  type KubeKv,
} from './kv.js';
import type { KeyMapping, KubeObject } from './mapping.js';

const TARGET_MOD = 2;
const RESULT_EQUAL = 0;
const RESULT_LESS = 2;
/** Unguarded writes (a status record) retried after a concurrent update of the same object. */
const UNGUARDED_ATTEMPTS = 5;

function is(v: unknown, name: string, num: number): boolean {
  return v === name || v === num;
}

type Guard =
  { kind: 'key'; key: string; mod: string } | { kind: 'prefix'; range: KeyRange; below: bigint };

function guardOf(c: ICompare): Guard {
  const key = c.key === undefined ? undefined : Buffer.from(c.key);
  if (key === undefined) throw etcdError('invalid', 'txn: a compare without a key');
  if (!is(c.target, 'Mod', TARGET_MOD))
    throw etcdError(
      'invalid',
      `txn: the Kubernetes datastore compares only mod revisions (not ${String(c.target)}) of ${key.toString()}`,
    );
  const mod = String(c.mod_revision ?? '0');
  if (!/^\d+$/.test(mod)) throw etcdError('invalid', `txn: mod_revision ${mod} is not an integer`);
  if (c.range_end === undefined || c.range_end.length === 0) {
    if (!is(c.result, 'Equal', RESULT_EQUAL))
      throw etcdError('invalid', `txn: only "Mod Equal" compares on one key (${key.toString()})`);
    return { kind: 'key', key: key.toString(), mod };
  }
  if (!is(c.result, 'Less', RESULT_LESS))
    throw etcdError('invalid', `txn: only "Mod Less" compares over a range (${key.toString()})`);
  return {
    kind: 'prefix',
    range: { start: key, end: Buffer.from(c.range_end) },
    below: BigInt(mod),
  };
}

type Write = { kind: 'put'; key: string; value: string } | { kind: 'delete'; key: string };

function writeOf(op: IRequestOp): Write | undefined {
  if (op.request_put) {
    const p = op.request_put;
    if (p.key === undefined) throw etcdError('invalid', 'txn: a put without a key');
    return { kind: 'put', key: p.key.toString(), value: (p.value ?? Buffer.alloc(0)).toString() };
  }
  if (op.request_delete_range) {
    const d = op.request_delete_range;
    if (d.key === undefined) throw etcdError('invalid', 'txn: a delete without a key');
    if (d.range_end !== undefined && d.range_end.length > 0)
      throw etcdError(
        'invalid',
        `txn: deleting a range (${d.key.toString()}…) is not supported on Kubernetes`,
      );
    return { kind: 'delete', key: d.key.toString() };
  }
  if (op.request_txn)
    throw etcdError('invalid', 'txn: nested transactions are not supported on Kubernetes');
  return undefined;
}

/** Reads (only request_range ops) at one revision. */
async function readOps(
  kv: KubeKv,
  ops: readonly IRequestOp[],
  deadline: number,
  pinned?: string,
): Promise<ITxnResponse> {
  const ranges = ops.map((op) => {
    if (!op.request_range) throw etcdError('invalid', 'txn: reads and writes in one transaction');
    return op.request_range;
  });
  const given = ranges.find((r) => r.revision !== undefined && String(r.revision) !== '0');
  let revision = pinned ?? (given === undefined ? undefined : String(given.revision));
  const results: IResponseOp[] = new Array<IResponseOp>(ranges.length);
  const readOne = async (i: number, at: string | undefined) => {
    const r = ranges[i]!;
    const res = await kv.read(
      {
        start: Buffer.from(r.key ?? ''),
        end: r.range_end === undefined ? undefined : Buffer.from(r.range_end),
      },
      { revision: at, deadline },
    );
    results[i] = { response_range: rangeResponse(res.kvs, res.revision, r) } as IResponseOp;
    return res.revision;
  };
  if (ranges.length > 0 && revision === undefined) revision = await readOne(0, undefined);
  else if (ranges.length > 0) await readOne(0, revision);
  await Promise.all(ranges.slice(1).map((_, i) => readOne(i + 1, revision)));
  return {
    header: header(revision ?? (await kv.currentRevision(deadline))),
    succeeded: true,
    responses: results,
  };
}

/** Whether every guard on keys not written and every prefix guard holds now. */
async function checkGuards(
  kv: KubeKv,
  guards: readonly Guard[],
  deadline: number,
): Promise<boolean> {
  if (guards.length === 0) return true;
  const ops: IRequestOp[] = guards.map((g) =>
    g.kind === 'key'
      ? { request_range: { key: Buffer.from(g.key) } }
      : { request_range: { key: g.range.start, range_end: g.range.end } },
  );
  const res = await readOps(kv, ops, deadline);
  return guards.every((g, i) => {
    const kvs = res.responses[i]!.response_range.kvs;
    if (g.kind === 'key') return (kvs[0]?.mod_revision ?? '0') === g.mod;
    return kvs.every((k) => BigInt(k.mod_revision) < g.below);
  });
}

interface Applied {
  readonly mapping: KeyMapping;
  readonly ref: { name: string; namespace?: string };
  readonly key: string;
  /** The object before the write (undefined: it did not exist). */
  readonly before: KubeObject | undefined;
  /** The object after it (undefined: deleted). */
  readonly after: KubeObject | undefined;
}

/**
 * The API (or the mapping) refusing a write: a DatastoreError of kind `invalid`, which the
 * store passes on as it is (not an outage of etcd).
 */
function refusal(message: string, options?: { cause?: unknown }): DatastoreError {
  return new DatastoreError('invalid', message, [], options);
}

class Lost extends Error {
  constructor(readonly key: string) {
    super(`lost the race for ${key}`);
  }
}

function stripForCreate(obj: KubeObject): KubeObject {
  const {
    resourceVersion: _rv,
    uid: _uid,
    creationTimestamp: _ct,
    managedFields: _mf,
    generation: _g,
    ...meta
  } = obj.metadata;
  return { ...obj, metadata: meta as KubeObject['metadata'] };
}

function writeFailure(e: unknown, key: string): Error {
  if (isKubeApiError(e, 422) || isKubeApiError(e, 400))
    return refusal(`${key}: the API server refused the object: ${e.message}`, {
      cause: e,
    });
  return readFailure(e, `writing ${key}`);
}

async function getCurrent(
  kv: KubeKv,
  mapping: KeyMapping,
  ref: { name: string; namespace?: string },
  deadline: number,
): Promise<KubeObject | undefined> {
  try {
    return await kv.api.get(mapping.resource, ref.name, ref.namespace, deadline);
  } catch (e) {
    if (isKubeApiError(e, 404)) return undefined;
    throw readFailure(e, `reading ${mapping.resource.plural}/${ref.name}`);
  }
}

/** One write, guarded by `mod` when given; Lost when the guard does not hold. */
async function applyWrite(
  kv: KubeKv,
  w: Write,
  mod: string | undefined,
  needBefore: boolean,
  deadline: number,
): Promise<Applied> {
  const found = kv.mappingFor(w.key);
  if (found === undefined)
    throw refusal(`${w.key}: no resource of the Kubernetes API holds this key`);
  const { mapping, ref } = found;
  const resource = mapping.resource;
  for (let attempt = 1; ; attempt++) {
    const fetch = needBefore || mod === undefined || !isCrdMapping(mapping) || w.kind === 'delete';
    const current = fetch ? await getCurrent(kv, mapping, ref, deadline) : undefined;
    // The key's own mod revision: "0" also when the object exists but is not this key's
    // (a pod without an address has no endpoint key yet).
    const held = fetch ? modRevisionOf(mapping, w.key, current, kv.prefix) : mod;
    if (fetch && mod !== undefined && held !== mod) throw new Lost(w.key);
    // The precondition sent: the version of the object as read (or as the compare says).
    const rv = fetch ? current?.metadata.resourceVersion : mod === '0' ? undefined : mod;
    const exists = fetch ? current !== undefined : mod !== '0';
    try {
      if (w.kind === 'delete') {
        if (current === undefined || held === '0')
          return { mapping, ref, key: w.key, before: undefined, after: undefined };
        const d = mapping.fromDelete(w.key, current, kv.prefix);
        if ('refused' in d) throw refusal(`${w.key}: ${d.refused}`);
        if ('mergePatch' in d) {
          const after = await kv.api.mergePatch(
            resource,
            ref.name,
            ref.namespace,
            {
              ...d.mergePatch,
              metadata: { ...((d.mergePatch.metadata as object) ?? {}), resourceVersion: rv },
            },
            deadline,
          );
          return { mapping, ref, key: w.key, before: current, after };
        }
        await kv.api.delete(resource, ref.name, ref.namespace, rv, deadline);
        return { mapping, ref, key: w.key, before: current, after: undefined };
      }
      const p = mapping.fromPut(w.key, w.value, current, kv.prefix);
      if ('refused' in p) throw refusal(`${w.key}: ${p.refused}`);
      if ('mergePatch' in p) {
        if (!exists)
          throw refusal(
            `${w.key}: ${resource.kind} ${ref.namespace === undefined ? '' : `${ref.namespace}/`}${ref.name} does not exist`,
          );
        const after = await kv.api.mergePatch(
          resource,
          ref.name,
          ref.namespace,
          {
            ...p.mergePatch,
            metadata: { ...((p.mergePatch.metadata as object) ?? {}), resourceVersion: rv },
          },
          deadline,
        );
        return { mapping, ref, key: w.key, before: current, after };
      }
      if (current !== undefined && held === '0') {
        // The object this key names holds another key (handles differing only in case
        // share Calico's lower-case name): writing it would overwrite that one.
        throw refusal(
          `${w.key}: the object ${resource.plural}/${ref.name} already holds ${mapping.toKv(current, kv.prefix)?.key ?? 'another key'}`,
        );
      }
      if (!exists) {
        let after: KubeObject;
        try {
          after = await kv.api.create(resource, p.object, deadline);
        } catch (e) {
          // Not found on a create: the namespace is missing (no race can cure that).
          if (isKubeApiError(e, 404)) throw refusal(`${w.key}: ${e.message}`, { cause: e });
          throw e;
        }
        return { mapping, ref, key: w.key, before: undefined, after };
      }
      const after = await kv.api.replace(
        resource,
        { ...p.object, metadata: { ...p.object.metadata, resourceVersion: rv } },
        deadline,
      );
      return { mapping, ref, key: w.key, before: current, after };
    } catch (e) {
      const raced = isKubeApiError(e, 409) || isKubeApiError(e, 404);
      if (!raced) throw e instanceof Lost || !isKubeApiError(e) ? e : writeFailure(e, w.key);
      if (mod !== undefined) throw new Lost(w.key);
      if (attempt >= UNGUARDED_ATTEMPTS)
        throw etcdError('conflict', `${w.key}: the object kept changing under an unguarded write`);
    }
  }
}

/** Puts things back as they were before `applied` (newest first). */
async function undo(kv: KubeKv, applied: readonly Applied[], deadline: number): Promise<string[]> {
  const failed: string[] = [];
  for (const a of [...applied].reverse()) {
    const r = a.mapping.resource;
    try {
      if (a.before === undefined && a.after !== undefined) {
        await kv.api.delete(
          r,
          a.ref.name,
          a.ref.namespace,
          a.after.metadata.resourceVersion,
          deadline,
        );
      } else if (a.before !== undefined && a.after === undefined) {
        await kv.api.create(r, stripForCreate(a.before), deadline);
      } else if (a.before !== undefined && a.after !== undefined) {
        await kv.api.replace(
          r,
          {
            ...a.before,
            metadata: { ...a.before.metadata, resourceVersion: a.after.metadata.resourceVersion },
          },
          deadline,
        );
      }
    } catch {
      failed.push(a.key);
    }
  }
  return failed;
}

export async function runTxn(
  kv: KubeKv,
  req: ITxnRequest,
  deadline: number,
): Promise<ITxnResponse> {
  const compares = (req.compare ?? []).map(guardOf);
  const success = req.success ?? [];
  const failure = req.failure ?? [];
  const writes = success.map(writeOf);
  const hasWrites = writes.some((w) => w !== undefined);
  if (!hasWrites && compares.length === 0) return readOps(kv, success, deadline);
  if (failure.some((op) => writeOf(op) !== undefined))
    throw etcdError('invalid', 'txn: writes on failure are not supported on Kubernetes');
  if (hasWrites && writes.some((w) => w === undefined))
    throw etcdError(
      'invalid',
      'txn: reads and writes in one transaction are not supported on Kubernetes',
    );
  const list = writes as Write[];
  for (const w of list)
    if (kv.mappingFor(w.key) === undefined)
      throw refusal(`${w.key}: no resource of the Kubernetes API holds this key`);

  const written = new Set(list.map((w) => w.key));
  const keyGuards = new Map<string, string>();
  for (const g of compares) {
    if (g.kind !== 'key') continue;
    const prev = keyGuards.get(g.key);
    if (prev !== undefined && prev !== g.mod) return lost(kv, failure, deadline);
    keyGuards.set(g.key, g.mod);
  }
  const readGuards = compares.filter((g) => g.kind === 'prefix' || !written.has(g.key));
  if (!(await checkGuards(kv, readGuards, deadline))) return lost(kv, failure, deadline);
  if (!hasWrites) return readOps(kv, success, deadline);

  const applied: Applied[] = [];
  const responses: IResponseOp[] = [];
  try {
    for (const w of list) {
      const a = await applyWrite(kv, w, keyGuards.get(w.key), list.length > 1, deadline);
      applied.push(a);
    }
  } catch (e) {
    const failed = await undo(kv, applied, deadline);
    if (failed.length > 0)
      throw etcdError(
        'internal',
        `a multi-key write failed half way and ${failed.join(', ')} could not be put back (changed meanwhile): ${(e as Error).message}`,
        { cause: e },
      );
    if (e instanceof Lost) return lost(kv, failure, deadline);
    throw e;
  }
  const revisions = applied.flatMap((a) =>
    a.after?.metadata.resourceVersion === undefined
      ? []
      : [BigInt(checkRevision(a.after.metadata.resourceVersion, a.key))],
  );
  const revision =
    revisions.length > 0
      ? revisions.reduce((x, y) => (y > x ? y : x)).toString()
      : await kv.currentRevision(deadline);
  for (const [i, w] of list.entries()) {
    const h = header(applied[i]!.after?.metadata.resourceVersion ?? revision);
    responses.push(
      (w.kind === 'put'
        ? { response_put: { header: h } }
        : {
            response_delete_range: {
              header: h,
              deleted: applied[i]!.before ? '1' : '0',
              prev_kvs: [],
            },
          }) as unknown as IResponseOp,
    );
  }
  return { header: header(revision), succeeded: true, responses };
}

async function lost(
  kv: KubeKv,
  failure: readonly IRequestOp[],
  deadline: number,
): Promise<ITxnResponse> {
  const res = await readOps(kv, failure, deadline);
  return { ...res, succeeded: false };
}
