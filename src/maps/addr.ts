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
