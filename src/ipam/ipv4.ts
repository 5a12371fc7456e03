/**
 * IPv4 addresses as unsigned 32-bit numbers, and CIDRs over them. IPAM is IPv4 only,
 * like the rest of tortie.
 */
import { IpamError } from './errors.js';

export interface Cidr {
  /** Network address, host bits zero. */
  readonly base: number;
  readonly prefixLength: number;
}

const OCTET = /^(0|[1-9]\d{0,2})$/;

/** Parses "a.b.c.d"; undefined when it is not a dotted-quad IPv4 address. */
export function tryParseIp(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    if (!OCTET.test(p) || Number(p) > 255) return undefined;
    n = n * 256 + Number(p);
  }
  return n;
}

export function parseIp(text: string): number {
  const n = tryParseIp(text);
  if (n === undefined)
    throw new IpamError(
      'invalid',
      `${JSON.stringify(text)} is not an IPv4 address (expected a.b.c.d)`,
    );
  return n;
}

export function formatIp(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** Parses "a.b.c.d/n" with host bits zero; undefined otherwise. */
export function tryParseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const base = tryParseIp(text.slice(0, slash));
  const len = text.slice(slash + 1);
  if (base === undefined || !/^(0|[1-9]\d?)$/.test(len) || Number(len) > 32) return undefined;
  const cidr = { base, prefixLength: Number(len) };
  return base % cidrSize(cidr) === 0 ? cidr : undefined;
}

export function parseCidr(text: string, what = 'CIDR'): Cidr {
  const c = tryParseCidr(text);
  if (!c)
    throw new IpamError(
      'invalid',
      `${what} ${JSON.stringify(text)} is not an IPv4 CIDR a.b.c.d/n with host bits zero`,
    );
  return c;
}

export function formatCidr(c: Cidr): string {
  return `${formatIp(c.base)}/${c.prefixLength}`;
}

/** Number of addresses in the CIDR (2^(32 - prefix length)). */
export function cidrSize(c: Cidr): number {
  return 2 ** (32 - c.prefixLength);
}

export function cidrContains(c: Cidr, ip: number): boolean {
  return ip >= c.base && ip < c.base + cidrSize(c);
}

/** True when `inner` lies entirely inside `outer`. */
export function cidrWithin(inner: Cidr, outer: Cidr): boolean {
  return inner.prefixLength >= outer.prefixLength && cidrContains(outer, inner.base);
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return a.base < b.base + cidrSize(b) && b.base < a.base + cidrSize(a);
}

/** The CIDR of prefix length `prefixLength` that holds `ip`. */
export function enclosingCidr(ip: number, prefixLength: number): Cidr {
  const size = 2 ** (32 - prefixLength);
  return { base: ip - (ip % size), prefixLength };
}

/** An interface address `a.b.c.d[/n]` (a node's underlay address), parsed. */
export interface InterfaceAddress {
  readonly ip: number;
  readonly text: string;
  /** The subnet its prefix length gives (/32 when it has none). */
  readonly subnet: Cidr;
}

/** undefined when `address` is absent or not `a.b.c.d[/0-32]`. */
export function parseInterfaceAddress(address: string | undefined): InterfaceAddress | undefined {
  if (address === undefined) return undefined;
  const [ipText = '', prefix = '32'] = address.split('/');
  const ip = tryParseIp(ipText);
  const len = Number(prefix);
  if (ip === undefined || !Number.isInteger(len) || len < 0 || len > 32) return undefined;
  return { ip, text: ipText, subnet: enclosingCidr(ip, len) };
}

export function compareCidrs(a: Cidr, b: Cidr): number {
  return a.base - b.base || a.prefixLength - b.prefixLength;
}
