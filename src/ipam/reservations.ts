/**
 * IPReservations as IPAM sees them: CIDRs (or bare addresses) it never hands out. The
 * caller reads them live (the CNI plugin lists the IPReservation resources on every ADD)
 * and passes their reservedCIDRs; IPAM checks them here. Addresses already allocated when
 * a reservation appears stay allocated, as in Calico.
 */
import { IpamError } from './errors.js';
import { type Cidr, cidrContains, cidrWithin, parseCidr, tryParseIp } from './ipv4.js';
import type { Reserved } from './records.js';

export interface Reservations {
  readonly cidrs: readonly Cidr[];
  /** True for a reserved address. */
  readonly has: Reserved;
  /** True when every address of `c` is reserved (such a block is never claimed or used). */
  covers(c: Cidr): boolean;
}

export function parseReservations(reserved: unknown): Reservations {
  if (reserved === undefined) reserved = [];
  if (!Array.isArray(reserved))
    throw new IpamError('invalid', 'reserved must be a list of CIDRs or addresses');
  const cidrs = reserved.map((r: unknown, i) => {
    if (typeof r !== 'string')
      throw new IpamError('invalid', `reserved[${i}] must be a CIDR or an address`);
    const text = r.trim();
    return tryParseIp(text) !== undefined
      ? parseCidr(`${text}/32`, `reserved[${i}]`)
      : parseCidr(text, `reserved[${i}]`);
  });
  return {
    cidrs,
    has: (ip) => cidrs.some((c) => cidrContains(c, ip)),
    covers: (c) => cidrs.some((r) => cidrWithin(c, r)),
  };
}
