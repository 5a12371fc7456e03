/** Names and the validation of every value that ends up on an iproute2 command line. */
import { createHash } from 'node:crypto';
import { isIPv4 } from 'node:net';
import { HOST_VETH_PREFIX, MAX_IFNAME_LENGTH } from './constants.js';
import { PlumbingError } from './errors.js';

const HASH_HEX_CHARS = MAX_IFNAME_LENGTH - HOST_VETH_PREFIX.length;

/**
 * The host-side veth name of a workload: `tor` + the first 12 hex digits of the SHA-1 of
 * the workload id (15 characters, IFNAMSIZ - 1). The same id always gives the same name,
 * so DEL and CHECK find the interface ADD created without any stored state.
 */
export function hostVethName(workloadId: string): string {
  assertWorkloadId(workloadId);
  const hash = createHash('sha1').update(workloadId, 'utf8').digest('hex');
  return HOST_VETH_PREFIX + hash.slice(0, HASH_HEX_CHARS);
}

export function assertWorkloadId(workloadId: string): void {
  if (typeof workloadId !== 'string' || workloadId.length === 0) {
    invalid('workload id', `must be a non-empty string, got ${JSON.stringify(workloadId)}`);
  }
}

/** Interface names: 1-15 characters, none of '/', ':', whitespace, quotes or '#'. */
export function assertIfName(ifName: string, what = 'interface name'): void {
  if (
    typeof ifName !== 'string' ||
    ifName.length === 0 ||
    ifName.length > MAX_IFNAME_LENGTH ||
    ifName === '.' ||
    ifName === '..' ||
    /[\s/:"'#\\]/.test(ifName)
  ) {
    invalid(
      what,
      `${JSON.stringify(ifName)} is not a valid Linux interface name (1-${MAX_IFNAME_LENGTH} characters, no '/', ':', spaces or quotes)`,
    );
  }
}

export function assertIPv4(ip: string): void {
  if (typeof ip !== 'string' || !isIPv4(ip)) {
    invalid(
      'pod address',
      `${JSON.stringify(ip)} is not an IPv4 address (dotted quad, no prefix length)`,
    );
  }
}

export function assertMtu(mtu: number | undefined): void {
  if (mtu === undefined) return;
  if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) {
    invalid('mtu', `${String(mtu)} is not an integer between 68 and 65535`);
  }
}

/** Namespace paths go on iproute2 batch lines: absolute, no whitespace, quotes or '#'. */
export function assertNetnsPathSyntax(path: string, what: string): void {
  if (typeof path !== 'string' || !path.startsWith('/') || /[\s"'#\\]/.test(path)) {
    invalid(what, `${JSON.stringify(path)} is not an absolute path without spaces or quotes`);
  }
}

function invalid(what: string, problem: string): never {
  throw new PlumbingError(`invalid ${what}: ${problem}`, {
    kind: 'invalid-argument',
    step: `validate ${what}`,
  });
}
