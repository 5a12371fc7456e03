/**
 * The lab's external router (`tor: true`): a namespace on the underlay bridge (a veth to
 * `br0`, the address .250 of the underlay /24), running FRR's zebra (installs what bgpd
 * learned into the namespace's kernel) and bgpd (AS 64999, passive: `bgp listen range`
 * over the underlay /24, any node AS). Both run with their own configuration, pid files,
 * zebra socket and vty sockets in `<workDir>/tor` — never the machine's /etc/frr or
 * /var/run/frr — as the `frr` user (FRR's vty group needs it), without a TCP vty.
 */
import { execFile } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readdirSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createNetns, netnsPath, otherNetns, runIn } from '../../plumbing/netns.js';
import { clusterNames } from './names.js';
import { joinUnderlay, STEP_TIMEOUT } from './underlay.js';

const exec = promisify(execFile);

/** The lab's external router (`tor: true`). */
export interface LabTor {
  /** Namespace name (`tortie-<id>-tor`) and path. */
  readonly netnsName: string;
  readonly netns: string;
  readonly ip: string;
  readonly asNumber: number;
  /** FRR's configuration, pid files, vty sockets, logs: `vtysh --vty_socket <dir>`. */
  readonly dir: string;
}

/** The ToR's AS number and host part of its underlay address. */
export const TOR_AS_NUMBER = 64999;
export const TOR_HOST = 250;
export const FRR_DIR = '/usr/lib/frr';

/** Refuses a ToR the machine cannot run (before the lab makes anything). */
export function checkTorInstalled(): void {
  if (!existsSync(`${FRR_DIR}/bgpd`))
    throw new Error(`tor: FRR is not installed (${FRR_DIR}/bgpd): apt-get install frr`);
}

/** What the ToR of lab `id` is (its files under `<workDir>/tor`). */
export function torOf(id: string, underlayPrefix: string, workDir: string): LabTor {
  const netnsName = clusterNames(id).tor;
  return {
    netnsName,
    netns: netnsPath(netnsName),
    ip: `${underlayPrefix}.${TOR_HOST}`,
    asNumber: TOR_AS_NUMBER,
    dir: join(workDir, 'tor'),
  };
}

/** Makes the ToR's namespace, joins it to the underlay, starts zebra and bgpd in it. */
export async function startTor(
  id: string,
  ulPath: string,
  underlayPrefix: string,
  workDir: string,
): Promise<LabTor> {
  const tor = torOf(id, underlayPrefix, workDir);
  const path = await createNetns(tor.netnsName);
  await joinUnderlay(ulPath, clusterNames(id).torPort, tor.netnsName, path, tor.ip, false);
  // FRR runs as its own user: it must get through the (private) work dir to tor/.
  chmodSync(workDir, statSync(workDir).mode | 0o111);
  mkdirSync(tor.dir, { recursive: true });
  const f = (name: string) => join(tor.dir, `tortie-${id}-tor-${name}`);
  writeFileSync(f('zebra.conf'), `hostname ${tor.netnsName}\n!\n`);
  writeFileSync(
    f('bgpd.conf'),
    [
      `! FRR bgpd of lab ${id}'s ToR, written by the lab (ClusterLab.up({ tor: true })).`,
      'frr defaults datacenter',
      `hostname ${tor.netnsName}`,
      '!',
      `router bgp ${tor.asNumber}`,
      ` bgp router-id ${tor.ip}`,
      ' no bgp ebgp-requires-policy',
      ' timers bgp 2 6',
      ' neighbor nodes peer-group',
      ' neighbor nodes remote-as external',
      ` bgp listen range ${underlayPrefix}.0/24 peer-group nodes`,
      ' address-family ipv4 unicast',
      '  neighbor nodes activate',
      ' exit-address-family',
      '!',
      '',
    ].join('\n'),
  );
  // FRR drops to its user (its vty group requires it): its files must be that user's.
  const { stdout: uid } = await exec('id', ['-u', 'frr']);
  const { stdout: gid } = await exec('id', ['-g', 'frr']);
  for (const p of [tor.dir, ...readdirSync(tor.dir).map((n) => join(tor.dir, n))])
    chownSync(p, Number(uid.trim()), Number(gid.trim()));
  const daemon = (name: string) => [
    '-d',
    '-u',
    'frr',
    '-g',
    'frr',
    '-f',
    f(`${name}.conf`),
    '-i',
    f(`${name}.pid`),
    '-z',
    f('zserv.api'),
    '--vty_socket',
    tor.dir,
    '-P',
    '0',
    '--log',
    `file:${f(`${name}.log`)}`,
  ];
  await runIn(otherNetns(path), `${FRR_DIR}/zebra`, daemon('zebra'), STEP_TIMEOUT);
  // bgpd hands its routes to zebra over this socket: wait for it.
  const deadline = Date.now() + 5000;
  while (!existsSync(f('zserv.api'))) {
    if (Date.now() > deadline) throw new Error(`ToR: zebra did not open ${f('zserv.api')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  await runIn(otherNetns(path), `${FRR_DIR}/bgpd`, daemon('bgpd'), STEP_TIMEOUT);
  return tor;
}
