/**
 * This node's host endpoint (BPF mode): which HostEndpoint judges the uplink — the one
 * naming the uplink's interface, else one whose expectedIPs hold the node's address, else
 * a wildcard one, of this node (src/policy/evaluate-host.ts hostEndpointFor) — and the
 * failsafe ports from the FelixConfiguration (`node.<name>` over `default`, field by
 * field; Calico's defaults when neither sets them). It hands the policy manager, through
 * the pass, the host endpoint as one more local endpoint to compile (failsafe first,
 * then policy), under the uplink's ifindex. It runs before the policy manager.
 *
 * Only the uplink carries tortie's programs: a host endpoint for another interface is
 * stored and not enforced (status says which one judges the uplink). A bad failsafe list
 * keeps Calico's defaults for that direction and is shown in the status: a typo must
 * never cut a node off.
 */
import type { Logger } from 'pino';
import type { ResourceOf } from '../../datastore/index.js';
import { hostEndpointFor } from '../../policy/evaluate-host.js';
import { DEFAULT_FAILSAFE, FailsafeError, parseFailsafePorts } from '../../policy/failsafe.js';
import type { Failsafe, HostEndpoint, NamedPort } from '../../policy/model.js';
import { PROTOCOLS } from '../../policy/model.js';
import type { LocalEndpoint } from '../../policy/compile/index.js';
import type { NodeNetns } from '../links.js';
import type { ClusterModel } from '../model.js';
import type {
  Manager,
  ManagerContext,
  ManagerResult,
  MetricsOut,
  Pass,
  StatusPart,
} from '../manager.js';

/** Host endpoints' ids sit above every pod's (pods count up from 1). */
export const HOST_ENDPOINT_ID_BASE = 0xfffe_0000;

/** A stored HostEndpoint as the policy model's HostEndpoint. */
export function toHostEndpoint(r: ResourceOf<'HostEndpoint'>): HostEndpoint {
  // What the watch stored (validated on write; defaults may be absent).
  const spec: Partial<typeof r.spec> & { node: string } = r.spec;
  const ports: NamedPort[] = (spec.ports ?? []).map((p) => ({
    name: p.name,
    protocol:
      typeof p.protocol === 'number'
        ? p.protocol
        : (PROTOCOLS[p.protocol as keyof typeof PROTOCOLS] ?? 6),
    port: p.port,
  }));
  return {
    name: r.metadata.name,
    node: spec.node,
    ...(spec.interfaceName === undefined ? {} : { interfaceName: spec.interfaceName }),
    expectedIPs: spec.expectedIPs ?? [],
    labels: r.metadata.labels ?? {},
    profiles: spec.profiles ?? [],
    ports,
  };
}

/** The failsafe ports for `node` from the model's FelixConfigurations, and what was wrong. */
export function failsafeFor(
  model: ClusterModel,
  node: string,
): { failsafe: Failsafe; problems: string[] } {
  const layers = [`node.${node}`, 'default']
    .map((name) => model.get('FelixConfiguration', name))
    .filter((r) => r !== undefined)
    .map((r) => (r.spec ?? {}) as Record<string, unknown>);
  const problems: string[] = [];
  const pick = (direction: 'inbound' | 'outbound'): Failsafe['inbound'] => {
    const field =
      direction === 'inbound' ? 'failsafeInboundHostPorts' : 'failsafeOutboundHostPorts';
    const raw = layers.find((spec) => spec[field] !== undefined && spec[field] !== null)?.[field];
    try {
      return parseFailsafePorts(raw, direction);
    } catch (e) {
      if (!(e instanceof FailsafeError)) throw e;
      problems.push(`${e.message} (Calico's defaults kept)`);
      return DEFAULT_FAILSAFE[direction];
    }
  };
  return { failsafe: { inbound: pick('inbound'), outbound: pick('outbound') }, problems };
}

export interface HostEndpointStatus {
  /** The host endpoint judging the uplink, if any. */
  readonly name?: string;
  readonly interfaceName?: string;
  readonly ifindex?: number;
  readonly failsafe: Failsafe;
  readonly problems: readonly string[];
}

export class HostEndpointsManager implements Manager {
  readonly name = 'host-endpoints';
  /**
   * Runs in endpoint-only passes too: bpf-policy compiles the host endpoint this manager
   * puts in the pass, and a pass without it would take the host's protection away on
   * every CNI ADD. It is one address lookup.
   */
  readonly endpointScoped = true;
  private readonly log: Logger;
  private last: HostEndpointStatus = { failsafe: DEFAULT_FAILSAFE, problems: [] };
  private shown = '';

  constructor(
    private readonly ctx: ManagerContext,
    private readonly netns: NodeNetns,
  ) {
    this.log = ctx.log;
  }

  async reconcile(pass: Pass): Promise<ManagerResult> {
    const { model, links, address } = pass.snapshot;
    const { failsafe, problems } = failsafeFor(model, this.ctx.node);
    const heps = model.list('HostEndpoint').map(toHostEndpoint);
    const ip = address?.split('/')[0];
    let found: LocalEndpoint | undefined;
    let status: HostEndpointStatus = { failsafe, problems };
    if (ip !== undefined && heps.some((h) => h.node === this.ctx.node)) {
      const ifindex = await this.netns.findAddressInterface(ip);
      const name = [...links].find(([, i]) => i === ifindex)?.[0];
      if (ifindex === undefined || name === undefined) {
        problems.push(`no interface holds the node address ${ip}: host endpoints not enforced`);
      } else {
        const hep = hostEndpointFor(heps, this.ctx.node, { name, addresses: [ip] });
        if (hep !== undefined) {
          found = {
            endpoint: {
              key: `hostendpoint:${hep.name}`,
              namespace: '',
              name: hep.name,
              ip,
              labels: hep.labels,
              profiles: hep.profiles,
              ports: hep.ports,
              kind: 'host',
            },
            ifindex,
            id: HOST_ENDPOINT_ID_BASE + (ifindex & 0xffff),
            host: { failsafe },
          };
          status = { name: hep.name, interfaceName: name, ifindex, failsafe, problems };
        }
      }
    }
    pass.hostEndpoints = found === undefined ? [] : [found];
    this.last = status;
    const shown = JSON.stringify(status);
    if (shown !== this.shown) {
      this.shown = shown;
      this.log.info(
        { hostEndpoint: status.name ?? null, interface: status.interfaceName, problems },
        status.name === undefined
          ? 'no host endpoint judges the uplink'
          : 'host endpoint judges the uplink',
      );
    }
    return {};
  }

  status(): StatusPart {
    return { hostEndpoint: this.last };
  }

  metrics(_out: MetricsOut): void {}

  stop(): void {}
}
