/**
 * The managers of one agent, chosen once from the mode (docs/agent.md, "Managers"):
 *
 *   dataplane bpf:       host-endpoints, bpf-policy, local-routes, remote-routes (routes map),
 *                        uplink, xdp, [bgp], kernel-routes (plain), nat-outgoing
 *   dataplane iptables:  iptables-policy, remote-routes (computed only), [bgp],
 *                        kernel-routes (VXLAN device; IPIP refused), nat-outgoing
 *
 * `[bgp]` with `routing: bgp`: it is then also where the remote routes come from (what
 * BIRD installed), and kernel-routes only withdraws tortie's own. The order is the order
 * of a reconcile: policy before routes, the uplink before BIRD and the kernel routes.
 */
import { Bird } from '../../bgp/bird.js';
import type { NodeDataplane } from '../../dataplane/node-dataplane.js';
import type { IptablesDataplane } from '../../iptables/index.js';
import { readPinnedRoutes } from '../adopt.js';
import type { AgentConfig } from '../config.js';
import type { NodeNetns } from '../links.js';
import type { Manager, ManagerContext, PolicyManager } from '../manager.js';
import { syncNat } from '../nat.js';
import { RouteMonitor } from '../route-monitor.js';
import { VxlanDevice } from '../vxlan.js';
import { BgpManager } from './bgp.js';
import { BpfPolicyManager, policyMapsPort } from './bpf-policy.js';
import { IptablesPolicyManager } from './iptables-policy.js';
import { KernelRoutesManager, plainKernelRoutes, VxlanEncap } from './kernel-routes.js';
import { LocalRoutesManager } from './local-routes.js';
import { NatOutgoingManager } from './nat-outgoing.js';
import { RemoteRoutesManager, storeRoutes, type RouteSource } from './remote-routes.js';
import { HostEndpointsManager } from './host-endpoints.js';
import { UplinkManager } from './uplink.js';
import { XdpManager, type XdpPort } from './xdp.js';

export interface ManagerSet {
  /** In reconcile order. */
  readonly managers: readonly Manager[];
  /** The one that programs the endpoints' policy (first in the list). */
  readonly policy: PolicyManager;
  /** Pinned endpoints' ids (ifindex → id), so a restart keeps them. */
  readonly endpointIdSeed: ReadonlyMap<number, number>;
  /** What was adopted from a previous agent, for the start line. */
  readonly adopted: Record<string, number>;
  /** Routes kept, for tortie_agent_routes: local /32s and remote routes wanted. */
  routeCounts(): { local: number; remote: number };
  /** The start line's message and its mode-specific fields, and the stop line's. */
  readonly lines: {
    readonly starting: string;
    readonly startFields: Record<string, unknown>;
    readonly stopped: string;
  };
  /** Releases the dataplane object (what is programmed stays). */
  close(): void;
  /** BIRD's sessions for the heartbeat (undefined: no BGP). */
  readonly bgp: BgpManager | undefined;
  /** The uplink's XDP deny list (BPF mode only): its rule ids name drop events too. */
  readonly xdp?: XdpManager;
}

export type Dataplane =
  | {
      readonly kind: 'bpf';
      readonly dp: NodeDataplane;
      /** The uplink's XDP deny list (bpf/xdp_uplink.o on the same pins); absent: none. */
      readonly xdp?: { readonly port: XdpPort; close(): void };
    }
  | { readonly kind: 'iptables'; readonly ipt: IptablesDataplane };

export function chooseManagers(
  config: AgentConfig,
  dataplane: Dataplane,
  ctx: ManagerContext,
  netns: NodeNetns,
): ManagerSet {
  const bgp =
    config.routing === 'bgp'
      ? new BgpManager(ctx, {
          bird: new Bird({
            node: config.nodeName,
            runDir: config.bgpRunDir,
            netns: config.nodeNetns,
          }),
          netns,
          monitor: (onChange, onProblem) =>
            new RouteMonitor({
              nodeNetns: config.nodeNetns,
              match: 'proto bird',
              onChange,
              onProblem,
            }),
          asNumber: config.asNumber,
          holdTimeSeconds: config.bgpHoldTimeSeconds,
          runDir: config.bgpRunDir,
          secretsDir: config.bgpSecretsDir,
        })
      : undefined;
  const source: RouteSource = bgp ?? storeRoutes;
  const nat = new NatOutgoingManager(ctx, (rules) => syncNat(config.nodeNetns, rules));
  const tail = (shape: ConstructorParameters<typeof KernelRoutesManager>[1]['shape']) => [
    ...(bgp === undefined ? [] : [bgp]),
    new KernelRoutesManager(ctx, { netns, shape, withdrawOnly: bgp !== undefined }),
    nat,
  ];

  if (dataplane.kind === 'iptables') {
    const policy = new IptablesPolicyManager(ctx, dataplane.ipt);
    const encap = new VxlanEncap(
      ctx.log,
      (localIp, dev) => new VxlanDevice(config.nodeNetns, localIp, dev),
    );
    const remote = new RemoteRoutesManager(ctx, source, undefined);
    return {
      managers: [policy, remote, ...tail(encap)],
      policy,
      routeCounts: () => ({ local: 0, remote: remote.wantedCount }),
      lines: {
        starting:
          'agent starting: iptables dataplane, existing chains and sets adopted (nothing is written before the first sync)',
        startFields: { dataplane: 'iptables' },
        stopped: 'agent stopped (iptables chains left in place)',
      },
      close: () => undefined,
      endpointIdSeed: new Map(),
      adopted: policy.adopted(),
      bgp,
    };
  }
  const dp = dataplane.dp;
  const policy = new BpfPolicyManager(ctx, policyMapsPort(dp));
  const pinned = readPinnedRoutes(dp.dp.views.routes.entries());
  const local = new LocalRoutesManager(dp, pinned.local);
  const remote = new RemoteRoutesManager(ctx, source, dp, pinned.remote);
  const xdpObject = dataplane.xdp;
  const xdp =
    xdpObject === undefined ? undefined : new XdpManager(ctx, xdpObject.port, config.nodeName);
  return {
    managers: [
      new HostEndpointsManager(ctx, netns),
      policy,
      local,
      remote,
      new UplinkManager(ctx, dp, netns),
      ...(xdp === undefined ? [] : [xdp]),
      ...tail(plainKernelRoutes),
    ],
    policy,
    routeCounts: () => ({ local: local.size, remote: remote.wantedCount }),
    lines: {
      starting:
        'agent starting: dataplane loaded, pinned state adopted (nothing is written before the first sync)',
      startFields: { pinRoot: config.pinRoot },
      stopped: 'agent stopped (dataplane left running on its pins)',
    },
    close: () => {
      xdpObject?.close();
      dp.close();
    },
    endpointIdSeed: policy.endpointIdSeed(),
    adopted: {
      ...policy.adopted(),
      localRoutes: pinned.local.size,
      remoteRoutes: pinned.remote.size,
      ...(xdp === undefined ? {} : { xdpDenyEntries: xdp.adoptedEntries() }),
    },
    bgp,
    ...(xdp === undefined ? {} : { xdp }),
  };
}
