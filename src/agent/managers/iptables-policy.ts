/**
 * iptables policy (`dataplane: iptables`): renders the world for the resolved local
 * endpoints and writes what changed (IptablesDataplane: ipset restore, iptables-restore
 * --noflush). Only once it returned do the endpoints count as programmed (their status
 * follows); a veth in no dispatch chain is dropped, so a new one is fail-closed until then.
 * An endpoint's policyRev is the write generation at which its own chains last changed.
 */
import type { Logger } from 'pino';
import {
  endpointChainName,
  type ApplyReport,
  type IptablesEndpoint,
  type KernelState,
  type RenderOptions,
} from '../../iptables/index.js';
import type { World } from '../../policy/model.js';
import type { LocalEndpointInfo } from '../endpoints.js';
import type {
  ManagerContext,
  ManagerResult,
  MetricsOut,
  Pass,
  PolicyManager,
  StatusPart,
} from '../manager.js';
import { Histogram, RECONCILE_BUCKETS } from '../metrics.js';
import { knownNodeAddresses, vxlanInnerSources } from '../routes.js';

/** What this manager needs of IptablesDataplane. */
export interface IptablesPort {
  program(
    world: World,
    locals: readonly IptablesEndpoint[],
    extra: Partial<RenderOptions>,
  ): Promise<ApplyReport>;
  current(): KernelState;
}

export class IptablesPolicyManager implements PolicyManager {
  readonly name = 'iptables-policy';
  readonly endpointScoped = true;
  private readonly log: Logger;
  /** ifindex → policyRev programmed. */
  private revs = new Map<number, number>();
  private generation = 0;
  private errors = 0;
  private chains = 0;
  private sets = 0;
  private readonly histogram = new Histogram(RECONCILE_BUCKETS);
  private readonly adoptedFigures: Record<string, number>;

  constructor(
    ctx: ManagerContext,
    private readonly ipt: IptablesPort,
  ) {
    this.log = ctx.log;
    const held = ipt.current();
    this.adoptedFigures = { chains: held.chains.size, sets: held.sets.size };
  }

  adopted(): Record<string, number> {
    return this.adoptedFigures;
  }

  async reconcile(pass: Pass): Promise<ManagerResult> {
    const { locals, routes, world } = pass.snapshot;
    const eps: IptablesEndpoint[] = locals.map((l) => ({
      endpoint: l.endpoint,
      iface: l.interfaceName,
    }));
    const t0 = performance.now();
    let report;
    try {
      // VXLAN is accepted from the other nodes only (tortie-INPUT, docs/iptables.md).
      // VXLAN's inner source must be routed to the sending node (tortie-vxlan-in).
      report = await this.ipt.program(world, eps, {
        vxlanSources: knownNodeAddresses(routes),
        vxlanInnerSources: vxlanInnerSources(routes),
      });
    } catch (e) {
      this.errors++;
      throw e;
    }
    this.histogram.observe((performance.now() - t0) / 1000);
    const held = this.ipt.current();
    this.chains = held.chains.size;
    this.sets = held.sets.size;
    const written = new Set(report.writtenChains);
    const changed = written.size + report.writtenSets.length + report.deletedChains.length > 0;
    if (changed) this.generation++;
    const revs = new Map<number, number>();
    for (const l of locals) {
      const own =
        written.has(endpointChainName(l.interfaceName, 'ingress')) ||
        written.has(endpointChainName(l.interfaceName, 'egress'));
      const before = this.revs.get(l.ifindex);
      revs.set(l.ifindex, own || before === undefined ? Math.max(1, this.generation) : before);
    }
    this.revs = revs;
    if (changed) {
      this.log.info(
        {
          ms: Math.round(report.ms * 10) / 10,
          writtenChains: report.writtenChains.length,
          deletedChains: report.deletedChains.length,
          writtenSets: report.writtenSets.length,
          deletedSets: report.deletedSets.length,
          chains: this.chains,
          sets: this.sets,
        },
        'iptables programmed',
      );
    }
    pass.programmed = [...locals];
    return { writes: written.size + report.writtenSets.length };
  }

  endpointRev(l: LocalEndpointInfo): number | undefined {
    return this.revs.get(l.ifindex);
  }

  /** iptables rules carry no rule ids: the rule table is empty. */
  rules(): ReadonlyMap<number, string> {
    return new Map();
  }

  status(): StatusPart {
    return {};
  }

  metrics(out: MetricsOut): void {
    // No BPF programs judge packets here: the families are there, without samples.
    out.families.push(
      {
        name: 'tortie_dataplane_packets_total',
        help: 'Packets judged by the BPF programs, by reason (PASS_* allowed, DROP_* dropped) and direction.',
        type: 'counter',
        samples: [],
      },
      {
        name: 'tortie_dataplane_bytes_total',
        help: 'Bytes judged by the BPF programs, by reason and direction.',
        type: 'counter',
        samples: [],
      },
      {
        name: 'tortie_iptables_chains',
        help: 'tortie chains in the filter table of the node namespace.',
        type: 'gauge',
        samples: [{ value: this.chains }],
      },
      {
        name: 'tortie_iptables_ipsets',
        help: 'tortie ipsets in the node namespace.',
        type: 'gauge',
        samples: [{ value: this.sets }],
      },
      {
        name: 'tortie_iptables_errors_total',
        help: 'Failed ipset/iptables-restore writes (the next reconcile re-reads the kernel).',
        type: 'counter',
        samples: [{ value: this.errors }],
      },
    );
    out.histograms.push({
      name: 'tortie_iptables_program_duration_seconds',
      help: 'Time to write a policy change with ipset restore and iptables-restore --noflush.',
      histogram: this.histogram,
    });
  }

  stop(): void {}
}
