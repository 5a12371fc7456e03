/**
 * Failsafe ports: what a host endpoint can never cut off (Calico's "failsafe rules",
 * FelixConfiguration `failsafeInboundHostPorts` / `failsafeOutboundHostPorts`).
 *
 * Calico's defaults: inbound tcp 22 (SSH), udp 68 (DHCP), tcp 179 (BGP), 2379, 2380
 * (etcd), 5473 (Typha), 6443 (Kubernetes API), 6666, 6667 (etcd self-hosted);
 * outbound udp 53 (DNS), udp 67 (DHCP) and the same tcp ports. Inbound entries match
 * the destination port of a packet arriving for the host (and, with `net`, its
 * source); outbound entries the destination port of a packet the host sends (and,
 * with `net`, its destination).
 *
 * Accepted forms: Calico v3's list of `{protocol, port, net?}` (an empty list disables
 * them), and Felix's string form `[<protocol>:][<net>:]<port>, …` (protocol defaults
 * to tcp) or `none`.
 */
import type { Failsafe, FailsafePort } from './model.js';

const TCP = 6;
const UDP = 17;
const tcp = (port: number): FailsafePort => ({ protocol: TCP, port });
const udp = (port: number): FailsafePort => ({ protocol: UDP, port });
const CALICO_TCP = [179, 2379, 2380, 5473, 6443, 6666, 6667];

export const DEFAULT_FAILSAFE: Failsafe = {
  inbound: [tcp(22), udp(68), ...CALICO_TCP.map(tcp)],
  outbound: [udp(53), udp(67), ...CALICO_TCP.map(tcp)],
};

export const NO_FAILSAFE: Failsafe = { inbound: [], outbound: [] };

export class FailsafeError extends Error {
  override readonly name = 'FailsafeError';
}

const CIDR = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(\/(\d{1,2}))?$/;

function checkNet(net: string, where: string): string {
  const m = CIDR.exec(net);
  if (m === null || [1, 2, 3, 4].some((i) => Number(m[i]) > 255) || Number(m[6] ?? 32) > 32)
    throw new FailsafeError(`${where}: net ${JSON.stringify(net)} is not an IPv4 CIDR`);
  return m[5] === undefined ? `${net}/32` : net;
}

function protocolOf(raw: unknown, where: string): 6 | 17 {
  if (raw === undefined) return TCP;
  if (typeof raw === 'string' && /^tcp$/i.test(raw)) return TCP;
  if (typeof raw === 'string' && /^udp$/i.test(raw)) return UDP;
  throw new FailsafeError(`${where}: protocol ${JSON.stringify(raw)} is not TCP or UDP`);
}

function portOf(raw: unknown, where: string): number {
  const n = typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : raw;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 65535)
    throw new FailsafeError(`${where}: port ${JSON.stringify(raw)} is not in 1..65535`);
  return n;
}

/** One `[<protocol>:][<net>:]<port>` entry of Felix's string form. */
function parseEntry(text: string, where: string): FailsafePort {
  const parts = text.split(':');
  const port = portOf(parts.pop(), where);
  let protocol: 6 | 17 = TCP;
  let net: string | undefined;
  if (parts.length === 2) {
    protocol = protocolOf(parts[0], where);
    net = checkNet(parts[1]!, where);
  } else if (parts.length === 1) {
    if (/^(tcp|udp)$/i.test(parts[0]!)) protocol = protocolOf(parts[0], where);
    else net = checkNet(parts[0]!, where);
  } else if (parts.length > 2) {
    throw new FailsafeError(`${where}: ${JSON.stringify(text)} is not [protocol:][net:]port`);
  }
  return net === undefined ? { protocol, port } : { protocol, port, net };
}

/**
 * A failsafe list from the datastore or a flag: undefined → Calico's default for the
 * direction; `[]`, `none` or `""` → none. Throws FailsafeError naming the entry.
 */
export function parseFailsafePorts(
  raw: unknown,
  direction: 'inbound' | 'outbound',
): readonly FailsafePort[] {
  const field = direction === 'inbound' ? 'failsafeInboundHostPorts' : 'failsafeOutboundHostPorts';
  if (raw === undefined || raw === null) return DEFAULT_FAILSAFE[direction];
  if (typeof raw === 'string') {
    const text = raw.trim();
    if (text === '' || /^none$/i.test(text)) return [];
    return text.split(',').map((e, i) => parseEntry(e.trim(), `${field}[${i}]`));
  }
  if (!Array.isArray(raw)) throw new FailsafeError(`${field}: not a list or a string`);
  if (raw.length === 1 && typeof raw[0] === 'string' && /^none$/i.test(raw[0])) return [];
  return raw.map((entry: unknown, i) => {
    const where = `${field}[${i}]`;
    if (typeof entry === 'string') return parseEntry(entry, where);
    if (typeof entry !== 'object' || entry === null)
      throw new FailsafeError(`${where}: not {protocol, port, net}`);
    const e = entry as Record<string, unknown>;
    const protocol = protocolOf(e.protocol, where);
    const port = portOf(e.port, where);
    if (e.net === undefined || e.net === '') return { protocol, port };
    if (typeof e.net !== 'string') throw new FailsafeError(`${where}: net is not a string`);
    return { protocol, port, net: checkNet(e.net, where) };
  });
}
