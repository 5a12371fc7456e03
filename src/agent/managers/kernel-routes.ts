/**
 * Kernel routes in the node's namespace for every remote route: `<cidr> via <node> dev
 * <uplink> proto 177`, with `mtu <uplink's MTU − 20>` under IPIP (the node's own traffic,
 * encapsulated by tortie_to_uplink; FelixConfiguration ipipMTU wins), and the VXLAN
 * device at the uplink's MTU − 50 (vxlanMTU wins): the MTU is read from the uplink on
 * every pass, so a changed underlay MTU is followed. Diffed against the routes with tortie's protocol that are present;
 * other routes are never touched. Skipped while the node has no address.
 *
 * With `routing: bgp`, BIRD's kernel protocol installs the remote routes: tortie's own
 * (left by static routing) are withdrawn. In iptables mode the routes are shaped by
 * VxlanEncap (VXLAN through vxlan.tortie, IPIP refused).
 *
 * A failure is kept here (status, counted as a route error, retried).
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
import {
  desiredKernelRoutes,
  diffKernelRoutes,
  IPIP_OVERHEAD,
  IPIP_ROUTE_MTU,
  TORTIE_ROUTE_PROTO,
  tunnelMtu,
  type DesiredRoute,
  type KernelRoute,
} from '../routes.js';
import { VXLAN_DEVICE, VXLAN_MTU, VXLAN_OVERHEAD, type VxlanPeer } from '../vxlan.js';

/** The MTUs of the tunnels this pass (./../routes.ts tunnelMtu). */
export interface TunnelMtus {
  readonly ipip: number;
  readonly vxlan: number;
}

export const DEFAULT_TUNNEL_MTUS: TunnelMtus = { ipip: IPIP_ROUTE_MTU, vxlan: VXLAN_MTU };

/** How the wanted routes become kernel routes (BPF: plain; iptables: VxlanEncap). */
export interface KernelRouteShape {
  routes(
    wanted: readonly DesiredRoute[],
    dev: string,
    ip: string,
    mtus?: TunnelMtus,
  ): Promise<KernelRoute[]>;
  /** A refused encapsulation, for /status (undefined: none). */
  readonly refused?: string | undefined;
}

/** BPF mode: the routes out of the uplink (IPIP is the BPF programs' job). */
export const plainKernelRoutes: KernelRouteShape = {
  routes: (wanted, dev, ip, mtus = DEFAULT_TUNNEL_MTUS) =>
    Promise.resolve(desiredKernelRoutes(wanted, dev, mtus.ipip, ip)),
};

/** vxlan.tortie, its FDB entries and neighbours (./../vxlan.ts's VxlanDevice). */
export interface VxlanPort {
  ensureDevice(mtu: number): Promise<boolean>;
  syncPeers(peers: readonly VxlanPeer[]): Promise<number>;
}

/**
 * iptables mode: plain (`Never`) routes go out of the uplink as in BPF mode; VXLAN routes
 * go `via <peer VTEP> dev vxlan.tortie onlink` after the device, its FDB entries and
 * neighbours are in place; IPIP routes are refused (the kernel here has no ipip module,
 * and iptables mode has no BPF encapsulation): left out, logged, and reported.
 */
export class VxlanEncap implements KernelRouteShape {
  refused: string | undefined;
  private device: VxlanPort | undefined;

  constructor(
    private readonly log: Logger,
    private readonly makeDevice: (localIp: string, dev: string) => VxlanPort,
  ) {}

