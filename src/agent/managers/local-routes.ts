/**
 * Local routes (BPF mode): a /32 per programmed local endpoint into its veth, in the
 * routes map. Starts from what a previous agent left pinned, so a restart rewrites
 * nothing that is right.
 */
import type { ManagerResult, Manager, MetricsOut, Pass, StatusPart } from '../manager.js';

/** The routes map's local entries (NodeDataplane). */
export interface LocalRoutePort {
  setLocalRoute(ip: string, ifindex: number): void;
  deleteLocalRoute(ip: string): unknown;
}

export class LocalRoutesManager implements Manager {
  readonly name = 'local-routes';
  readonly endpointScoped = true;
  /** Local /32 → ifindex, as in the routes map. */
  private routes: Map<string, number>;

  constructor(
    private readonly port: LocalRoutePort,
    pinned: ReadonlyMap<string, number> = new Map(),
  ) {
    this.routes = new Map(pinned);
  }

  get size(): number {
    return this.routes.size;
  }

  reconcile(pass: Pass): ManagerResult {
    let writes = 0;
    let deletes = 0;
    const want = new Map(pass.programmed.map((l) => [l.endpoint.ip, l.ifindex]));
    for (const [ip, ifindex] of want) {
      if (this.routes.get(ip) !== ifindex) {
        this.port.setLocalRoute(ip, ifindex);
        writes++;
      }
    }
    for (const ip of this.routes.keys()) {
      if (!want.has(ip)) {
        this.port.deleteLocalRoute(ip);
        deletes++;
      }
    }
    this.routes = want;
    return { writes, deletes };
  }

  status(): StatusPart {
    return {};
  }

  metrics(_out: MetricsOut): void {
    // Counted in tortie_agent_routes{type="local"} (the agent's family: routeCounts).
  }

  stop(): void {}
}
