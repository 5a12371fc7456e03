/**
 * Every IPAM record at one etcd revision (one range read), parsed. What does not parse
 * is kept aside with the reason, for `check` to report.
 */
import type { Cas } from './cas.js';
import type { Cidr } from './ipv4.js';
import type { IpamKeys } from './keys.js';
import {
  type AffinityRecord,
  type BlockRecord,
  type HandleRecord,
  parseAffinity,
  parseBlock,
  parseHandle,
  parseStoredConfig,
  type StoredIpamConfig,
} from './records.js';

export interface Snapshot {
  readonly revision: string;
  readonly blocks: { key: string; mod: string; cidr: Cidr; block: BlockRecord }[];
  readonly handles: { key: string; name: string; record: HandleRecord }[];
  readonly affinities: { key: string; node: string; cidr: Cidr; record: AffinityRecord }[];
  /** The `ipam/v2/config` record, when there is one. */
  config?: StoredIpamConfig;
  readonly corrupt: { key: string; reason: string }[];
}

const IPV6 = /^(assignment|host\/[^/]+)\/ipv6\//;

export async function readSnapshot(tx: Cas, keys: IpamKeys): Promise<Snapshot> {
  const { revision, lists } = await tx.read([], [{ prefix: keys.root }]);
  const kvs = lists[0]!;
  const snap: Snapshot = { revision, blocks: [], handles: [], affinities: [], corrupt: [] };
  for (const { key, value, mod } of kvs) {
    // A Calico cluster's IPv6 blocks and affinities: not tortie's (IPv4 only), left alone.
    if (IPV6.test(key.slice(keys.root.length))) continue;
    try {
      const cidr = keys.blockCidr(key);
      const handle = keys.handleName(key);
      const aff = keys.affinityOf(key);
      if (cidr) snap.blocks.push({ key, mod, cidr, block: parseBlock(key, value, cidr) });
      else if (handle)
        snap.handles.push({ key, name: handle, record: parseHandle(key, value, handle) });
      else if (aff) snap.affinities.push({ key, ...aff, record: parseAffinity(key, value) });
      else if (key === keys.config) snap.config = parseStoredConfig(key, value);
      else throw new Error(`${key} is not a block, handle, affinity or config key`);
    } catch (e) {
      snap.corrupt.push({ key, reason: (e as Error).message });
    }
  }
  return snap;
}
