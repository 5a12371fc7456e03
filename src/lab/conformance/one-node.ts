/**
 * The conformance lab on one node: a NodeLab (pods behind veths in a node namespace,
 * echo servers and a prober in each) with the BPF dataplane attached to every pod veth.
 *
 * Changes are recorded as the store would hold them and compiled into the maps by
 * `waitForDataplane`; NodeDataplane.program returns once the maps are written, so the
 * dataplane has a change as soon as that call returns.
 */
import { NodeDataplane } from '../../dataplane/node-dataplane.js';
import { removePins } from '../../loader/index.js';
import type { LocalEndpoint } from '../../policy/compile/index.js';
import type { World } from '../../policy/model.js';
import { destroyNodeLab, labNames, NodeLab, type LabPod } from '../node-lab.js';
import { OneNodeModelLab, type OneNodePod } from './one-node-base.js';

export interface OneNodeLabOptions {
  /** Lab id: 1-12 lower-case letters or digits; names every namespace and the bpffs root. */
  id: string;
  /** bpffs directory for the dataplane's pins (default /sys/fs/bpf/tortie-<id>). */
  pinRoot?: string;
  /** Pod addresses come from here, from the 10th address on (default 10.66.0.0/24). */
  pool?: string;
}

export class OneNodeConformanceLab extends OneNodeModelLab {
  readonly description = 'one node, BPF dataplane';

  private constructor(
    node: NodeLab,
    readonly dataplane: NodeDataplane,
    readonly pinRoot: string,
    pool: string,
  ) {
    super(node, pool);
  }

  static async create(opts: OneNodeLabOptions): Promise<OneNodeConformanceLab> {
    labNames(opts.id); // refuses a bad id before anything is made
    const pinRoot = opts.pinRoot ?? `/sys/fs/bpf/tortie-${opts.id}`;
    const node = await NodeLab.create(opts.id, []);
    try {
      const dp = NodeDataplane.open({ pinRoot, nodeNetns: node.nodeNetns });
      try {
        return new OneNodeConformanceLab(node, dp, pinRoot, opts.pool ?? '10.66.0.0/24');
      } catch (e) {
        dp.destroy();
        throw e;
      }
    } catch (e) {
      await node.destroy();
      removePins(pinRoot);
      throw e;
    }
  }

  protected override podAdded(pod: LabPod): void {
    const ifindex = pod.network.hostIfindex;
    this.dataplane.attach(ifindex);
    this.dataplane.setLocalRoute(pod.ip, ifindex);
  }

  protected program(world: World, pods: readonly OneNodePod[]): void {
    const locals: LocalEndpoint[] = pods.map((p) => ({
      endpoint: this.endpoint(p),
      ifindex: p.lab.network.hostIfindex,
      id: p.id,
    }));
    this.dataplane.program(world, locals);
  }

  async close(): Promise<void> {
    try {
      this.dataplane.destroy();
    } finally {
      await this.node.destroy();
    }
  }
}

/** Removes a one-node conformance lab left behind by a crash: its namespaces and pins. */
export async function destroyOneNodeLab(
  id: string,
  pinRoot = `/sys/fs/bpf/tortie-${id}`,
): Promise<void> {
  await destroyNodeLab(id);
  removePins(pinRoot);
}
