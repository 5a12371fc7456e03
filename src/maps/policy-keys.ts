/**
 * The arithmetic of the two policy stages' keys (bpf/tortie_maps.h): which prefixlen
 * covers what, how (proto, port) packs into the l4 tail, and which map of its stage an
 * entry of a given prefix length is stored in.
 */
import type { PolAddrKey, PolIp32Key, PolL4Key, PolPortKey, PolSportKey } from './structs.js';

/** tortie_pol_addr_key.prefixlen = POL_ADDR_PREFIX_BASE + address bits (set_id always matched). */
export const POL_ADDR_PREFIX_BASE = 32;
/** tortie_pol_l4_key.prefixlen = POL_L4_PREFIX_BASE + bits over (proto, port) (class_id and the zero byte always matched). */
export const POL_L4_PREFIX_BASE = 40;

/** tortie_pol_sport_key.prefixlen = POL_SPORT_PREFIX_BASE + bits over the source port (class_id and 16 zero bits always matched). */
export const POL_SPORT_PREFIX_BASE = 48;

/** The policy "port" of an ICMP packet: (type << 8) | code. */
export function icmpPort(type: number, code: number): number {
  return ((type & 0xff) << 8) | (code & 0xff);
}

/** The l4 value (proto << 16) | port that stage 2 matches. */
export function l4Value(proto: number, port: number): number {
  if (!Number.isInteger(proto) || proto < 0 || proto > 255)
    throw new Error(`protocol ${proto} is not 0..255`);
  if (!Number.isInteger(port) || port < 0 || port > 0xffff)
    throw new Error(`port ${port} is not 0..65535`);
  return proto * 0x10000 + port;
}

function maskHigh(value: number, bits: number, width: number): number {
  if (bits === 0) return 0;
  const shift = width - bits;
  return Number((BigInt(value) >> BigInt(shift)) << BigInt(shift));
}

/** Stage-1 key for `addr/bits` (bits 0..32) of set `setId`; host bits are cleared. */
export function polAddrKey(setId: number, addr: number, bits: number): PolAddrKey {
  if (!Number.isInteger(bits) || bits < 0 || bits > 32)
    throw new Error(`address prefix length ${bits} is not 0..32`);
  return { prefixlen: POL_ADDR_PREFIX_BASE + bits, set_id: setId, addr: maskHigh(addr, bits, 32) };
}

/** Stage-2 key for the first `bits` (0..24) of the 24-bit `l4` value, in class `classId`. */
export function polL4Key(classId: number, l4: number, bits: number): PolL4Key {
  if (!Number.isInteger(bits) || bits < 0 || bits > 24)
    throw new Error(`l4 prefix length ${bits} is not 0..24`);
  if (!Number.isInteger(l4) || l4 < 0 || l4 > 0xffffff)
    throw new Error(`l4 value ${l4} is not 24 bits`);
  return { prefixlen: POL_L4_PREFIX_BASE + bits, class_id: classId, l4: maskHigh(l4, bits, 24) };
}

/** Address bits stored in tortie_pol_ip32 (a hash) rather than the tortie_pol_addr trie. */
export const POL_ADDR_EXACT_BITS = 32;
/** (proto, port) bits stored in tortie_pol_port (a hash) rather than the tortie_pol_l4 trie. */
export const POL_L4_EXACT_BITS = 24;
/** (proto, port) bits of a class default, stored in tortie_pol_dflt (a hash by class id). */
export const POL_L4_DEFAULT_BITS = 0;

/** Where an address-stage entry lives: its map (a role of MAPS) and its key there. */
export type PolAddrSlot =
  | { readonly map: 'polIp32'; readonly key: PolIp32Key }
  | { readonly map: 'polAddr'; readonly key: PolAddrKey };

/** Where a port-stage entry lives: its map (a role of MAPS) and its key there. */
export type PolL4Slot =
  | { readonly map: 'polPort'; readonly key: PolPortKey }
  | { readonly map: 'polL4'; readonly key: PolL4Key }
  | { readonly map: 'polDflt'; readonly key: number };

/**
 * The map and key of the address-stage entry `addr/bits` of set `setId`: a /32 in the
 * tortie_pol_ip32 hash, anything shorter in the tortie_pol_addr trie. The programs try
 * the hash first, so a /32 still wins over every shorter prefix.
 */
export function polAddrSlot(setId: number, addr: number, bits: number): PolAddrSlot {
  const key = polAddrKey(setId, addr, bits);
  if (bits !== POL_ADDR_EXACT_BITS) return { map: 'polAddr', key };
  return { map: 'polIp32', key: { set_id: key.set_id, addr: key.addr } };
}

/**
 * The map and key of the port-stage entry for the first `bits` of `l4` in class
 * `classId`: an exact (proto, port) in the tortie_pol_port hash, the class default
 * (0 bits) in the tortie_pol_dflt hash, anything between in the tortie_pol_l4 trie. The
 * programs try them in that order — longest prefix first.
 */
export function polL4Slot(classId: number, l4: number, bits: number): PolL4Slot {
  const key = polL4Key(classId, l4, bits);
  if (bits === POL_L4_DEFAULT_BITS) return { map: 'polDflt', key: key.class_id };
  if (bits !== POL_L4_EXACT_BITS) return { map: 'polL4', key };
  return { map: 'polPort', key: { class_id: key.class_id, l4: key.l4 } };
}

/** Stage-3 key for the first `bits` (0..16) of source port `sport`, in source-port class `classId`. */
export function polSportKey(classId: number, sport: number, bits: number): PolSportKey {
  if (!Number.isInteger(bits) || bits < 0 || bits > 16)
    throw new Error(`source-port prefix length ${bits} is not 0..16`);
  if (!Number.isInteger(sport) || sport < 0 || sport > 0xffff)
    throw new Error(`source port ${sport} is not 0..65535`);
  return {
    prefixlen: POL_SPORT_PREFIX_BASE + bits,
    class_id: classId,
    sport: maskHigh(sport, bits, 16),
  };
}