  async routes(
    wanted: readonly DesiredRoute[],
    dev: string,
    ip: string,
    mtus: TunnelMtus = DEFAULT_TUNNEL_MTUS,
  ): Promise<KernelRoute[]> {
    const ipip = wanted.filter((r) => r.ipip);
    const refused =
      ipip.length === 0
        ? undefined
        : `dataplane iptables cannot encapsulate IPIP (no ipip module, no BPF): ` +
          `${ipip.length} route(s) left out (${ipip
            .slice(0, 3)
            .map((r) => r.cidr)
            .join(', ')}${ipip.length > 3 ? ', …' : ''}); use ipipMode Never with ` +
          `vxlanMode Always, or Never`;
    if (refused !== this.refused && refused !== undefined)
      this.log.error({ err: refused }, 'IP pool encapsulation refused');
    this.refused = refused;
    const usable = wanted.filter((r) => !r.ipip);
    const vx = usable.filter((r) => r.vxlan);
    if (vx.length > 0) {
      this.device ??= this.makeDevice(ip, dev);
      if (await this.device.ensureDevice(mtus.vxlan))
        this.log.info({ device: VXLAN_DEVICE, local: ip }, 'VXLAN device created');
      const n = await this.device.syncPeers(vx.map((r) => ({ ip: r.nextHop })));
      if (n > 0)
        this.log.info(
          { peers: [...new Set(vx.map((r) => r.nextHop))] },
          'VXLAN FDB and neighbours',
        );
    }
    return usable.map((r) =>
      r.vxlan
        ? {
            cidr: r.cidr,
            via: r.nextHop,
            dev: VXLAN_DEVICE,
            mtu: mtus.vxlan,
            src: ip,
            onlink: true,
          }
        : { cidr: r.cidr, via: r.nextHop, dev, mtu: undefined, src: ip },
    );
  }
}

export interface KernelRoutesOptions {
  readonly netns: NodeNetns;
  readonly shape: KernelRouteShape;
  /** `routing: bgp`: BIRD installs the remote routes; tortie's own are withdrawn. */
  readonly withdrawOnly: boolean;
}

export class KernelRoutesManager implements Manager {
  readonly name = 'kernel-routes';
  private readonly log: Logger;
  private error: string | undefined;

  constructor(
    private readonly ctx: ManagerContext,
    private readonly opts: KernelRoutesOptions,
  ) {
    this.log = ctx.log;
  }

  async reconcile(pass: Pass): Promise<ManagerResult> {
    try {
      const r = await this.program(pass);
      this.error = undefined;
      return r;
    } catch (e) {
      this.error = (e as Error).message;
      this.ctx.tally.routeErrors++;
      this.log.error({ err: this.error }, 'programming kernel routes failed (retried)');
      return { retryMs: 2000 };
    }
  }

  private async program(pass: Pass): Promise<ManagerResult> {
    const { address, links } = pass.snapshot;
    if (address === undefined) return {};
    const ip = address.split('/')[0]!;
    const { netns } = this.opts;
    const ifindex =
      pass.uplink?.ip === ip ? pass.uplink.ifindex : await netns.findAddressInterface(ip);
    const dev = [...links].find(([, i]) => i === ifindex)?.[0];
    const wanted = this.opts.withdrawOnly ? [] : pass.wanted;
    if (dev === undefined) {
      if (wanted.length === 0) return {};
      throw new Error(`no interface holds the node address ${ip}: no kernel routes`);
    }
    const uplinkMtu = await netns.linkMtu(dev);
    const settings = pass.snapshot.settings;
    const mtus: TunnelMtus = {
      ipip: tunnelMtu(settings?.ipipMtu, uplinkMtu, IPIP_OVERHEAD, IPIP_ROUTE_MTU),
      vxlan: tunnelMtu(settings?.vxlanMtu, uplinkMtu, VXLAN_OVERHEAD, VXLAN_MTU),
    };
    const desired = await this.opts.shape.routes(wanted, dev, ip, mtus);
    const present = await netns.listKernelRoutes(TORTIE_ROUTE_PROTO);
    const lines = diffKernelRoutes(present, desired);
    if (lines.length === 0) return {};
    await netns.applyKernelRoutes(lines, dev);
    this.log.info({ lines }, 'kernel routes');
    const removed = lines.filter((l) => l.startsWith('route del')).length;
    return { writes: lines.length - removed, deletes: removed };
  }

  status(): StatusPart {
    const refused = this.opts.shape.refused;
    return {
      ...(this.error === undefined ? {} : { kernelRouteError: this.error }),
      ...(refused === undefined ? {} : { encapError: refused }),
    };
  }

  metrics(_out: MetricsOut): void {}

  stop(): void {}
}
