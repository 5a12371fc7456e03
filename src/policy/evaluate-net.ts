/**
 * IPv4 address-in-CIDR tests for the reference evaluator only (the compiler has its own
 * prefix handling, so a mistake here cannot hide in both). Parsing is memoised.
 */

interface Net {
  readonly base: number;
  readonly mask: number;
}

const CACHE_LIMIT = 100_000;
const addresses = new Map<string, number>();
const nets = new Map<string, Net>();

function remember<V>(cache: Map<string, V>, key: string, value: V): V {
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(key, value);
  return value;
}

function parseAddress(text: string): number {
  let value = addresses.get(text);
  if (value === undefined) {
    const parts = text.split('.');
    const octets = parts.map(Number);
    if (parts.length !== 4 || octets.some((o, i) => !/^\d{1,3}$/.test(parts[i]!) || o > 255)) {
      throw new Error(`not an IPv4 address: ${JSON.stringify(text)}`);
    }
    value = remember(
      addresses,
      text,
      ((octets[0]! << 24) | (octets[1]! << 16) | (octets[2]! << 8) | octets[3]!) >>> 0,
    );
  }
  return value;
}

/** A CIDR, or a bare address meaning /32; host bits are ignored (masked off). */
function parseNet(text: string): Net {
  let net = nets.get(text);
  if (net === undefined) {
    const [address = '', length = '32', ...rest] = text.split('/');
    const bits = Number(length);
    if (rest.length > 0 || !/^\d{1,2}$/.test(length) || bits > 32) {
      throw new Error(`not an IPv4 CIDR: ${JSON.stringify(text)}`);
    }
    const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
    net = remember(nets, text, { base: (parseAddress(address) & mask) >>> 0, mask });
  }
  return net;
}

export function addressInNet(address: string, net: string): boolean {
  const { base, mask } = parseNet(net);
  return (parseAddress(address) & mask) >>> 0 === base;
}
