/**
 * The maps of bpf/tc_policy.o: name (also the pin file under the bpffs root), kind,
 * and the codecs of their keys and values. Names fit the kernel's 15 characters, so
 * `bpftool map show` prints them whole and no two look alike
 * (test/unit/maps-catalog.test.ts).
 */
import type { Codec } from './codec.js';
import {
  ctEntryCodec,
  ctKeyCodec,
  endpointCodec,
  fragKeyCodec,
  fragValCodec,
  ipv4Codec,
  metricsKeyCodec,
  metricsValCodec,
  nodeCodec,
  nodeConfigCodec,
  polAddrKeyCodec,
  polAddrValCodec,
  polIp32KeyCodec,
  polL4KeyCodec,
  polPortKeyCodec,
  polSportKeyCodec,
  routeCodec,
  routeKeyCodec,
  u32Codec,
  u64Codec,
  verdictCodec,
  xdpDenyKeyCodec,
  xdpDenyValCodec,
} from './structs.js';

export interface MapSpec<K, V> {
  /** The map's name in the object and its pin file name. */
  readonly name: string;
  /** libbpf's name of the map type, as MapInfo.typeName reports it. */
  readonly typeName: string;
  readonly key: Codec<K>;
  readonly value: Codec<V>;
  /** Lookups return one value per possible CPU. */
  readonly perCpu: boolean;
}

function spec<K, V>(
  name: string,
  typeName: string,
  key: Codec<K>,
  value: Codec<V>,
  perCpu = false,
): MapSpec<K, V> {
  return { name, typeName, key, value, perCpu };
}

export const MAPS = {
  ifaces: spec('tortie_ifaces', 'hash', u32Codec, endpointCodec),
  routes: spec('tortie_routes', 'lpm_trie', routeKeyCodec, routeCodec),
  // Tunnels: the nodes IPIP is accepted from, and this node's own underlay address and uplink.
  nodes: spec('tortie_nodes', 'hash', ipv4Codec, nodeCodec),
  nodeCfg: spec('tortie_node_cfg', 'array', u32Codec, nodeConfigCodec),
  // Policy: each stage is split by prefix length over an exact hash and an LPM trie
  // (and, for the port stage, a hash of class defaults); see policy-keys.ts.
  polIp32: spec('tortie_pol_ip32', 'hash', polIp32KeyCodec, polAddrValCodec),
  polAddr: spec('tortie_pol_addr', 'lpm_trie', polAddrKeyCodec, polAddrValCodec),
  polPort: spec('tortie_pol_port', 'hash', polPortKeyCodec, verdictCodec),
  polL4: spec('tortie_pol_l4', 'lpm_trie', polL4KeyCodec, verdictCodec),
  polDflt: spec('tortie_pol_dflt', 'hash', u32Codec, verdictCodec),
  // Source-port stage: one trie, reached only through a stage-2 BY_SPORT verdict.
  polSport: spec('tortie_pol_sprt', 'lpm_trie', polSportKeyCodec, verdictCodec),
  ct: spec('tortie_ct', 'lru_hash', ctKeyCodec, ctEntryCodec),
  // Conntrack entries created, per endpoint id (never decremented: see tortie_maps.h).
  ctNew: spec('tortie_ct_new', 'percpu_hash', u32Codec, u64Codec, true),
  // New-flow budgets of sending pods, when on: endpoint id -> GCRA arrival time (ns).
  ctBudget: spec('tortie_ct_rate', 'lru_hash', u32Codec, u64Codec),
  frags: spec('tortie_frags', 'lru_hash', fragKeyCodec, fragValCodec),
  metrics: spec('tortie_metrics', 'percpu_hash', metricsKeyCodec, metricsValCodec, true),
  evLost: spec('tortie_ev_lost', 'percpu_array', u32Codec, u64Codec, true),
} as const;

/**
 * The maps only bpf/xdp_uplink.o has (its counters and events are tortie_metrics and
 * tortie_events above, shared through their pins). Pinned under the same root.
 */
export const XDP_MAPS = {
  // The uplink's deny list: source prefix -> Deny rule id (src/policy/xdp.ts).
  xdpDeny: spec('tortie_xdp_deny', 'lpm_trie', xdpDenyKeyCodec, xdpDenyValCodec),
  // When each CPU may next report an XDP drop (ktime ns): the events' sampling.
  xdpEvRate: spec('tortie_xdp_evrl', 'percpu_array', u32Codec, u64Codec, true),
} as const;

export type XdpMapRole = keyof typeof XDP_MAPS;

/** The ring buffer of struct tortie_event records (structs.ts: eventCodec). */
export const EVENTS_MAP_NAME = 'tortie_events';

export type MapRole = keyof typeof MAPS;

/** Every map name the loader pins, ring buffer included. */
export const PINNED_MAP_NAMES: readonly string[] = [
  ...Object.values(MAPS).map((m) => m.name),
  EVENTS_MAP_NAME,
];

/** The maps the XDP object pins besides the shared ones (tortie_metrics, tortie_events, ...). */
export const XDP_PINNED_MAP_NAMES: readonly string[] = Object.values(XDP_MAPS).map((m) => m.name);
