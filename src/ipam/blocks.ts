/** A summary of every block: for `ipam show` and for tests. */
import { type IpamContext, transact } from './context.js';
import { cidrSize, compareCidrs, formatCidr } from './ipv4.js';
import { affinityNode, parseBlock } from './records.js';

export interface BlockInfo {
  cidr: string;
  /** The node the block is affine to, or null. */
  affinity: string | null;
  size: number;
  allocated: number;
  free: number;
}

export function listBlocks(ctx: IpamContext): Promise<BlockInfo[]> {
  return transact(ctx, 'listing blocks', async (tx) => {
    const infos = [];
    for (const kv of await tx.list(ctx.keys.blocks)) {
      const cidr = ctx.keys.blockCidr(kv.key);
      if (!cidr) continue;
      const b = parseBlock(kv.key, kv.value, cidr);
      infos.push({
        c: cidr,
        info: {
          cidr: formatCidr(cidr),
          affinity: affinityNode(b),
          size: cidrSize(cidr),
          allocated: b.allocations.length,
          free: cidrSize(cidr) - b.allocations.length,
        },
      });
    }
    return infos.sort((a, b) => compareCidrs(a.c, b.c)).map((x) => x.info);
  });
}
