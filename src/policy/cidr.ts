/**
 * IPv4 CIDR validation and normalisation for resource schemas. Host bits are masked
 * off, as Calico does ("10.1.2.3/8" becomes "10.0.0.0/8"); a bare address is a /32.
 */

export interface Cidr {
  /** Network address as an unsigned 32-bit number (host bits zero). */
  readonly network: number;
  readonly prefixLength: number;
  /** "a.b.c.d/len" with host bits zero. */
  readonly text: string;
}

export type CidrResult =
  { readonly ok: true; readonly cidr: Cidr } | { readonly ok: false; readonly reason: string };

const OCTET = /^(0|[1-9]\d{0,2})$/;
const PREFIX = /^(0|[1-9]\d?)$/;

export function parseCidr(text: string): CidrResult {
  const shown = JSON.stringify(text);
  if (text.includes(':'))
    return {
      ok: false,
      reason: `${shown} is IPv6: dual stack is not yet supported (tortie is IPv4 only)`,
    };
  const slash = text.split('/');
  if (slash.length > 2) return { ok: false, reason: `${shown} is not a CIDR (more than one "/")` };
  const [address = '', prefix = '32'] = slash;
  const parts = address.split('.');
  if (parts.length !== 4 || parts.some((p) => !OCTET.test(p) || Number(p) > 255)) {
    return {
      ok: false,
      reason: `${shown} is not an IPv4 address or CIDR (expected a.b.c.d or a.b.c.d/n)`,
    };
  }
  if (!PREFIX.test(prefix) || Number(prefix) > 32) {
    return {
      ok: false,
      reason: `${shown} has prefix length ${JSON.stringify(prefix)}; expected 0-32`,
    };
  }
  const prefixLength = Number(prefix);
  const mask = prefixLength === 0 ? 0 : (~0 << (32 - prefixLength)) >>> 0;
  const value = parts.reduce((acc, p) => acc * 256 + Number(p), 0);
  const network = (value & mask) >>> 0;
  return {
    ok: true,
    cidr: { network, prefixLength, text: `${formatAddress(network)}/${prefixLength}` },
  };
}

function formatAddress(value: number): string {
  return [24, 16, 8, 0].map((shift) => (value >>> shift) & 0xff).join('.');
}

/** True when `inner` lies inside `outer` (equal counts as inside). */
export function cidrWithin(inner: Cidr, outer: Cidr): boolean {
  if (inner.prefixLength < outer.prefixLength) return false;
  const mask = outer.prefixLength === 0 ? 0 : (~0 << (32 - outer.prefixLength)) >>> 0;
  return (inner.network & mask) >>> 0 === outer.network;
}
