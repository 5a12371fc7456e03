/**
 * What the BGP e2e files share: the /26 a pod's address falls in, BIRD's kernel routes of
 * a namespace, birdc on a lab node's control socket, and polling until a condition holds.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { birdPaths } from '../../src/bgp/bird.js';
import type { ClusterLab, ClusterNode } from '../../src/lab/cluster/cluster-lab.js';

const exec = promisify(execFile);

/** The /26 block holding `ip` (the lab pools' block size). */
export function blockOf(ip: string): string {
  const o = ip.split('.').map(Number);
  return `${o[0]}.${o[1]}.${o[2]}.${o[3]! & 0xc0}/26`;
}

/** `ip -j route show proto <proto>` in a namespace, as "prefix via gw[,gw…]". */
export async function kernelRoutes(netns: string, proto: string): Promise<string[]> {
  const { stdout } = await exec('nsenter', [
    `--net=${netns}`,
    '--',
    'ip',
    '-j',
    'route',
    'show',
    'proto',
    proto,
  ]);
  return (
    JSON.parse(stdout || '[]') as {
      dst: string;
      gateway?: string;
      nexthops?: { gateway?: string }[];
    }[]
  ).map((r) => {
    const gws = r.gateway !== undefined ? [r.gateway] : (r.nexthops ?? []).map((n) => n.gateway);
    return `${r.dst.includes('/') ? r.dst : `${r.dst}/32`} via ${[...new Set(gws)].join(',')}`;
  });
}

/** birdc on the node's BIRD (its control socket in the lab's BIRD run dir). */
export async function birdc(
  lab: ClusterLab,
  node: ClusterNode,
  ...args: string[]
): Promise<string> {
  const { stdout } = await exec('birdc', ['-s', birdPaths(lab.bgpRunDir, node.name).ctl, ...args]);
  return stdout;
}

/** Polls every 100 ms until `ok`; returns the elapsed ms, throws after `timeoutMs`. */
export async function until(
  what: string,
  ok: () => Promise<boolean>,
  timeoutMs = 30_000,
): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    if (await ok()) return Date.now() - t0;
    if (Date.now() - t0 > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
