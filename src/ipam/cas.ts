/**
 * Compare-and-swap transactions over etcd. A `Cas` remembers the mod_revision of every
 * key it read (0 for a key that was absent) and, at commit, sends one etcd transaction
 * that compares them all and writes every staged change: either all of it happens, at a
 * moment when nothing read has changed, or none of it does. `runCas` builds such a
 * transaction from scratch again (fresh reads) after a lost race, with jittered backoff.
 */
import type { ICompare, IKeyValue, IRequestOp } from 'etcd3';
import type { EtcdKv, EtcdKvClient } from '../datastore/etcd/client.js';
import { classifyEtcdError, type EtcdFailureKind } from '../datastore/etcd/errors.js';
import { IpamError } from './errors.js';
import { prefixEnd } from '../datastore/etcd/keys.js';

export interface KeyValue {
  readonly key: string;
  readonly value: string;
  /** etcd mod_revision, a decimal string. */
  readonly mod: string;
}

export interface CasOptions {
  readonly maxRetries: number;
  /** Deadline of each etcd call, ms. */
  readonly timeoutMs: number;
}

/** etcd refuses transactions of more than --max-txn-ops (default 128) operations. */
export const MAX_TXN_OPS = 100;
/** Keys per page of a list. */
const PAGE = 1000;

export interface ListRequest {
  prefix: string;
  keysOnly?: boolean;
  guard?: boolean;
}

export interface ReadResult {
  values: (KeyValue | undefined)[];
  lists: KeyValue[][];
  /** The etcd revision everything was read at. */
  revision: string;
}

function toKeyValue(kv: IKeyValue): KeyValue {
  return { key: kv.key.toString(), value: kv.value.toString(), mod: kv.mod_revision };
}

/** etcd refusing the request (not failing to answer it): IPAM `invalid`. */
const REFUSALS: ReadonlySet<EtcdFailureKind> = new Set<EtcdFailureKind>([
  'invalid',
  'too-many-ops',
  'too-large',
  'exhausted',
  'compacted',
  'future-revision',
]);

/**
 * etcd's own failures as IPAM errors: refusals are `invalid`, the rest `unavailable`
 * (also what is no etcd failure at all: the call's outcome is unknown either way).
 */
function etcdFailure(e: unknown, doing: string): IpamError {
  const msg = e instanceof Error ? e.message : String(e);
  const kind = classifyEtcdError(e)?.kind;
  if (kind !== undefined && REFUSALS.has(kind)) {
    return new IpamError('invalid', `etcd refused ${doing}: ${msg}`, { cause: e });
  }
  return new IpamError('unavailable', `etcd unavailable while ${doing}: ${msg}`, { cause: e });
}

export class Cas {
  private readonly compares = new Map<string, ICompare>();
  private readonly writes = new Map<string, IRequestOp>();
  /** Set when two reads of one key disagree: the commit cannot succeed. */
  private doomed = false;

  constructor(
    private readonly kv: EtcdKv,
    private readonly timeoutMs: number,
  ) {}

  private call() {
    return { deadline: Date.now() + this.timeoutMs };
  }

  /** Commit only if `key` still has mod_revision `mod` ("0": still absent). */
  expect(key: string, mod: string): void {
    const prev = this.compares.get(key);
    if (prev && String(prev.mod_revision) !== mod) this.doomed = true;
    this.compares.set(key, {
      key: Buffer.from(key),
      target: 'Mod',
      result: 'Equal',
      mod_revision: mod,
    });
  }

  private guardRange(prefix: string, revision: string): void {
    this.compares.set(`range:${prefix}`, {
      key: Buffer.from(prefix),
      range_end: prefixEnd(prefix),
      target: 'Mod',
      result: 'Less',
      mod_revision: String(BigInt(revision) + 1n),
    });
  }

  private async txnRead(ops: IRequestOp[], doing: string) {
    try {
      return await this.kv.txn({ success: ops }, this.call());
    } catch (e) {
      throw etcdFailure(e, doing);
    }
  }

  /** The rest of a list whose first page ended at `last`, read at `revision`. */
  private async nextPages(
    prefix: string,
    keysOnly: boolean,
    last: Buffer,
    revision: string,
  ): Promise<KeyValue[]> {
    const out: KeyValue[] = [];
    let from = Buffer.concat([last, Buffer.from([0])]);
    for (;;) {
      let res;
      try {
        res = await this.kv.range(
          { key: from, range_end: prefixEnd(prefix), keys_only: keysOnly, limit: PAGE, revision },
          this.call(),
        );
      } catch (e) {
        throw etcdFailure(e, `listing ${prefix}`);
      }
      out.push(...res.kvs.map(toKeyValue));
      const end = res.kvs[res.kvs.length - 1];
      if (!res.more || !end) return out;
      from = Buffer.concat([end.key, Buffer.from([0])]);
    }
  }

