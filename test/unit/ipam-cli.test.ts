import { Command, CommanderError } from 'commander';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { registerIpamCommands } from '../../src/cli/ipam.js';
import { Ipam, type PoolSpec } from '../../src/ipam/index.js';
import { useEtcd } from './ipam-etcd.js';

const etcd = useEtcd('ipamcli');
const pools: PoolSpec[] = [
  { name: 'default', cidr: '10.50.0.0/24', blockSize: 26 },
  { name: 'spare', cidr: '10.51.0.0/24', blockSize: 26, disabled: true },
];

interface World {
  prefix: string;
  live: { handles: Set<string>; nodes: Set<string> };
  ipam: Ipam;
}

function world(): World {
  const prefix = etcd.prefix();
  return {
    prefix,
    live: { handles: new Set(), nodes: new Set(['n1']) },
    ipam: new Ipam(etcd.client(), prefix),
  };
}

/** Runs `tortie <args>` against the world; what it printed, its exit code, what it threw. */
async function tortie(
  w: World,
  ...args: string[]
): Promise<{ out: string; exitCode: number; error?: Error }> {
  const program = new Command()
    .exitOverride()
    .configureOutput({ writeErr: () => {}, writeOut: () => {} });
  registerIpamCommands(program, async () => ({
    etcd: etcd.client(),
    prefix: w.prefix,
    liveHandles: async () => w.live.handles,
    liveNodes: async () => w.live.nodes,
    pools: async () => pools,
  }));
  const lines: string[] = [];
  const log = vi
    .spyOn(console, 'log')
    .mockImplementation((...a: unknown[]) => void lines.push(a.join(' ')));
  process.exitCode = undefined;
  let error: Error | undefined;
  try {
    await program.parseAsync(['node', 'tortie', ...args]);
  } catch (e) {
    error = e as Error;
  } finally {
    log.mockRestore();
  }
  const exitCode = Number(process.exitCode ?? 0);
  process.exitCode = undefined;
  return { out: lines.join('\n'), exitCode, error };
}

afterEach(() => {
  process.exitCode = undefined;
});

describe('tortie ipam', () => {
  it('show prints pool utilisation, and with --show-blocks each block with its affinity', async () => {
    const w = world();
    for (let k = 0; k < 3; k++) await w.ipam.autoAssign({ handle: `h${k}`, node: 'n1', pools });
    const plain = await tortie(w, 'ipam', 'show');
    expect(plain.out).toMatch(/^POOL\s+CIDR/);
    expect(plain.out).toMatch(
      /default\s+10\.50\.0\.0\/24\s+\/26\s+no\s+256\s+3 \(1\.2%\)\s+253\s+1/,
    );
    expect(plain.out).toMatch(/spare\s+10\.51\.0\.0\/24\s+\/26\s+yes\s+256\s+0 \(0%\)\s+256\s+0/);
    expect(plain.out).not.toContain('AFFINITY');
    const blocks = await tortie(w, 'ipam', 'show', '--show-blocks');
    const [block] = await w.ipam.blocks();
    expect(blocks.out).toMatch(
      new RegExp(
        `${block!.cidr.replace(/\./g, '\\.')}\\s+default\\s+n1\\s+64\\s+3 \\(4\\.7%\\)\\s+61`,
      ),
    );
  });

  it('check exits 0 on a consistent store', async () => {
    const w = world();
    await w.ipam.autoAssign({ handle: 'live', node: 'n1', pools });
    w.live.handles.add('live');
    const r = await tortie(w, 'ipam', 'check', '--grace', '0');
    expect(r.exitCode).toBe(0);
    expect(r.out).toContain('no problems found');
  });

  it('check exits 1 and lists each leak with its address, handle, block and age; -o json gives the report', async () => {
    const w = world();
    const leaked = await w.ipam.autoAssign({ handle: 'net.dead', node: 'n1', pools });
    await w.ipam.autoAssign({ handle: 'net.live', node: 'n1', pools });
    w.live.handles.add('net.live');
    const text = await tortie(w, 'ipam', 'check', '--grace', '0');
    expect(text.exitCode).toBe(1);
    expect(text.out).toMatch(
      new RegExp(
        `${leaked.ip.replace(/\./g, '\\.')}\\s+net\\.dead\\s+${leaked.block.replace(/\./g, '\\.')}\\s+n1\\s+n1\\s+\\d+s`,
      ),
    );
    expect(text.out).not.toMatch(/net\.live/);
    expect(text.out).toContain('1 problem found');
    const json = await tortie(w, 'ipam', 'check', '--grace', '0', '-o', 'json');
    expect(json.exitCode).toBe(1);
    expect(JSON.parse(json.out)).toMatchObject({
      ok: false,
      leaks: [{ ip: leaked.ip, handle: 'net.dead', block: leaked.block }],
    });
    // With the default grace (5 minutes) a fresh allocation is not a leak yet.
    expect((await tortie(w, 'ipam', 'check')).exitCode).toBe(0);
  });

  it('gc releases leaks older than --grace and leaves live and young addresses', async () => {
    const w = world();
    const dead = await w.ipam.autoAssign({ handle: 'dead', node: 'n1', pools });
    const live = await w.ipam.autoAssign({ handle: 'live', node: 'n1', pools });
    w.live.handles.add('live');
    const young = await tortie(w, 'ipam', 'gc', '--grace', '3600');
    expect(young.out).toContain('0 addresses released');
    expect(young.out).toContain('1 within the grace period');
    const r = await tortie(w, 'ipam', 'gc', '--grace', '0');
    expect(r.error).toBeUndefined();
    expect(r.out).toContain(`released ${dead.ip} (handle dead, block ${dead.block}`);
    expect(await w.ipam.addressesOf('dead')).toEqual([]);
    expect(await w.ipam.addressesOf('live')).toEqual([live.ip]);
    expect((await tortie(w, 'ipam', 'check', '--grace', '0')).exitCode).toBe(0);
  });

  it('release --ip frees the address; an address not assigned is an error naming it', async () => {
    const w = world();
    const a = await w.ipam.autoAssign({ handle: 'h', node: 'n1', pools });
    const r = await tortie(w, 'ipam', 'release', '--ip', a.ip);
    expect(r.out).toBe(`released ${a.ip}`);
    expect(await w.ipam.addressesOf('h')).toEqual([]);
    const again = await tortie(w, 'ipam', 'release', '--ip', a.ip);
    expect(again.error?.message).toBe(`${a.ip} is not assigned`);
  });

  it('refuses a bad --grace, --ip or output format before touching etcd', async () => {
    const w = world();
    expect((await tortie(w, 'ipam', 'check', '--grace', '-5')).error).toBeInstanceOf(
      CommanderError,
    );
    expect((await tortie(w, 'ipam', 'release', '--ip', '10.0.0.256')).error?.message).toMatch(
      /not an IPv4 address/,
    );
    expect((await tortie(w, 'ipam', 'check', '-o', 'yaml')).error?.message).toMatch(
      /use text or json/,
    );
  });
});
