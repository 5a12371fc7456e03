/**
 * The etcd key layout of IPAM, under the caller's prefix:
 *
 *   <prefix>/ipam/v1/blocks/<a.b.c.d-n>            one block (JSON BlockRecord)
 *   <prefix>/ipam/v1/handles/<handle>              one handle (JSON HandleRecord)
 *   <prefix>/ipam/v1/affinity/<node>/<a.b.c.d-n>   a node's claim on a block (JSON AffinityRecord)
 *
 * A CIDR's "/" becomes "-" so a key is one path segment.
 */
import { IpamError } from './errors.js';
import { type Cidr, formatCidr, tryParseCidr } from './ipv4.js';

/** Handles and node names become key segments: printable, no "/" and no spaces. */
const NAME = /^[^\s/\p{Cc}]{1,512}$/u;

export function checkName(what: 'handle' | 'node', value: unknown): string {
  if (typeof value !== 'string' || !NAME.test(value)) {
    throw new IpamError(
      'invalid',
      `${what} ${JSON.stringify(value)} is not valid: use 1-512 printable characters without "/" or spaces`,
    );
  }
  return value;
}

export function cidrSegment(c: Cidr): string {
  return formatCidr(c).replace('/', '-');
}

export function segmentCidr(segment: string): Cidr | undefined {
  const dash = segment.lastIndexOf('-');
  return dash < 0
    ? undefined
    : tryParseCidr(`${segment.slice(0, dash)}/${segment.slice(dash + 1)}`);
}

export class IpamKeys {
  readonly root: string;
  readonly blocks: string;
  readonly handles: string;
  readonly affinities: string;

  constructor(prefix: string) {
    if (typeof prefix !== 'string')
      throw new IpamError('invalid', 'key prefix must be a string such as "/tortie"');
    this.root = `${prefix.replace(/\/+$/, '')}/ipam/v1/`;
    this.blocks = `${this.root}blocks/`;
    this.handles = `${this.root}handles/`;
    this.affinities = `${this.root}affinity/`;
  }

  block(c: Cidr): string {
    return this.blocks + cidrSegment(c);
  }

  handle(handle: string): string {
    return this.handles + handle;
  }

  nodeAffinities(node: string): string {
    return `${this.affinities}${node}/`;
  }

  affinity(node: string, c: Cidr): string {
    return this.nodeAffinities(node) + cidrSegment(c);
  }

  /** The block CIDR named by a block key; undefined for a key that is not one. */
  blockCidr(key: string): Cidr | undefined {
    return key.startsWith(this.blocks) ? segmentCidr(key.slice(this.blocks.length)) : undefined;
  }

  handleName(key: string): string | undefined {
    return key.startsWith(this.handles) ? key.slice(this.handles.length) : undefined;
  }

  /** node and block CIDR of an affinity key. */
  affinityOf(key: string): { node: string; cidr: Cidr } | undefined {
    if (!key.startsWith(this.affinities)) return undefined;
    const rest = key.slice(this.affinities.length);
    const slash = rest.lastIndexOf('/');
    const cidr = slash > 0 ? segmentCidr(rest.slice(slash + 1)) : undefined;
    return cidr ? { node: rest.slice(0, slash), cidr } : undefined;
  }
}
