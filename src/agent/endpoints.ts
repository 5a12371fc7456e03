/**
 * This node's endpoints: the WorkloadEndpoints whose spec.node is this node, matched to
 * their host veth (spec.interfaceName looked up in the node's namespace), each with an
 * endpoint id that stays the same for the endpoint's life — across agent restarts too,
 * because ids are adopted from the pinned tortie_ifaces map.
 */
import type { Endpoint } from '../policy/model.js';
import type { LocalEndpoint } from '../policy/compile/index.js';
import type { WorkloadEndpoint } from './model.js';

export interface LocalEndpointInfo extends LocalEndpoint {
  readonly wep: WorkloadEndpoint;
  readonly interfaceName: string;
}

export interface UnresolvedEndpoint {
  readonly key: string;
  readonly interfaceName: string;
  readonly reason: string;
}

/**
 * Endpoint ids: u32, never 0. An endpoint keeps its id while it lives; a new endpoint
 * takes the id the pinned map had for its interface (an agent restart), else the next
 * id above every id seen, so counters of a gone endpoint are never credited to a new one.
 */
export class EndpointIds {
  private readonly byKey = new Map<string, number>();
  private readonly pinnedByIfindex: Map<number, number>;
  private next: number;

  constructor(pinned: ReadonlyMap<number, number> = new Map()) {
    this.pinnedByIfindex = new Map(pinned);
    this.next = Math.max(0, ...pinned.values()) + 1;
  }

  idFor(key: string, ifindex: number): number {
    let id = this.byKey.get(key);
    if (id !== undefined) return id;
    const pinned = this.pinnedByIfindex.get(ifindex);
    if (pinned !== undefined) {
      this.pinnedByIfindex.delete(ifindex);
      id = pinned;
    } else {
      if (this.next > 0xffffffff) this.next = 1;
      id = this.next++;
    }
    this.byKey.set(key, id);
    return id;
  }

  /** Forgets endpoints not in `live` (their ids are not handed out again). */
  retain(live: ReadonlySet<string>): void {
    for (const key of this.byKey.keys()) if (!live.has(key)) this.byKey.delete(key);
  }
}

/**
 * Local endpoints for the compiler: every endpoint of this node whose interface exists.
 * Those whose interface is missing (not created yet, or gone) are returned apart: they
 * get no entry, so their veth — if it ever appears with programs attached — drops
 * everything (fail closed) until a later reconcile finds it.
 */
export function resolveLocalEndpoints(
  node: string,
  endpoints: Iterable<{ endpoint: Endpoint; wep: WorkloadEndpoint }>,
  links: ReadonlyMap<string, number>,
  ids: EndpointIds,
): { locals: LocalEndpointInfo[]; unresolved: UnresolvedEndpoint[] } {
  const locals: LocalEndpointInfo[] = [];
  const unresolved: UnresolvedEndpoint[] = [];
  const usedIfindex = new Map<number, string>();
  for (const { endpoint, wep } of endpoints) {
    if (wep.spec.node !== node) continue;
    const interfaceName = wep.spec.interfaceName;
    const ifindex = links.get(interfaceName);
    if (ifindex === undefined) {
      unresolved.push({
        key: endpoint.key,
        interfaceName,
        reason: `no interface ${interfaceName}`,
      });
      continue;
    }
    const other = usedIfindex.get(ifindex);
    if (other !== undefined) {
      unresolved.push({
        key: endpoint.key,
        interfaceName,
        reason: `interface ${interfaceName} is also ${other}'s`,
      });
      continue;
    }
    usedIfindex.set(ifindex, endpoint.key);
    locals.push({ endpoint, ifindex, id: ids.idFor(endpoint.key, ifindex), wep, interfaceName });
  }
  return { locals, unresolved };
}
