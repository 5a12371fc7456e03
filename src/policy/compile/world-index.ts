/**
 * The parts of a world that selectors and named ports resolve against — endpoints,
 * namespaces, network sets — indexed once, with the resolved address sets memoised.
 *
 * An index is only valid for the entities it was built from; `entityKey(world)` names
 * them, so the compiler keeps an index (and everything resolved through it) for as long
 * as that key is unchanged, typically across many policy edits.
 */
import {
  NAMESPACE_LABEL,
  type EntityMatch,
  type Endpoint,
  type Labels,
  type NamedPort,
  type World,
} from '../model.js';
import { parseSelector } from '../selector.js';
import { ALL_ADDRESSES, cidrsToSet, parseAddress } from './addresses.js';
import { contains, intersect, normalize, subtract, type IntervalSet } from './intervals.js';
import { present } from './l4.js';

/**
 * Whose rules are resolved: a namespaced policy's rules see its namespace; a global
 * policy's or a profile's (`undefined`) see every endpoint and global network set.
 */
export type RuleOwner = string | undefined;

interface Entity {
  readonly kind: 'endpoint' | 'network-set';
  readonly namespace: string | undefined;
  readonly labels: Labels;
  readonly addresses: IntervalSet;
}

/** A peer endpoint that has named ports: its address and ports. */
export interface PortHolder {
  readonly ip: number;
  readonly ports: readonly NamedPort[];
}

/** Names the entity content of a world: equal keys, interchangeable indexes. */
export function entityKey(world: World): string {
  return JSON.stringify([
    world.endpoints.map((e) => [e.namespace, e.ip, e.labels, e.ports]),
    world.namespaces.map((n) => [n.name, n.labels]),
    world.networkSets.map((s) => [s.namespace ?? null, s.labels, s.nets]),
  ]);
}

export function endpointLabels(endpoint: Endpoint): Labels {
  if (endpoint.kind === 'host') return endpoint.labels;
  return { ...endpoint.labels, [NAMESPACE_LABEL]: endpoint.namespace };
}

export class WorldIndex {
  private readonly entities: readonly Entity[];
  private readonly nsLabels = new Map<string, Labels>();
  /** The first endpoint with each address: the one a peer address names. */
  private readonly endpointAt = new Map<number, Endpoint>();
  private readonly selected = new Map<string, IntervalSet>();
  private readonly holders = new Map<string, readonly PortHolder[]>();

  constructor(
    world: World,
    readonly key: string = entityKey(world),
  ) {
    for (const ns of world.namespaces)
      if (!this.nsLabels.has(ns.name)) this.nsLabels.set(ns.name, ns.labels);
    const entities: Entity[] = [];
    for (const e of world.endpoints) {
      const ip = parseAddress(e.ip);
      if (!this.endpointAt.has(ip)) this.endpointAt.set(ip, e);
      entities.push({
        kind: 'endpoint',
        namespace: e.namespace,
        labels: endpointLabels(e),
        addresses: [[ip, ip]],
      });
    }
    for (const s of world.networkSets) {
      const labels =
        s.namespace === undefined ? s.labels : { ...s.labels, [NAMESPACE_LABEL]: s.namespace };
      entities.push({
        kind: 'network-set',
        namespace: s.namespace,
        labels,
        addresses: cidrsToSet(s.nets),
      });
    }
    this.entities = entities;
  }

  /** A namespace that is not in the world has no labels. */
  namespaceLabels(namespace: string): Labels {
    return this.nsLabels.get(namespace) ?? {};
  }

  /** The peer addresses the address fields of a rule's peer side admit. */
  peerAddresses(side: EntityMatch, owner: RuleOwner): IntervalSet {
    let set = ALL_ADDRESSES;
    if (present(side.nets)) set = intersect(set, cidrsToSet(side.nets));
    if (present(side.notNets)) set = subtract(set, cidrsToSet(side.notNets));
    const selector = side.selector ?? (side.namespaceSelector !== undefined ? 'all()' : undefined);
    if (selector !== undefined)
      set = intersect(set, this.selectedAddresses(selector, owner, side.namespaceSelector));
    if (side.notSelector !== undefined) {
      set = subtract(set, this.selectedAddresses(side.notSelector, owner, side.namespaceSelector));
    }
    return set;
  }

  /** Whether E itself satisfies the address fields of a rule's local side. */
  localSideMatches(side: EntityMatch, endpoint: Endpoint): boolean {
    const ip = parseAddress(endpoint.ip);
    if (present(side.nets) && !contains(cidrsToSet(side.nets), ip)) return false;
    if (present(side.notNets) && contains(cidrsToSet(side.notNets), ip)) return false;
    const labels = endpointLabels(endpoint);
    if (side.selector !== undefined && !parseSelector(side.selector).matches(labels)) return false;
    if (side.notSelector !== undefined && parseSelector(side.notSelector).matches(labels))
      return false;
    if (
      side.namespaceSelector !== undefined &&
      (endpoint.kind === 'host' ||
        !parseSelector(side.namespaceSelector).matches(this.namespaceLabels(endpoint.namespace)))
    ) {
      return false;
    }
    return true;
  }

  /** Peer endpoints (by address) with a named port of one of `names`. */
  portHolders(names: readonly string[]): readonly PortHolder[] {
    const key = JSON.stringify([...names].sort());
    let found = this.holders.get(key);
    if (found === undefined) {
      const list: PortHolder[] = [];
      for (const [ip, e] of this.endpointAt) {
        if (e.ports.some((np) => names.includes(np.name))) list.push({ ip, ports: e.ports });
      }
      found = list.sort((a, b) => a.ip - b.ip);
      this.holders.set(key, found);
    }
    return found;
  }

  /** Addresses of the in-scope endpoints and network sets that `selector` matches. */
  private selectedAddresses(
    selector: string,
    owner: RuleOwner,
    namespaceSelector: string | undefined,
  ): IntervalSet {
    const parsed = parseSelector(selector);
    const nsParsed = namespaceSelector === undefined ? undefined : parseSelector(namespaceSelector);
    const key = JSON.stringify([parsed.canonical, owner ?? null, nsParsed?.canonical ?? null]);
    let set = this.selected.get(key);
    if (set === undefined) {
      const parts: IntervalSet[] = [];
      for (const entity of this.entities) {
        if (this.inScope(entity, owner, nsParsed) && parsed.matches(entity.labels))
          parts.push(entity.addresses);
      }
      set = parts.length === 1 ? parts[0]! : normalize(parts.flat());
      this.selected.set(key, set);
    }
    return set;
  }

  /**
   * A namespaced policy's rule sees its own namespace; a global policy's or profile's rule
   * sees every endpoint and global set; a namespaceSelector replaces either with the
   * endpoints and namespaced sets of the namespaces it matches.
   */
  private inScope(
    entity: Entity,
    owner: RuleOwner,
    namespaceSelector: { matches(l: Labels): boolean } | undefined,
  ): boolean {
    if (namespaceSelector !== undefined) {
      return (
        entity.namespace !== undefined &&
        namespaceSelector.matches(this.namespaceLabels(entity.namespace))
      );
    }
    if (owner !== undefined) return entity.namespace === owner;
    return entity.kind === 'endpoint' || entity.namespace === undefined;
  }
}
