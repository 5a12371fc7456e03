/**
 * The uplink (BPF mode): the interface of the node namespace holding the node's underlay
 * address gets the uplink programs (decapsulation, the node's own traffic to remote
 * pods), and the dataplane learns the address and the interface. Done at the first
 * reconcile (a restarted agent replaces the previous agent's programs) and again when the
 * interface changes.
 *
 * And the node's own addresses as host routes: how tortie_from_pod tells a pod's packet
 * for the node (defaultEndpointToHostAction) from one it routes. Read every reconcile (an
 * address can come and go under the agent); the map is written only when the list changed.
 *
 * Failures are reported and retried; they do not hold back policy.
 */
import type { Logger } from 'pino';
import type { NodeNetns } from '../links.js';
import type {
  ManagerContext,
  ManagerResult,
  Manager,
  MetricsOut,
  Pass,
  StatusPart,
} from '../manager.js';

/** The uplink programs, tortie_node_cfg and the host routes (NodeDataplane). */
export interface UplinkPort {
  attachUplink(ifindex: number): void;
  setNodeConfig(cfg: { underlayIp: string; uplinkIfindex: number }): void;
  setHostAddresses(ips: readonly string[]): { added: number; removed: number };
}

export class UplinkManager implements Manager {
  readonly name = 'uplink';
  private readonly log: Logger;
  private uplink: { ip: string; ifindex: number } | undefined;
  private error: string | undefined;
  /** The node addresses last written as host routes. */
  private hostAddressesKey: string | undefined;

  constructor(
    ctx: ManagerContext,
    private readonly port: UplinkPort,
    private readonly netns: NodeNetns,
  ) {
    this.log = ctx.log;
  }

  async reconcile(pass: Pass): Promise<ManagerResult> {
    await this.programUplink(pass);
    pass.uplink = this.uplink;
    await this.programHostAddresses();
    return {};
  }

  private async programUplink(pass: Pass): Promise<void> {
    const address = pass.snapshot.address;
    if (address === undefined) return;
    const ip = address.split('/')[0]!;
    const live = new Set(pass.snapshot.links.values());
    if (this.uplink?.ip === ip && live.has(this.uplink.ifindex)) return;
    try {
      const ifindex = await this.netns.findAddressInterface(ip);
      if (ifindex === undefined) throw new Error(`no interface holds the node address ${ip}`);
      this.port.attachUplink(ifindex);
      this.port.setNodeConfig({ underlayIp: ip, uplinkIfindex: ifindex });
      this.uplink = { ip, ifindex };
      this.error = undefined;
      this.log.info({ underlayIp: ip, uplinkIfindex: ifindex }, 'uplink programs attached');
    } catch (e) {
      const msg = (e as Error).message;
      if (msg !== this.error) this.log.error({ err: msg }, 'cannot set up the uplink (retried)');
      this.error = msg;
    }
  }

  private async programHostAddresses(): Promise<void> {
    try {
      const ips = await this.netns.listNodeAddresses();
      const key = ips.join(',');
      if (key === this.hostAddressesKey) return;
      const r = this.port.setHostAddresses(ips);
      this.hostAddressesKey = key;
      if (r.added + r.removed > 0) this.log.info({ addresses: ips }, 'host addresses programmed');
    } catch (e) {
      this.log.error({ err: (e as Error).message }, 'cannot program the host addresses (retried)');
    }
  }

  status(): StatusPart {
    const uplink = this.error !== undefined ? { error: this.error } : this.uplink;
    return uplink === undefined ? {} : { uplink };
  }

  metrics(_out: MetricsOut): void {}

  stop(): void {}
}
