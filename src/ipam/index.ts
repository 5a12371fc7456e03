/**
 * IPAM: pools carved into blocks affine to nodes, addresses held by handles, all of it
 * changed only by compare-and-swap etcd transactions. Depends on an etcd client and a key
 * prefix, never on the datastore: pools come in as plain objects. The client is any with
 * the KV calls of src/datastore/client.ts (a type, shared so that one client carries both),
 * e.g. the `etcd3` package's or the CNI plugin's JSON-gateway one.
 */
import type { EtcdKvClient } from '../datastore/etcd/client.js';
import {
  type AssignIpRequest,
  type Assignment,
  type AutoAssignRequest,
  assignIp,
  autoAssign,
  autoAssignMany,
  autoAssignWhenReady,
} from './assign.js';
import { type BlockInfo, listBlocks } from './blocks.js';
import { type IpamReport, type LiveSet, check } from './check.js';
import { type IpamConfig, DEFAULT_CONFIG } from './config.js';
import type { IpamContext } from './context.js';
import { IpamError } from './errors.js';
import { gc } from './gc.js';
import { IpamKeys } from './keys.js';
import { Lanes } from './lanes.js';
import {
  addressesOf,
  releaseBlockAffinity,
  releaseByHandle,
  releaseByHandles,
  releaseIps,
} from './release.js';

export type { AssignIpRequest, Assignment, AutoAssignRequest } from './assign.js';
export type { BlockInfo } from './blocks.js';
export type {
  DuplicateAddress,
  Inconsistency,
  InconsistencyKind,
  IpamReport,
  LeakedAddress,
  LiveSet,
  OrphanBlock,
} from './check.js';
export { DEFAULT_GRACE_MS, analyse } from './check.js';
export { IpamError, isIpamError, type IpamErrorKind } from './errors.js';
export { IpamKeys } from './keys.js';
export { HANDLE_BATCH } from './release.js';
export { ASSIGN_BATCH } from './assign.js';
export type { PoolSpec, PoolUse } from './pools.js';
export { type IpamConfig, DEFAULT_CONFIG, DEFAULT_MAX_BLOCKS } from './config.js';
export { convertLegacyIpam, type LegacyConversion } from './legacy.js';

export interface IpamOptions {
  /**
   * The IPAM configuration when neither a request nor the stored `ipam/v2/config` record
   * gives one (config.ts); Calico's defaults otherwise.
   */
  config?: Partial<IpamConfig>;
  /** Never borrow an address from another node's block; fail with `exhausted` instead. */
  strictAffinity?: boolean;
  /** How often a change lost to a concurrent one is tried again (default 100). */
  maxRetries?: number;
  /** Deadline of each etcd call in ms (default 10 000). */
  timeoutMs?: number;
  /**
   * Queue this instance's changes: one at a time per node for assignments, one at a time
   * for releases (default true). Other instances and processes still race in etcd.
   */
  localQueue?: boolean;
  /** The clock allocation times and ages are read from (default: the system's). */
  now?: () => Date;
}

export class Ipam {
  private readonly ctx: IpamContext;
  private readonly lanes: Lanes | undefined;

  constructor(etcd: EtcdKvClient, prefix: string, opts: IpamOptions = {}) {
    const maxRetries = opts.maxRetries ?? 100;
    const timeoutMs = opts.timeoutMs ?? 10_000;
    if (!Number.isInteger(maxRetries) || maxRetries < 0)
      throw new IpamError('invalid', `maxRetries ${maxRetries} is not a non-negative integer`);
    if (!(timeoutMs > 0)) throw new IpamError('invalid', `timeoutMs ${timeoutMs} is not positive`);
    this.ctx = {
      etcd,
      keys: new IpamKeys(prefix),
      cas: { maxRetries, timeoutMs },
      defaults: {
        ...DEFAULT_CONFIG,
        ...opts.config,
        ...(opts.strictAffinity === undefined ? {} : { strictAffinity: opts.strictAffinity }),
      },
      now: opts.now ?? (() => new Date()),
      affineHint: new Map(),
    };
    this.lanes = opts.localQueue === false ? undefined : new Lanes();
  }

  private queued<T>(lane: string, fn: () => Promise<T>): Promise<T> {
    return this.lanes ? this.lanes.run(lane, fn) : fn();
  }

  /**
   * One address for `handle` on `node` from `pools` (in order): the node's affine blocks
   * first, then a newly claimed block (affine to the node), then — unless strictAffinity —
   * a free address in another node's block. Idempotent per handle: a second call returns
   * the address the handle already holds.
   */
  autoAssign(req: AutoAssignRequest): Promise<Assignment> {
    return this.queued(`assign ${String(req?.node)}`, () => autoAssign(this.ctx, req));
  }

  /**
   * Several autoAssigns of one node in one transaction, from its own blocks only (at most
   * ASSIGN_BATCH): per request its Assignment, or undefined for autoAssign to serve.
   */
  autoAssignMany(reqs: readonly AutoAssignRequest[]): Promise<(Assignment | undefined)[]> {
    return this.queued(`assign ${String(reqs[0]?.node)}`, () => autoAssignMany(this.ctx, reqs));
  }

  /**
   * autoAssign with its request still being worked out by the caller: its first read
   * (handle, affinities, the node's blocks) overlaps the caller's. Writes nothing before
   * `later` resolves; resolves undefined, having written nothing, when it resolves undefined.
   */
  autoAssignWhenReady(
    first: { handle: string; node: string },
    later: Promise<AutoAssignRequest | undefined>,
  ): Promise<Assignment | undefined> {
    return this.queued(`assign ${String(first?.node)}`, () =>
      autoAssignWhenReady(this.ctx, first, later),
    );
  }

  /** Assigns a specific address; `conflict` if another handle holds it. */
  assignIp(req: AssignIpRequest): Promise<void> {
    return this.queued(`assign ${String(req?.node)}`, () => assignIp(this.ctx, req));
  }

  /** Releases every address of the handle; the addresses released ([] if none). */
  releaseByHandle(handle: string): Promise<string[]> {
    return this.queued('release', () => releaseByHandle(this.ctx, handle));
  }

  /**
   * releaseByHandle for several handles in one transaction (at most HANDLE_BATCH): the
   * addresses released, per handle in order.
   */
  releaseByHandles(handles: readonly string[]): Promise<string[][]> {
    return this.queued('release', () => releaseByHandles(this.ctx, handles));
  }

  /** Releases these addresses whoever holds them; those that were allocated. */
  releaseIps(ips: string[]): Promise<string[]> {
    return this.queued('release', () => releaseIps(this.ctx, ips));
  }

  addressesOf(handle: string): Promise<string[]> {
    return addressesOf(this.ctx, handle);
  }

  blocks(): Promise<BlockInfo[]> {
    return listBlocks(this.ctx);
  }

  /** Leaks, duplicates, orphan blocks and inconsistencies, judged against what is live. */
  check(live: LiveSet): Promise<IpamReport> {
    return check(this.ctx, live);
  }

  /** Releases what check() calls leaked (never a live handle's, never one younger than graceMs). */
  gc(live: LiveSet): Promise<IpamReport> {
    return this.queued('release', () => gc(this.ctx, live));
  }

  /** A node leaving: deletes its empty blocks and their affinities; the blocks freed. */
  releaseBlockAffinity(node: string): Promise<string[]> {
    return this.queued('release', () => releaseBlockAffinity(this.ctx, node));
  }
}
