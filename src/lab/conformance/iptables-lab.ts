/**
 * The conformance lab on one node with the iptables dataplane: a NodeLab (pods behind
 * veths in a node namespace, echo servers and a prober in each), no BPF at all. Pods
 * reach each other through the node namespace's kernel routing (the /32 routes to the
 * veths, the proxy-ARP gateway), so iptables' FORWARD sees every pod-to-pod packet.
 *
 * Changes are recorded as the store would hold them and written by `waitForDataplane`
 * (ipset restore + iptables-restore --noflush of the changed chains); they are in force
 * once those commands returned.
 */
import type { World } from '../../policy/model.js';
import {
  IptablesDataplane,
  type ApplyReport,
  type IptablesBackend,
  type IptablesEndpoint,
} from '../../iptables/index.js';
import { destroyNodeLab, labNames, NodeLab } from '../node-lab.js';
import { OneNodeModelLab, type OneNodePod } from './one-node-base.js';
import { runCaseFiles, type RunOptions, type RunResult } from './run.js';
import type { CaseFile } from './schema.js';

export interface IptablesLabOptions {
  /** Lab id: 1-12 lower-case letters or digits; names every namespace. */
  id: string;
  /** Pod addresses come from here, from the 10th address on (default 10.66.0.0/24). */
  pool?: string;
  /** iptables-nft (default) or iptables-legacy. */
  backend?: IptablesBackend;
}

export class IptablesConformanceLab extends OneNodeModelLab {
  readonly description: string;
  /** What each `waitForDataplane` wrote, in order (tests look at it). */
  readonly applied: ApplyReport[] = [];

  private constructor(
    node: NodeLab,
    readonly dataplane: IptablesDataplane,
    backend: IptablesBackend,
    pool: string,
  ) {
    super(node, pool);
    this.description = `one node, iptables dataplane (iptables-${backend})`;
  }

  static async create(opts: IptablesLabOptions): Promise<IptablesConformanceLab> {
    labNames(opts.id); // refuses a bad id before anything is made
    const backend = opts.backend ?? 'nft';
    const node = await NodeLab.create(opts.id, []);
    try {
      const dp = await IptablesDataplane.open({ netns: node.nodeNetns, backend });
      return new IptablesConformanceLab(node, dp, backend, opts.pool ?? '10.66.0.0/24');
    } catch (e) {
      await node.destroy();
      throw e;
    }
  }

  // A new pod's veth is in no dispatch chain until the next write: it is dropped as an
  // unknown interface as soon as tortie's chains exist (as Felix does).
  protected async program(world: World, pods: readonly OneNodePod[]): Promise<void> {
    const locals: IptablesEndpoint[] = pods.map((p) => ({
      endpoint: this.endpoint(p),
      iface: p.lab.network.hostIfName,
    }));
    this.applied.push(await this.dataplane.program(world, locals));
  }

  async close(): Promise<void> {
    // The chains and sets live in the node namespace and go with it.
    await this.node.destroy();
  }
}

/** Removes a one-node iptables lab left behind by a crash (its namespaces, and with them its chains and sets). */
export async function destroyIptablesLab(id: string): Promise<void> {
  await destroyNodeLab(id);
}

/**
 * `tortie lab conformance --dataplane iptables`: runs case files on fresh one-node
 * iptables labs (a second model gets a second lab, under `<id>1`, after the first is gone).
 */
export async function runIptablesConformance(
  files: readonly CaseFile[],
  opts: RunOptions & { id: string; backend?: IptablesBackend },
): Promise<RunResult> {
  let n = 0;
  const { id, backend, ...run } = opts;
  return runCaseFiles(
    files,
    () => {
      const k = n++;
      return IptablesConformanceLab.create({
        id: k === 0 ? id : `${id.slice(0, 10)}${k}`,
        ...(backend === undefined ? {} : { backend }),
      });
    },
    run,
  );
}
