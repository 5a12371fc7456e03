/**
 * Packet builder for dataplane tests and benchmarks: Ethernet (optionally VLAN-tagged), ARP, IPv6
 * (header only), IPv4 with options, fragments and any protocol, and TCP / UDP /
 * UDPLite / SCTP / ICMP (echo and errors quoting another packet) with correct
 * checksums. Every field a test may want wrong can be overridden (IHL, total length,
 * version, TCP data offset, checksums), and any frame can be cut with truncate().
 *
 *   const frame = ethernet(ipv4({ src: '10.0.0.1', dst: '10.0.0.2' }, tcp({ sport: 40000, dport: 80, flags: TCP.SYN })));
 *
 * Layers compose bottom-up: an L4 builder returns an `L4` (protocol + bytes), ipv4()
 * wraps one into a datagram (filling the pseudo-header checksum), ethernet() frames
 * any payload.
 */

export const ETH_HLEN = 14;
export const IPV4_HLEN = 20;

export const ETH_P = {
  IP: 0x0800,
  ARP: 0x0806,
  VLAN: 0x8100,
  QINQ: 0x88a8,
  IPV6: 0x86dd,
  MPLS: 0x8847,
} as const;
export const PROTO = { ICMP: 1, TCP: 6, UDP: 17, GRE: 47, SCTP: 132, UDPLITE: 136 } as const;
export const TCP = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10, URG: 0x20 } as const;
export const ICMP = {
  ECHO_REPLY: 0,
  DEST_UNREACH: 3,
  SOURCE_QUENCH: 4,
  REDIRECT: 5,
  ECHO: 8,
  TIME_EXCEEDED: 11,
  PARAMETER_PROBLEM: 12,
  TIMESTAMP: 13,
  TIMESTAMP_REPLY: 14,
} as const;
/** Codes of ICMP_DEST_UNREACH. */
export const UNREACH = {
  NET: 0,
  HOST: 1,
  PROTOCOL: 2,
  PORT: 3,
  FRAG_NEEDED: 4,
  ADMIN: 13,
} as const;

/** The gateway MAC every pod's host veth carries (docs: packet path). */
export const GATEWAY_MAC = 'ee:ee:ee:ee:ee:ee';
export const POD_MAC = '02:00:00:00:00:01';

// ---- small byte helpers -------------------------------------------------------------

export function macBytes(mac: string): Buffer {
  const parts = mac.split(':');
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p)))
    throw new Error(`bad MAC ${mac}`);
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

export function ipBytes(ip: string): Buffer {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255))
    throw new Error(`bad IPv4 ${ip}`);
  return Buffer.from(parts);
}

