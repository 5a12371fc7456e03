/**
 * VXLAN between nodes with the kernel's vxlan device (iptables mode, pools with
 * `vxlanMode: Always` / `CrossSubnet`), on the scheme Calico uses:
 *
 *   vxlan.tortie   VNI 4096, UDP 4789, local = the node's underlay address, nolearning
 *   per remote node:
 *     bridge fdb   <its VTEP MAC> dev vxlan.tortie dst <its underlay address>   (where to send)
 *     ip neigh     <its VTEP address> lladdr <its VTEP MAC> dev vxlan.tortie      (no ARP)
 *     ip route     <block> via <its VTEP address> dev vxlan.tortie onlink proto 177
 *
 * Nothing is learned or flooded: every entry is written by the agent from the store.
 * A node's VTEP address is its underlay address (neighbours are per device, so this
 * does not collide with the underlay's own), and its VTEP MAC is derived from it
 * (`66:74:` and the four octets: locally administered, unicast), so a node needs no
 * extra allocation and every agent computes every peer's entries alone. The node's own
 * packets to remote pods leave with `src` = its underlay address.
 */
import { runIn } from '../plumbing/netns.js';

export const VXLAN_DEVICE = 'vxlan.tortie';
export const VXLAN_VNI = 4096;
export const VXLAN_PORT = 4789;
/** What VXLAN adds to a packet: the outer IPv4, UDP, VXLAN and inner Ethernet headers. */
export const VXLAN_OVERHEAD = 50;
/** The device's MTU when the uplink's cannot be read: a 1500-byte underlay less 50. */
export const VXLAN_MTU = 1450;

/** The VTEP MAC of the node with this underlay address. */
export function vtepMac(underlayIp: string): string {
  const octets = underlayIp.split('.').map((o) => Number(o).toString(16).padStart(2, '0'));
  return ['66', '74', ...octets].join(':');
}

export interface VxlanPeer {
  /** The remote node's underlay address (its VTEP address too). */
  readonly ip: string;
}

/** Keeps vxlan.tortie, its FDB and neighbours equal to the peers; remembers what it wrote. */
export class VxlanDevice {
  private written = '';

  constructor(
    private readonly netns: string | undefined,
    private readonly localIp: string,
    private readonly uplink: string,
  ) {}

  private ip(args: string[], input = ''): Promise<{ stdout: string }> {
    return runIn(this.netns, 'ip', args, input);
  }

  /**
   * Creates the device (or recreates it when its settings differ) with MTU `mtu` and
   * brings it up; an MTU alone that differs is set in place.
   */
  async ensureDevice(mtu: number = VXLAN_MTU): Promise<boolean> {
    const shown = await this.ip(['-d', '-j', 'link', 'show', 'dev', VXLAN_DEVICE]).catch(
      () => undefined,
    );
    const mac = vtepMac(this.localIp);
    if (shown !== undefined) {
      const [link] = JSON.parse(shown.stdout || '[]') as {
        address?: string;
        mtu?: number;
        operstate?: string;
        flags?: string[];
        linkinfo?: {
          info_kind?: string;
          info_data?: { id?: number; local?: string; port?: number };
        };
      }[];
      const d = link?.linkinfo?.info_data;
      if (
        link?.linkinfo?.info_kind === 'vxlan' &&
        d?.id === VXLAN_VNI &&
        d.local === this.localIp &&
        d.port === VXLAN_PORT &&
        link.address === mac &&
        link.flags?.includes('UP') === true
      ) {
        if (link.mtu !== mtu)
          await this.ip(['link', 'set', 'dev', VXLAN_DEVICE, 'mtu', String(mtu)]);
        return false;
      }
      await this.ip(['link', 'del', VXLAN_DEVICE]);
      this.written = '';
    }
    await this.ip(
      ['-batch', '-'],
      [
        `link add ${VXLAN_DEVICE} type vxlan id ${VXLAN_VNI} dstport ${VXLAN_PORT} local ${this.localIp} dev ${this.uplink} nolearning`,
        `link set ${VXLAN_DEVICE} address ${mac} mtu ${mtu}`,
        `link set ${VXLAN_DEVICE} up`,
        '',
      ].join('\n'),
    );
    this.written = '';
    return true;
  }

  /**
   * Writes the FDB entry and neighbour of every peer and removes those of nodes that are
   * gone. Skipped when the peers are those last written (and the device was not made anew).
   */
  async syncPeers(peers: readonly VxlanPeer[]): Promise<number> {
    const want = [...new Set(peers.map((p) => p.ip))].sort();
    const key = want.join(',');
    if (key === this.written) return 0;
    const wantSet = new Set(want);
    const neigh = JSON.parse(
      (await this.ip(['-j', 'neigh', 'show', 'dev', VXLAN_DEVICE])).stdout || '[]',
    ) as { dst?: string }[];
    const fdb = JSON.parse(
      (await runIn(this.netns, 'bridge', ['-j', 'fdb', 'show', 'dev', VXLAN_DEVICE])).stdout ||
        '[]',
    ) as { mac?: string; dst?: string }[];
    const lines: string[] = [];
    const bridge: string[] = [];
    for (const ip of want) {
      bridge.push(`fdb replace ${vtepMac(ip)} dev ${VXLAN_DEVICE} dst ${ip} self permanent`);
      lines.push(`neigh replace ${ip} lladdr ${vtepMac(ip)} dev ${VXLAN_DEVICE} nud permanent`);
    }
    for (const n of neigh)
      if (n.dst !== undefined && !wantSet.has(n.dst))
        lines.push(`neigh del ${n.dst} dev ${VXLAN_DEVICE}`);
    for (const f of fdb)
      if (f.dst !== undefined && f.mac !== undefined && !wantSet.has(f.dst))
        bridge.push(`fdb del ${f.mac} dev ${VXLAN_DEVICE} dst ${f.dst} self`);
    if (bridge.length > 0)
      await runIn(this.netns, 'bridge', ['-batch', '-'], bridge.join('\n') + '\n');
    if (lines.length > 0) await this.ip(['-batch', '-'], lines.join('\n') + '\n');
    this.written = key;
    return bridge.length + lines.length;
  }
}
