/**
 * `tortie ipam show|check|release|gc`. The caller supplies `connect`, which opens etcd and
 * says what is live (handles from WorkloadEndpoints, nodes) and which pools exist; each
 * command opens it once and closes the etcd client when done. `check` exits 1 when it
 * finds a problem.
 */
import type { Command } from 'commander';
import type { EtcdKvClient } from '../datastore/index.js';
import {
  type BlockInfo,
  type IpamReport,
  type LeakedAddress,
  type PoolSpec,
  DEFAULT_GRACE_MS,
  Ipam,
  IpamError,
} from '../ipam/index.js';
import { tryParseCidr } from '../ipam/ipv4.js';
import { ipAddresses, oneOf, seconds } from './args.js';
import { formatTable as table } from './table.js';

export interface IpamConnection {
  etcd: EtcdKvClient;
  prefix: string;
  liveHandles(): Promise<Set<string>>;
  liveNodes(): Promise<Set<string>>;
  pools(): Promise<PoolSpec[]>;
}

type Connect = () => Promise<IpamConnection>;

async function withIpam<T>(
  connect: Connect,
  run: (ipam: Ipam, conn: IpamConnection) => Promise<T>,
): Promise<T> {
  const conn = await connect();
  try {
    return await run(new Ipam(conn.etcd, conn.prefix), conn);
  } finally {
    conn.etcd.close();
  }
}