/** RFC 1071 Internet checksum of the concatenated buffers. */
export function inetChecksum(...parts: Buffer[]): number {
  const data = Buffer.concat(parts);
  let sum = 0;
  for (let i = 0; i + 1 < data.length; i += 2) sum += data.readUInt16BE(i);
  if (data.length % 2 === 1) sum += data[data.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

let crc32cTable: Uint32Array | undefined;
/** CRC32c (Castagnoli), as SCTP uses it. */
export function crc32c(data: Buffer): number {
  if (!crc32cTable) {
    crc32cTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
      crc32cTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (const byte of data) crc = crc32cTable[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** The first `length` bytes (a copy). */
export function truncate(frame: Buffer, length: number): Buffer {
  if (length < 0 || length > frame.length)
    throw new Error(`cannot truncate ${frame.length} bytes to ${length}`);
  return Buffer.from(frame.subarray(0, length));
}

// ---- L4 ----------------------------------------------------------------------------

/** An IPv4 payload: its protocol number and bytes. */
export interface L4 {
  readonly proto: number;
  readonly bytes: Buffer;
  /** Where a checksum covering the IPv4 pseudo-header goes (TCP 16, UDP 6), if any. */
  readonly pseudoChecksumAt?: number;
}

export interface TcpOptions {
  sport: number;
  dport: number;
  /** TCP.* bits; default ACK. */
  flags?: number;
  seq?: number;
  ack?: number;
  window?: number;
  /** TCP options, padded with zeros (end of option list) to a multiple of 4. */
  options?: Buffer;
  /** Override the data offset (in 32-bit words) written in the header. */
  doff?: number;
  payload?: Buffer;
}

function pad4(buf: Buffer): Buffer {
  const rem = buf.length % 4;
  return rem === 0 ? buf : Buffer.concat([buf, Buffer.alloc(4 - rem)]);
}

export function tcp(o: TcpOptions): L4 {
  const options = pad4(o.options ?? Buffer.alloc(0));
  const header = Buffer.alloc(20 + options.length);
  header.writeUInt16BE(o.sport, 0);
  header.writeUInt16BE(o.dport, 2);
  header.writeUInt32BE(o.seq ?? 1000, 4);
  header.writeUInt32BE(o.ack ?? 0, 8);
  header.writeUInt8(((o.doff ?? header.length / 4) & 0xf) << 4, 12);
  header.writeUInt8(o.flags ?? TCP.ACK, 13);
  header.writeUInt16BE(o.window ?? 65535, 14);
  options.copy(header, 20);
  return {
    proto: PROTO.TCP,
    bytes: Buffer.concat([header, o.payload ?? Buffer.alloc(0)]),
    pseudoChecksumAt: 16,
  };
}

export interface UdpOptions {
  sport: number;
  dport: number;
  payload?: Buffer;
  /** UDPLite (136) instead of UDP: same header, the length field is the checksum coverage (0 = all). */
  lite?: boolean;
}

export function udp(o: UdpOptions): L4 {
  const payload = o.payload ?? Buffer.alloc(0);
  const header = Buffer.alloc(8);
  header.writeUInt16BE(o.sport, 0);
  header.writeUInt16BE(o.dport, 2);
  header.writeUInt16BE(o.lite ? 0 : 8 + payload.length, 4);
  return {
    proto: o.lite ? PROTO.UDPLITE : PROTO.UDP,
    bytes: Buffer.concat([header, payload]),
    pseudoChecksumAt: 6,
  };
}

export interface SctpOptions {
  sport: number;
  dport: number;
  vtag?: number;
  /** Chunks after the common header; default none. */
  chunks?: Buffer;
}

export function sctp(o: SctpOptions): L4 {
  const bytes = Buffer.concat([Buffer.alloc(12), o.chunks ?? Buffer.alloc(0)]);
  bytes.writeUInt16BE(o.sport, 0);
  bytes.writeUInt16BE(o.dport, 2);
  bytes.writeUInt32BE(o.vtag ?? 1, 4);
  bytes.writeUInt32LE(crc32c(bytes), 8);
  return { proto: PROTO.SCTP, bytes };
}

export interface IcmpOptions {
  type: number;
  code?: number;
  /** Bytes 4..7 of the header (echo: id and sequence). Default zeros. */
  rest?: Buffer;
  payload?: Buffer;
}

export function icmp(o: IcmpOptions): L4 {
  const bytes = Buffer.concat([
    Buffer.alloc(4),
    pad(o.rest ?? Buffer.alloc(4), 4),
    o.payload ?? Buffer.alloc(0),
  ]);
  bytes.writeUInt8(o.type, 0);
  bytes.writeUInt8(o.code ?? 0, 1);
  bytes.writeUInt16BE(inetChecksum(bytes), 2);
  return { proto: PROTO.ICMP, bytes };
}

function pad(buf: Buffer, length: number): Buffer {
  if (buf.length > length) throw new Error(`expected at most ${length} bytes, got ${buf.length}`);
  return Buffer.concat([buf, Buffer.alloc(length - buf.length)]);
}

function idSeq(id: number, seq: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt16BE(id, 0);
  b.writeUInt16BE(seq, 2);
  return b;
}

export function icmpEcho(o: { id: number; seq?: number; reply?: boolean; payload?: Buffer }): L4 {
  return icmp({
    type: o.reply ? ICMP.ECHO_REPLY : ICMP.ECHO,
    rest: idSeq(o.id, o.seq ?? 1),
    payload: o.payload ?? Buffer.from('tortie-ping'),
  });
}

/**
 * An ICMP error (destination unreachable, time exceeded, ...) quoting `quoted` — an
 * IPv4 datagram as ipv4() builds it — cut to its IP header + `quoteBytes` bytes
 * (default 8, what RFC 792 requires; routers often quote more).
 */
export function icmpError(o: {
  type: number;
  code?: number;
  quoted: Buffer;
  quoteBytes?: number;
  mtu?: number;
}): L4 {
  const ihl = ((o.quoted[0] ?? 0x45) & 0xf) * 4;
  const quote = o.quoted.subarray(0, Math.min(o.quoted.length, ihl + (o.quoteBytes ?? 8)));
  const rest = Buffer.alloc(4);
  if (o.mtu !== undefined) rest.writeUInt16BE(o.mtu, 2);
  return icmp({ type: o.type, code: o.code ?? 0, rest, payload: Buffer.from(quote) });
}

/** Any protocol: raw bytes after the IP header (GRE 47, experimental 253, ...). */
export function rawL4(proto: number, bytes: Buffer = Buffer.alloc(8)): L4 {
  return { proto, bytes };
}

// ---- IPv4 --------------------------------------------------------------------------

export interface Ipv4Options {
  src: string;
  dst: string;
  ttl?: number;
  id?: number;
  tos?: number;
  df?: boolean;
  /** More fragments. */
  mf?: boolean;
  /** Fragment offset in 8-byte units. */
  fragOffset?: number;
  /** IP options; padded with zeros (end of options list) to a multiple of 4. */
  options?: Buffer;
  /** Overrides for malformed packets. */
  version?: number;
  ihl?: number;
  totalLength?: number;
  /** Leave the L4 checksum as the builder wrote it (skip the pseudo-header sum). */
  rawL4Checksum?: boolean;
}

/** IP option: router alert (RFC 2113), 4 bytes. */
export const IP_OPTION_ROUTER_ALERT = Buffer.from([0x94, 0x04, 0x00, 0x00]);
/** IP option: no-operation, 1 byte. */
export const IP_OPTION_NOP = Buffer.from([0x01]);

/** An IPv4 datagram carrying l4 (header checksum and pseudo-header L4 checksum filled). */
export function ipv4(o: Ipv4Options, l4: L4): Buffer {
  const options = pad4(o.options ?? Buffer.alloc(0));
  const hlen = 20 + options.length;
  if (hlen > 60) throw new Error(`IPv4 options too long: header would be ${hlen} bytes`);
  const header = Buffer.alloc(hlen);
  const src = ipBytes(o.src);
  const dst = ipBytes(o.dst);
  header.writeUInt8(((o.version ?? 4) << 4) | ((o.ihl ?? hlen / 4) & 0xf), 0);
  header.writeUInt8(o.tos ?? 0, 1);
  header.writeUInt16BE(o.totalLength ?? hlen + l4.bytes.length, 2);
  header.writeUInt16BE(o.id ?? 0x1234, 4);
  const flags = (o.df ? 0x4000 : 0) | (o.mf ? 0x2000 : 0);
  header.writeUInt16BE(flags | ((o.fragOffset ?? 0) & 0x1fff), 6);
  header.writeUInt8(o.ttl ?? 64, 8);
  header.writeUInt8(l4.proto, 9);
  src.copy(header, 12);
  dst.copy(header, 16);
  options.copy(header, 20);
  header.writeUInt16BE(inetChecksum(header), 10);

  const payload = Buffer.from(l4.bytes);
  const at = l4.pseudoChecksumAt;
  const whole = (o.fragOffset ?? 0) === 0 && !o.mf;
  if (at !== undefined && !o.rawL4Checksum && whole && payload.length >= at + 2) {
    const pseudo = Buffer.alloc(12);
    src.copy(pseudo, 0);
    dst.copy(pseudo, 4);
    pseudo.writeUInt8(l4.proto, 9);
    pseudo.writeUInt16BE(payload.length, 10);
    payload.writeUInt16BE(0, at);
    const sum = inetChecksum(pseudo, payload);
    payload.writeUInt16BE(sum === 0 && l4.proto === PROTO.UDP ? 0xffff : sum, at);
  }
  return Buffer.concat([header, payload]);
}

/**
 * Splits an IPv4 datagram (as ipv4() builds it, L4 checksum included) into fragments
 * carrying at most `chunk` payload bytes each (a multiple of 8). Options are copied to
 * every fragment; the original's MF/offset are respected.
 */
export function fragmentIpv4(datagram: Buffer, chunk: number): Buffer[] {
  if (chunk <= 0 || chunk % 8 !== 0)
    throw new Error(`fragment size ${chunk} must be a positive multiple of 8`);
  const ihl = (datagram[0]! & 0xf) * 4;
  const header = datagram.subarray(0, ihl);
  const payload = datagram.subarray(ihl, datagram.readUInt16BE(2));
  const base = datagram.readUInt16BE(6);
  const baseOffset = base & 0x1fff;
  const out: Buffer[] = [];
  for (let at = 0; at < payload.length; at += chunk) {
    const piece = payload.subarray(at, Math.min(at + chunk, payload.length));
    const last = at + chunk >= payload.length;
    const h = Buffer.from(header);
    h.writeUInt16BE(ihl + piece.length, 2);
    const mf = !last || (base & 0x2000) !== 0;
    h.writeUInt16BE((base & 0x4000) | (mf ? 0x2000 : 0) | (baseOffset + at / 8), 6);
    h.writeUInt16BE(0, 10);
    h.writeUInt16BE(inetChecksum(h), 10);
    out.push(Buffer.concat([h, piece]));
  }
  return out;
}

// ---- L2 ----------------------------------------------------------------------------

export interface EthernetOptions {
  src?: string;
  dst?: string;
  /** Default IPv4. */
  ethertype?: number;
  /** 802.1Q tags, outermost first (each adds 4 bytes before the ethertype). */
  vlans?: readonly number[];
}

export function ethernet(payload: Buffer, o: EthernetOptions = {}): Buffer {
  const tags = (o.vlans ?? []).map((vid) => {
    const t = Buffer.alloc(4);
    t.writeUInt16BE(ETH_P.VLAN, 0);
    t.writeUInt16BE(vid & 0xfff, 2);
    return t;
  });
  const type = Buffer.alloc(2);
  type.writeUInt16BE(o.ethertype ?? ETH_P.IP);
  return Buffer.concat([
    macBytes(o.dst ?? GATEWAY_MAC),
    macBytes(o.src ?? POD_MAC),
    ...tags,
    type,
    payload,
  ]);
}

/** An ARP request for `target` from (senderMac, senderIp), broadcast. */
export function arpRequest(o: { senderIp: string; target: string; senderMac?: string }): Buffer {
  const body = Buffer.alloc(28);
  body.writeUInt16BE(1, 0); // Ethernet
  body.writeUInt16BE(ETH_P.IP, 2);
  body.writeUInt8(6, 4);
  body.writeUInt8(4, 5);
  body.writeUInt16BE(1, 6); // request
  macBytes(o.senderMac ?? POD_MAC).copy(body, 8);
  ipBytes(o.senderIp).copy(body, 14);
  ipBytes(o.target).copy(body, 24);
  return ethernet(body, {
    dst: 'ff:ff:ff:ff:ff:ff',
    src: o.senderMac ?? POD_MAC,
    ethertype: ETH_P.ARP,
  });
}

/** An IPv6 header (fe80::1 → ff02::1, no next header) and `payloadLength` zero bytes. */
export function ipv6(payloadLength = 8): Buffer {
  const h = Buffer.alloc(40 + payloadLength);
  h.writeUInt32BE(0x60000000, 0);
  h.writeUInt16BE(payloadLength, 4);
  h.writeUInt8(59, 6); // no next header
  h.writeUInt8(64, 7);
  Buffer.from('fe800000000000000000000000000001', 'hex').copy(h, 8);
  Buffer.from('ff020000000000000000000000000001', 'hex').copy(h, 24);
  return h;
}

// ---- reading frames back ---------------------------------------------------------------

export interface Ipv4View {
  readonly ihl: number;
  readonly totalLength: number;
  readonly ttl: number;
  readonly proto: number;
  readonly checksum: number;
  readonly src: string;
  readonly dst: string;
  /** Whether the header checksum verifies. */
  readonly checksumOk: boolean;
}

/** The IPv4 header of an Ethernet frame (untagged). */
export function readIpv4(frame: Buffer): Ipv4View {
  const ip = frame.subarray(ETH_HLEN);
  const ihl = (ip[0]! & 0xf) * 4;
  const quad = (at: number): string => [...ip.subarray(at, at + 4)].join('.');
  return {
    ihl,
    totalLength: ip.readUInt16BE(2),
    ttl: ip[8]!,
    proto: ip[9]!,
    checksum: ip.readUInt16BE(10),
    src: quad(12),
    dst: quad(16),
    checksumOk: inetChecksum(ip.subarray(0, ihl)) === 0,
  };
}

// ---- the common case in one call ------------------------------------------------------

/** Ethernet + IPv4 + l4, default MACs (pod → gateway). */
export function frame(ip: Ipv4Options, l4: L4, eth: EthernetOptions = {}): Buffer {
  return ethernet(ipv4(ip, l4), eth);
}
