/**
 * IPv4 addresses and CIDRs as u32 numbers and intervals of the address space.
 */
import { normalize, type IntervalSet } from './intervals.js';

export const ADDRESS_BITS = 32;
export const ADDRESS_MAX = 2 ** 32 - 1;
export const ALL_ADDRESSES: IntervalSet = [[0, ADDRESS_MAX]];

export class AddressError extends Error {
  override readonly name = 'AddressError';
}

const DOTTED_QUAD = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** "10.0.0.1" → 0x0a000001 (the dotted quad read as a number, most significant first). */
export function parseAddress(text: string): number {
  const m = DOTTED_QUAD.exec(text);
  const octets = m === null ? [] : m.slice(1).map(Number);
  if (octets.length !== 4 || octets.some((o) => o > 255)) {
    throw new AddressError(`not an IPv4 address: ${JSON.stringify(text)}`);
  }
  return octets.reduce((acc, o) => acc * 256 + o, 0);
}

export function formatAddress(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

/** "10.0.0.0/8" → [0x0a000000, 0x0affffff]; a bare address is a /32; host bits are masked off. */
export function parseCidr(text: string): [number, number] {
  const parts = text.split('/');
  const [address = '', length = '32'] = parts;
  const bits = Number(length);
  if (parts.length > 2 || !/^\d{1,2}$/.test(length) || bits > ADDRESS_BITS) {
    throw new AddressError(`not an IPv4 CIDR: ${JSON.stringify(text)}`);
  }
  const blockSize = 2 ** (ADDRESS_BITS - bits);
  const base = Math.floor(parseAddress(address) / blockSize) * blockSize;
  return [base, base + blockSize - 1];
}

/** The union of some CIDRs. */
export function cidrsToSet(cidrs: readonly string[]): IntervalSet {
  return normalize(cidrs.map(parseCidr));
}