  /**
   * Reads `keys` and every key under each of `lists`' prefixes: the lists and the first
   * keys at one revision in one round trip (more round trips for many keys or long lists,
   * a list's pages all at its first revision). Each key of `keys` is compared at commit
   * (its mod_revision, or still absent) unless `compare` is false; then `expect` picks what
   * matters. A list is compared only with `guard`: the commit then also fails if any key
   * under its prefix was created or changed since this read (a deletion there goes
   * unnoticed; callers guard deletions through the keys they do compare).
   */
  async read(
    keys: readonly string[],
    lists: readonly ListRequest[] = [],
    opts: { compare?: boolean } = {},
  ): Promise<ReadResult> {
    const first = keys.slice(0, MAX_TXN_OPS - lists.length);
    const ops: IRequestOp[] = [
      ...first.map((k) => ({ request_range: { key: Buffer.from(k) } })),
      ...lists.map((l) => ({
        request_range: {
          key: Buffer.from(l.prefix),
          range_end: prefixEnd(l.prefix),
          keys_only: l.keysOnly ?? false,
          limit: PAGE,
        },
      })),
    ];
    if (ops.length === 0) return { values: [], lists: [], revision: '0' };
    const doing = `reading ${keys[0] ?? lists[0]?.prefix}${keys.length + lists.length > 1 ? ` and ${keys.length + lists.length - 1} more` : ''}`;
    const res = await this.txnRead(ops, doing);
    const found: (IKeyValue | undefined)[] = first.map(
      (_, i) => res.responses[i]?.response_range.kvs[0],
    );
    for (let at = first.length; at < keys.length; at += MAX_TXN_OPS) {
      const more = await this.txnRead(
        keys.slice(at, at + MAX_TXN_OPS).map((k) => ({ request_range: { key: Buffer.from(k) } })),
        doing,
      );
      found.push(...more.responses.map((r) => r.response_range.kvs[0]));
    }
    const values = keys.map((k, i) => {
      const kv = found[i];
      const value = kv ? toKeyValue(kv) : undefined;
      if (opts.compare !== false) this.expect(k, value?.mod ?? '0');
      return value;
    });
    const listed: KeyValue[][] = [];
    for (const [i, l] of lists.entries()) {
      const range = res.responses[first.length + i]!.response_range;
      const page = range.kvs.map(toKeyValue);
      const last = range.kvs[range.kvs.length - 1];
      if (range.more && last)
        page.push(
          ...(await this.nextPages(l.prefix, l.keysOnly ?? false, last.key, res.header.revision)),
        );
      if (l.guard) this.guardRange(l.prefix, res.header.revision);
      listed.push(page);
    }
    return { values, lists: listed, revision: res.header.revision };
  }

  /** `read` of keys only. */
  async get(
    keys: readonly string[],
    opts: { compare?: boolean } = {},
  ): Promise<(KeyValue | undefined)[]> {
    return (await this.read(keys, [], opts)).values;
  }

  /** `read` of one prefix only. */
  async list(prefix: string, opts: Omit<ListRequest, 'prefix'> = {}): Promise<KeyValue[]> {
    return (await this.read([], [{ prefix, ...opts }])).lists[0]!;
  }

  /** Stages writing `text` (a record as records.ts encodes it) at `key`. */
  put(key: string, text: string): void {
    this.writes.set(key, {
      request_put: { key: Buffer.from(key), value: Buffer.from(text) },
    });
  }

  delete(key: string): void {
    this.writes.set(key, { request_delete_range: { key: Buffer.from(key) } });
  }

  get hasWrites(): boolean {
    return this.writes.size > 0;
  }

  /** True when every compare held and every write happened; false after a lost race. */
  async commit(): Promise<boolean> {
    if (this.doomed) return false;
    if (this.compares.size > MAX_TXN_OPS || this.writes.size > MAX_TXN_OPS) {
      throw new IpamError(
        'invalid',
        `a change of ${this.writes.size} keys comparing ${this.compares.size} is too large for one etcd transaction`,
      );
    }
    try {
      const res = await this.kv.txn(
        { compare: [...this.compares.values()], success: [...this.writes.values()] },
        this.call(),
      );
      return res.succeeded;
    } catch (e) {
      throw etcdFailure(e, `committing ${[...this.writes.keys()].slice(0, 3).join(', ')}`);
    }
  }
}

/** Thrown by an attempt that read something mid-change: run it again, as after a lost race. */
export class RetryCas extends Error {
  constructor() {
    super('IPAM records changed while being read');
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Full-jitter exponential backoff: a random wait up to 2 ms × 2^attempt, at most 100 ms. */
export function backoffMs(attempt: number): number {
  return Math.random() * Math.min(100, 2 * 2 ** Math.min(attempt, 10));
}

/**
 * Runs `attempt` (reads through the Cas, staged writes, a result) and commits. A lost race
 * runs it again on fresh reads, up to `maxRetries` times, then fails with `conflict`. An
 * attempt that stages no writes is a read: its result is returned as it is.
 */
export async function runCas<T>(
  etcd: EtcdKvClient,
  opts: CasOptions,
  what: string,
  attempt: (tx: Cas) => Promise<T>,
): Promise<T> {
  for (let i = 0; ; i++) {
    const tx = new Cas(etcd.kv, opts.timeoutMs);
    let done: { result: T } | undefined;
    try {
      const result = await attempt(tx);
      if (!tx.hasWrites || (await tx.commit())) done = { result };
    } catch (e) {
      if (!(e instanceof RetryCas)) throw e;
    }
    if (done) return done.result;
    if (i >= opts.maxRetries) {
      throw new IpamError(
        'conflict',
        `${what}: lost the race for the same IPAM records ${opts.maxRetries + 1} times; try again`,
      );
    }
    await sleep(backoffMs(i));
  }
}
