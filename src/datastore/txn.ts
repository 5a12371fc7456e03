/**
 * The etcd primitives the store is built from: a consistent snapshot of some keys and
 * prefixes (one revision), and a guarded transaction that writes only if nothing it
 * read has changed since.
 */
import type { ICompare, IKeyValue, IRequestOp } from 'etcd3';
import type { EtcdCallOptions, EtcdKvClient } from './etcd/client.js';
import { prefixEnd } from './etcd/keys.js';

export { prefixEnd };

/** Call options (a deadline) as the etcd client takes them. */
export type CallOptions = EtcdCallOptions;

/** etcd refuses transactions with more operations than --max-txn-ops (128 by default). */
const MAX_OPS = 128;

export interface Snapshot {
  /** The store revision every read below was made at. */
  readonly revision: string;
  readonly keys: ReadonlyMap<string, IKeyValue>;
  readonly prefixes: ReadonlyMap<string, readonly IKeyValue[]>;
}

type Read = { key: string } | { prefix: string };

function rangeOp(r: Read, revision?: string): IRequestOp {
  const request_range =
    'key' in r
      ? { key: Buffer.from(r.key) }
      : { key: Buffer.from(r.prefix), range_end: prefixEnd(r.prefix) };
  return { request_range: revision === undefined ? request_range : { ...request_range, revision } };
}

/**
 * Reads keys and whole prefixes at one revision. More than one etcd transaction's worth
 * of reads are split, the later ones pinned to the first one's revision.
 */
export async function readSnapshot(
  etcd: EtcdKvClient,
  reads: { keys?: readonly string[]; prefixes?: readonly string[] },
  options: CallOptions,
): Promise<Snapshot> {
  const all: Read[] = [
    ...(reads.keys ?? []).map((key) => ({ key })),
    ...(reads.prefixes ?? []).map((prefix) => ({ prefix })),
  ];
  const keys = new Map<string, IKeyValue>();
  const prefixes = new Map<string, IKeyValue[]>();
  let revision: string | undefined;
  for (let start = 0; start < Math.max(all.length, 1); start += MAX_OPS) {
    const chunk = all.slice(start, start + MAX_OPS);
    const res = await etcd.kv.txn({ success: chunk.map((r) => rangeOp(r, revision)) }, options);
    revision ??= res.header.revision;
    res.responses.forEach((response, i) => {
      const r = chunk[i]!;
      const kvs = response.response_range.kvs;
      if ('key' in r) {
        if (kvs[0] !== undefined) keys.set(r.key, kvs[0]);
      } else {
        prefixes.set(r.prefix, kvs);
      }
    });
  }
  return { revision: revision!, keys, prefixes };
}

/** The key is at this mod revision ("0": it does not exist). */
export function modEquals(key: string, modRevision: string): ICompare {
  return { key: Buffer.from(key), target: 'Mod', result: 'Equal', mod_revision: modRevision };
}

/** No key under `prefix` was created or changed after `revision`. */
export function prefixUnchangedSince(prefix: string, revision: string): ICompare {
  return {
    key: Buffer.from(prefix),
    range_end: prefixEnd(prefix),
    target: 'Mod',
    result: 'Less',
    mod_revision: (BigInt(revision) + 1n).toString(),
  };
}

export function putOp(key: string, value: string): IRequestOp {
  return { request_put: { key: Buffer.from(key), value: Buffer.from(value) } };
}

export function deleteOp(key: string): IRequestOp {
  return { request_delete_range: { key: Buffer.from(key) } };
}

/** Runs the writes if every compare holds; `succeeded` false means someone got there first. */
export async function guardedWrite(
  etcd: EtcdKvClient,
  compares: readonly ICompare[],
  ops: readonly IRequestOp[],
  options: CallOptions,
): Promise<{ succeeded: boolean; revision: string }> {
  const res = await etcd.kv.txn(
    { compare: [...compares], success: [...ops], failure: [] },
    options,
  );
  return { succeeded: res.succeeded, revision: res.header.revision };
}
