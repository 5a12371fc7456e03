/** What every IPAM operation needs: the etcd client, the key layout and the settings. */
import type { EtcdKvClient } from '../datastore/etcd/client.js';
import { type Cas, type CasOptions, runCas } from './cas.js';
import type { IpamConfig } from './config.js';
import type { Cidr } from './ipv4.js';
import type { IpamKeys } from './keys.js';

export interface IpamContext {
  readonly etcd: EtcdKvClient;
  readonly keys: IpamKeys;
  readonly cas: CasOptions;
  /** The config when neither the request nor the stored record gives one (config.ts). */
  readonly defaults: IpamConfig;
  readonly now: () => Date;
  /**
   * Per node, the affine blocks its last assignment found (assign.ts reads them with the
   * handle, saving a round trip while they are still the node's). A hint only: bounded by
   * the nodes this process assigns for, each up to maxBlocksPerHost CIDRs.
   */
  readonly affineHint?: Map<string, Cidr[]>;
}

export function transact<T>(
  ctx: IpamContext,
  what: string,
  attempt: (tx: Cas) => Promise<T>,
): Promise<T> {
  return runCas(ctx.etcd, ctx.cas, what, attempt);
}
