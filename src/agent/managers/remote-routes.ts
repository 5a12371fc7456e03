/**
 * Remote routes: which blocks of other nodes this node routes where (../routes.ts), and —
 * in BPF mode — the routes map's REMOTE_BLOCK entries and the known nodes (the only IPIP
 * sources accepted on the uplink). Where the routes come from is the RouteSource chosen
 * at start: the store (static routing) or what BIRD installed (`routing: bgp`).
 *
 * A failure is kept here (status, counted as a route error, retried): routing problems
 * do not hold back local policy nor the endpoints' status.
 */
import type { Logger } from 'pino';
import type {
  ManagerContext,
  ManagerResult,
  Manager,
  MetricsOut,
  Pass,
  StatusPart,
} from '../manager.js';
import {
  desiredRoutes,
  diffRoutes,
  knownNodeAddresses,
  type DesiredRoute,
  type RouteInputs,
} from '../routes.js';

/** The routes map's remote entries and the known nodes (NodeDataplane). */
export interface RemoteRoutePort {
  setRemoteRoute(cidr: string, nextHop: string, opts: { ipip: boolean }): void;
  deleteRoute(cidr: string): unknown;
  setKnownNodes(ips: readonly string[]): unknown;
}

/** Where the remote routes come from. */
export interface RouteSource {
  wanted(inputs: RouteInputs): Promise<DesiredRoute[]> | DesiredRoute[];
}

/** Static routing: every block of another node, from the store. */
export const storeRoutes: RouteSource = { wanted: (inputs) => desiredRoutes(inputs) };

export class RemoteRoutesManager implements Manager {
  readonly name = 'remote-routes';
  private readonly log: Logger;
  /** Remote routes as in the routes map. */
  private readonly programmed: Map<string, DesiredRoute>;
  private wanted: DesiredRoute[] = [];
  private knownNodes: string[] = [];
  private knownNodesSet: string | undefined;
  private error: string | undefined;

  /** `map` undefined (iptables mode): computed for the kernel routes, not written here. */
  constructor(
    private readonly ctx: ManagerContext,
    private readonly source: RouteSource,
    private readonly map: RemoteRoutePort | undefined,
    pinned: ReadonlyMap<string, DesiredRoute> = new Map(),
  ) {
    this.log = ctx.log;
    this.programmed = new Map(pinned);
  }

  /** Remote routes wanted by the last pass. */
  get wantedCount(): number {
    return this.wanted.length;
  }

  async reconcile(pass: Pass): Promise<ManagerResult> {
    const inputs = pass.snapshot.routes;
    this.wanted = await this.source.wanted(inputs);
    pass.wanted = this.wanted;
    this.knownNodes = knownNodeAddresses(inputs);
    if (this.map === undefined) return {};
    try {
      const r = this.program(this.map);
      this.error = undefined;
      return r;
    } catch (e) {
      this.error = (e as Error).message;
      this.ctx.tally.routeErrors++;
      this.log.error({ err: this.error }, 'programming remote routes failed (retried)');
      return { retryMs: 2000 };
    }
  }

  private program(map: RemoteRoutePort): ManagerResult {
    const diff = diffRoutes(this.programmed, this.wanted);
    // New and changed routes first, then withdrawals: a moved block is never unrouted.
    for (const r of diff.set) {
      map.setRemoteRoute(r.cidr, r.nextHop, { ipip: r.ipip });
      this.programmed.set(r.cidr, r);
    }
    for (const cidr of diff.remove) {
      map.deleteRoute(cidr);
      this.programmed.delete(cidr);
    }
    const known = this.knownNodes.join(',');
    if (known !== this.knownNodesSet) {
      map.setKnownNodes(this.knownNodes);
      this.knownNodesSet = known;
    }
    if (diff.set.length + diff.remove.length > 0) {
      this.log.info(
        {
          set: diff.set.map((r) => `${r.cidr} via ${r.nextHop}${r.ipip ? ' (ipip)' : ''}`),
          withdrawn: diff.remove,
        },
        'remote routes',
      );
    }
    return { writes: diff.set.length, deletes: diff.remove.length };
  }

  status(): StatusPart {
    return {
      routes: this.wanted,
      remoteRoutesProgrammed: this.map !== undefined,
      knownNodes: this.knownNodes,
      ...(this.error === undefined ? {} : { remoteRouteError: this.error }),
    };
  }

  metrics(_out: MetricsOut): void {
    // Counted in tortie_agent_routes{type="remote"} (the agent's family: routeCounts).
  }

  stop(): void {}
}
