/**
 * Reads issued together, sent as one: a client whose plain reads (ranges, and
 * transactions of ranges only) made in the same turn of the event loop go to etcd as a
 * single read-only transaction, and each caller gets its part of the answer.
 *
 * A CNI ADD reads the pools, the node, the endpoint, the handle, the reservations, the
 * IPAM configuration and the node's blocks at once, through the datastore and IPAM, which
 * each make their own calls: seven requests, one round trip's worth of waiting but seven
 * of client and server work, which on a loaded node is most of the read's time. Batched,
 * they are one request, read at one revision (a stronger guarantee than the separate reads
 * gave, never a weaker one).
 *
 * Writes, compares and reads pinned to a revision pass through unchanged, and so does a
 * turn's single read. A failed batch fails each of its reads with the same error, as each
 * would have failed alone.
 */
import type { IRangeRequest, IRangeResponse, IRequestOp, ITxnRequest, ITxnResponse } from 'etcd3';
import type { EtcdCallOptions, EtcdKv, EtcdKvClient } from './client.js';

/** etcd refuses transactions with more operations than --max-txn-ops (128 by default). */
const MAX_OPS = 128;

interface Pending {
  readonly ops: readonly IRequestOp[];
  readonly options: EtcdCallOptions | undefined;
  /** Its part of the batch's answer: the responses of its ops, and the header. */
  readonly done: (res: ITxnResponse, from: number) => void;
  readonly fail: (err: unknown) => void;
  /** Alone: sent as it came. */
  readonly alone: () => void;
}

/** `client` with its reads batched (everything else of it as it is). */
export function batchingReads<C extends EtcdKvClient>(client: C): C {
  const kv = new BatchingKv(client.kv);
  return new Proxy(client, {
    get(target, property) {
      if (property === 'kv') return kv;
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value as () => unknown).bind(target) : value;
    },
  });
}

class BatchingKv implements EtcdKv {
  private queue: Pending[] = [];
  private scheduled = false;

  constructor(private readonly inner: EtcdKv) {}

  range(req: IRangeRequest, options?: EtcdCallOptions): Promise<IRangeResponse> {
    if (req.revision !== undefined && String(req.revision) !== '0')
      return this.inner.range(req, options);
    return new Promise((resolve, reject) => {
      this.enqueue({
        ops: [{ request_range: req }],
        options,
        done: (res, from) =>
          resolve({ ...res.responses[from]!.response_range, header: res.header }),
        fail: reject,
        alone: () => this.inner.range(req, options).then(resolve, reject),
      });
    });
  }

  txn(req: ITxnRequest, options?: EtcdCallOptions): Promise<ITxnResponse> {
    const ops = req.success ?? [];
    const readOnly =
      (req.compare ?? []).length === 0 &&
      ops.length > 0 &&
      ops.length < MAX_OPS &&
      ops.every(
        (op) =>
          op.request_range !== undefined &&
          (op.request_range.revision === undefined || String(op.request_range.revision) === '0'),
      );
    if (!readOnly) return this.inner.txn(req, options);
    return new Promise((resolve, reject) => {
      this.enqueue({
        ops,
        options,
        done: (res, from) =>
          resolve({
            header: res.header,
            succeeded: true,
            responses: res.responses.slice(from, from + ops.length),
          }),
        fail: reject,
        alone: () => this.inner.txn(req, options).then(resolve, reject),
      });
    });
  }

  private enqueue(p: Pending): void {
    this.queue.push(p);
    if (this.scheduled) return;
    this.scheduled = true;
    // After the current I/O callback and every microtask it queued: the reads a caller
    // starts together (through several async layers) are all queued by then.
    setImmediate(() => this.flush());
  }

  private flush(): void {
    const queued = this.queue;
    this.queue = [];
    this.scheduled = false;
    let batch: Pending[] = [];
    let size = 0;
    for (const p of queued) {
      if (size + p.ops.length > MAX_OPS) {
        this.send(batch);
        batch = [];
        size = 0;
      }
      batch.push(p);
      size += p.ops.length;
    }
    this.send(batch);
  }

  private send(batch: readonly Pending[]): void {
    if (batch.length === 0) return;
    if (batch.length === 1) {
      batch[0]!.alone();
      return;
    }
    const deadlines = batch
      .map((p) => p.options?.deadline)
      .filter((d): d is number | Date => d !== undefined)
      .map((d) => (typeof d === 'number' ? d : d.getTime()));
    const options = deadlines.length === 0 ? undefined : { deadline: Math.min(...deadlines) };
    this.inner.txn({ success: batch.flatMap((p) => p.ops) }, options).then(
      (res) => {
        let from = 0;
        for (const p of batch) {
          p.done(res, from);
          from += p.ops.length;
        }
      },
      (err: unknown) => {
        for (const p of batch) p.fail(err);
      },
    );
  }
}