export function formatAge(ms: number | null): string {
  if (ms === null) return 'unknown';
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`;
}

function percent(n: number, of: number): string {
  return of === 0 ? '0%' : `${((100 * n) / of).toFixed(n === 0 || n === of ? 0 : 1)}%`;
}

/** Which pool holds a block (by CIDR containment); undefined when none does. */
function poolOf(pools: PoolSpec[], block: string): PoolSpec | undefined {
  const b = tryParseCidr(block);
  return pools.find((p) => {
    const c = tryParseCidr(p.cidr);
    return (
      b &&
      c &&
      b.prefixLength >= c.prefixLength &&
      b.base >= c.base &&
      b.base < c.base + 2 ** (32 - c.prefixLength)
    );
  });
}

export function renderShow(pools: PoolSpec[], blocks: BlockInfo[], showBlocks: boolean): string {
  const rows = pools.map((p) => {
    const c = tryParseCidr(p.cidr);
    const size = c ? 2 ** (32 - c.prefixLength) : 0;
    const mine = blocks.filter((b) => poolOf(pools, b.cidr) === p);
    const used = mine.reduce((n, b) => n + b.allocated, 0);
    return [
      p.name,
      p.cidr,
      `/${p.blockSize}`,
      p.disabled ? 'yes' : 'no',
      String(size),
      `${used} (${percent(used, size)})`,
      String(size - used),
      String(mine.length),
    ];
  });
  const out = [
    table(
      ['POOL', 'CIDR', 'BLOCK SIZE', 'DISABLED', 'ADDRESSES', 'IN USE', 'FREE', 'BLOCKS'],
      rows,
    ),
  ];
  if (showBlocks) {
    out.push(
      '',
      table(
        ['BLOCK', 'POOL', 'AFFINITY', 'SIZE', 'IN USE', 'FREE'],
        blocks.map((b) => [
          b.cidr,
          poolOf(pools, b.cidr)?.name ?? '(none)',
          b.affinity ?? '(none)',
          String(b.size),
          `${b.allocated} (${percent(b.allocated, b.size)})`,
          String(b.free),
        ]),
      ),
    );
  }
  return out.join('\n');
}

function leakRows(leaks: LeakedAddress[]): string[][] {
  return leaks.map((l) => [
    l.ip,
    l.handle,
    l.block,
    l.node,
    l.affinity ?? '(none)',
    formatAge(l.ageMs),
  ]);
}

export function problemCount(r: IpamReport): number {
  return r.leaks.length + r.duplicates.length + r.orphanBlocks.length + r.inconsistencies.length;
}

export function renderReport(r: IpamReport): string {
  const out = [
    `checked ${r.counts.blocks} blocks, ${r.counts.allocations} allocations, ${r.counts.handles} handles, ${r.counts.affinities} affinities at etcd revision ${r.revision} (grace ${r.graceMs / 1000}s)`,
  ];
  const header = ['ADDRESS', 'HANDLE', 'BLOCK', 'ALLOCATED BY', 'BLOCK AFFINITY', 'AGE'];
  if (r.leaks.length)
    out.push('', `leaked addresses (${r.leaks.length}):`, table(header, leakRows(r.leaks)));
  if (r.duplicates.length) {
    out.push('', `duplicate addresses (${r.duplicates.length}):`);
    for (const d of r.duplicates)
      out.push(`  ${d.ip}: ${d.holders.map((h) => `${h.handle} in ${h.block}`).join(', ')}`);
  }
  if (r.orphanBlocks.length) {
    out.push('', `orphan blocks (${r.orphanBlocks.length}):`);
    for (const o of r.orphanBlocks) {
      out.push(
        `  ${o.block}: ${o.reason === 'node-gone' ? `affine to ${o.affinity}, which is not a node` : 'empty and affine to no node'} (${o.allocated} in use)`,
      );
    }
  }
  if (r.inconsistencies.length) {
    out.push('', `inconsistent records (${r.inconsistencies.length}):`);
    for (const i of r.inconsistencies) out.push(`  ${i.kind}: ${i.detail}`);
  }
  if (r.inGrace.length)
    out.push(
      '',
      `not live but within the grace period (not counted as leaks): ${r.inGrace.length}`,
      table(header, leakRows(r.inGrace)),
    );
  const n = problemCount(r);
  out.push(
    '',
    n === 0 ? 'IPAM is consistent: no problems found' : `${n} problem${n === 1 ? '' : 's'} found`,
  );
  return out.join('\n');
}

export function registerIpamCommands(program: Command, connect: Connect): void {
  const ipam = program.command('ipam').description('IP address management: pools, blocks, leaks');

  ipam
    .command('show')
    .description('pool utilisation (and with --show-blocks every block with its node affinity)')
    .option('--show-blocks', 'list every block', false)
    .action(async (o: { showBlocks: boolean }) => {
      const text = await withIpam(connect, async (ip, conn) =>
        renderShow(await conn.pools(), await ip.blocks(), o.showBlocks),
      );
      console.log(text);
    });

  ipam
    .command('check')
    .description(
      'find leaked addresses (no live endpoint), duplicates, orphan blocks and inconsistent records; exit 1 if any',
    )
    .option(
      '--grace <seconds>',
      `addresses younger than this are not leaks (an ADD may be in flight)`,
      seconds,
      DEFAULT_GRACE_MS / 1000,
    )
    .option('-o, --output <format>', 'text or json', oneOf('text', 'json'), 'text' as const)
    .action(async (o: { grace: number; output: 'text' | 'json' }) => {
      const report = await withIpam(connect, async (ip, conn) =>
        ip.check({
          handles: await conn.liveHandles(),
          nodes: await conn.liveNodes(),
          graceMs: o.grace * 1000,
        }),
      );
      console.log(o.output === 'json' ? JSON.stringify(report, null, 2) : renderReport(report));
      if (!report.ok) process.exitCode = 1;
    });

  ipam
    .command('release')
    .description('release addresses whoever holds them (for addresses whose endpoint is gone)')
    .requiredOption('--ip <ip>', 'address to release (repeatable)', ipAddresses)
    .action(async (o: { ip: string[] }) => {
      const released = await withIpam(connect, (ip) => ip.releaseIps(o.ip));
      for (const a of released) console.log(`released ${a}`);
      const missing = o.ip.filter((a) => !released.includes(a));
      if (missing.length)
        throw new IpamError(
          'not-found',
          `${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} not assigned`,
        );
    });

  ipam
    .command('gc')
    .description(
      'release leaked addresses (older than --grace, handle not live) and delete empty orphan blocks',
    )
    .option(
      '--grace <seconds>',
      'never release an address younger than this',
      seconds,
      DEFAULT_GRACE_MS / 1000,
    )
    .action(async (o: { grace: number }) => {
      const r = await withIpam(connect, async (ip, conn) =>
        ip.gc({
          handles: await conn.liveHandles(),
          nodes: await conn.liveNodes(),
          graceMs: o.grace * 1000,
        }),
      );
      const released = new Set(r.released ?? []);
      for (const l of r.leaks)
        if (released.has(l.ip))
          console.log(
            `released ${l.ip} (handle ${l.handle}, block ${l.block}, age ${formatAge(l.ageMs)})`,
          );
      for (const b of r.releasedBlocks ?? []) console.log(`deleted block ${b}`);
      console.log(
        `gc: ${released.size} address${released.size === 1 ? '' : 'es'} released, ${(r.releasedBlocks ?? []).length} blocks deleted; ${r.inGrace.length} within the grace period left alone`,
      );
    });
}
