/**
 * Conntrack pressure as the agent reports it: how full tortie_ct is, and which endpoints
 * create its entries (docs/dataplane.md, "Conntrack capacity and fairness"). Pure: the
 * agent hands in what NodeDataplane.conntrack() read and the endpoint names it knows.
 */
import type { ConntrackPressure } from '../dataplane/node-dataplane.js';
import type { MetricFamily } from './metrics.js';

/** What /status and the heartbeat carry (numbers, so JSON can hold them). */
export interface ConntrackSummary {
  readonly entries: number;
  readonly capacity: number;
  readonly created: number;
  readonly removed: number;
  /** The endpoints that created the most entries, most first (at most `top`). */
  readonly topCreators: readonly { readonly endpoint: string; readonly created: number }[];
}

/** `ns/name` for a known endpoint id, `id <n>` for one this agent no longer has, `none` for 0. */
export function endpointLabel(epId: number, names: ReadonlyMap<number, string>): string {
  if (epId === 0) return 'none';
  return names.get(epId) ?? `id ${epId}`;
}

export function conntrackSummary(
  p: ConntrackPressure,
  names: ReadonlyMap<number, string>,
  top = 5,
): ConntrackSummary {
  return {
    entries: p.entries,
    capacity: p.capacity,
    created: Number(p.created),
    removed: Number(p.removed),
    topCreators: [...p.byEndpoint]
      .sort((a, b) => (a.created === b.created ? a.epId - b.epId : a.created > b.created ? -1 : 1))
      .slice(0, top)
      .map((e) => ({ endpoint: endpointLabel(e.epId, names), created: Number(e.created) })),
  };
}

export function conntrackFamilies(
  p: ConntrackPressure,
  names: ReadonlyMap<number, string>,
): MetricFamily[] {
  return [
    {
      name: 'tortie_conntrack_entries',
      help: 'Tracked flows in tortie_ct (live, or expired and not yet reused).',
      type: 'gauge',
      samples: [{ value: p.entries }],
    },
    {
      name: 'tortie_conntrack_capacity',
      help: 'max_entries of tortie_ct. At capacity the LRU evicts the least recently used flows of any endpoint.',
      type: 'gauge',
      samples: [{ value: p.capacity }],
    },
    {
      name: 'tortie_conntrack_created_total',
      help: 'Conntrack entries created, by the endpoint that caused them (the local sender, else the local receiver; endpoint_id 0: none known).',
      type: 'counter',
      samples: p.byEndpoint.map((e) => ({
        labels: { endpoint: endpointLabel(e.epId, names), endpoint_id: String(e.epId) },
        value: e.created,
      })),
    },
    {
      name: 'tortie_conntrack_removed',
      help: 'Created minus present: entries evicted by the LRU, revoked, replaced after expiry or deleted. Its rate at a full map is the eviction rate.',
      type: 'gauge',
      samples: [{ value: p.removed }],
    },
    {
      name: 'tortie_conntrack_count_seconds',
      help: 'Time the last count of tortie_ct took (batch lookup over the whole map).',
      type: 'gauge',
      samples: [{ value: p.countMs / 1000 }],
    },
  ];
}
