/**
 * The arithmetic of the two policy stages' LPM keys (bpf/tortie_maps.h): which
 * prefixlen covers what, and how (proto, port) packs into the l4 tail.
 */
import type { PolAddrKey, PolL4Key } from './structs.js';

/** tortie_pol_addr_key.prefixlen = POL_ADDR_PREFIX_BASE + address bits (set_id always matched). */
export const POL_ADDR_PREFIX_BASE = 32;
/** tortie_pol_l4_key.prefixlen = POL_L4_PREFIX_BASE + bits over (proto, port) (class_id and the zero byte always matched). */
export const POL_L4_PREFIX_BASE = 40;

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
