/**
 * IPv4 addresses as the codecs carry them: a number holding the host-order value of
 * the dotted quad (10.0.0.1 = 0x0a000001), written big-endian into __be32 fields.
 */

// Octets without leading zeros: "010" is octal to some parsers, so it is refused.
const OCTET = '(0|[1-9]\\d{0,2})';
const QUAD = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}$`);

/** '10.0.0.1' → 0x0a000001. Throws on anything that is not a dotted quad. */
export function ipToU32(ip: string): number {
  const m = QUAD.exec(ip);
  if (!m) throw new Error(`not an IPv4 address: ${JSON.stringify(ip)}`);
  let value = 0;
  for (let i = 1; i <= 4; i++) {
    const octet = Number(m[i]);
    if (octet > 255)
      throw new Error(`not an IPv4 address: ${JSON.stringify(ip)} (octet ${octet} > 255)`);
    value = value * 256 + octet;
  }
  return value;
}

/** 0x0a000001 → '10.0.0.1'. Throws unless 0 ≤ value ≤ 0xffffffff (an integer). */
export function u32ToIp(value: number): string {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new Error(`not a 32-bit address value: ${value}`);
  }
  return [value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff].join('.');
}

/** An IPv4 prefix: the network address (host bits clear) and its length. */
export interface Ipv4Prefix {
  readonly addr: number;
  readonly bits: number;
}

/**
 * '10.65.3.0/26' → { addr: 0x0a410300, bits: 26 }; a bare address is a /32. Throws on
 * anything else, and on host bits set ('10.65.3.1/26'), as `ip route` does: a route
 * key with them set would never be found by the prefix it was meant for.
 */
export function parseCidr(cidr: string): Ipv4Prefix {
  const [ip, len, extra] = cidr.split('/');
  if (ip === undefined || extra !== undefined || (len !== undefined && !/^\d{1,2}$/.test(len))) {
    throw new Error(`not an IPv4 CIDR: ${JSON.stringify(cidr)}`);
  }
  const bits = len === undefined ? 32 : Number(len);
  if (bits > 32) throw new Error(`not an IPv4 CIDR: ${JSON.stringify(cidr)} (length ${bits} > 32)`);
  const addr = ipToU32(ip);
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  if ((addr & ~mask) >>> 0 !== 0) {
    throw new Error(
      `${cidr}: host bits set (the network is ${u32ToIp((addr & mask) >>> 0)}/${bits})`,
    );
  }
  return { addr, bits };
}
