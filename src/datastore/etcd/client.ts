/**
 * The etcd client as the datastore and IPAM use it: the raw KV service's `range` and
 * `txn`, `close()`, and for watches the raw watch stream. Nothing more, so that a client
 * other than the `etcd3` package (./gateway.ts, which the CNI plugin uses; a test double) can
 * carry them. Requests and responses are etcd3's raw-client shapes (keepCase, 64-bit
 * integers as decimal strings, bytes as Buffers).
 *
 * Types only. Values etcd3 exports (its enums, its error classes) are never imported by
 * src/datastore or src/ipam at run time: compares spell the enum names ('Mod', 'Equal'),
 * and a client's failures are told apart by `classifyEtcdError` (./errors.ts), which
 * knows etcd3's classes by name and the gateway client's own.
 */
import type {
  IOptions,
  IRangeRequest,
  IRangeResponse,
  ITxnRequest,
  ITxnResponse,
  WatchClient,
} from 'etcd3';

/** Per-call options: a deadline (ms since the epoch, or a Date). */
export interface EtcdCallOptions {
  deadline?: number | Date;
}

/** The part of the KV service that is used. */
export interface EtcdKv {
  range(req: IRangeRequest, options?: EtcdCallOptions): Promise<IRangeResponse>;
  txn(req: ITxnRequest, options?: EtcdCallOptions): Promise<ITxnResponse>;
}

/** What reads, writes and IPAM need. */
export interface EtcdKvClient {
  readonly kv: EtcdKv;
  close(): void;
}

/** What `Datastore.watch` needs in addition: etcd's bidirectional watch stream. */
export interface EtcdWatchClient extends EtcdKvClient {
  readonly watchClient: Pick<WatchClient, 'watch'>;
}

/**
 * Makes the client for connection settings the datastore has normalised (endpoint URLs,
 * TLS material read, deadlines): `etcd3`'s options, of which a client reads what it uses.
 */
export type EtcdClientFactory<C extends EtcdKvClient> = (options: IOptions) => C;
