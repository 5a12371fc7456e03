/**
 * The etcd key layout of IPAM: Calico's own (libcalico-go's etcdv3 backend), under the
 * caller's prefix (Calico's is "/calico"), so calicoctl's `ipam show` and `ipam check`
 * read tortie's allocations and tortie reads Calico's:
 *
 *   <prefix>/ipam/v2/assignment/ipv4/block/<a.b.c.d-n>       one block (AllocationBlock)
 *   <prefix>/ipam/v2/handle/<handle>                         one handle (IPAMHandle)
 *   <prefix>/ipam/v2/host/<node>/ipv4/block/<a.b.c.d-n>      a node's claim on a block
 *   <prefix>/ipam/v2/config                                  the IPAM configuration
 *
 * A CIDR's "/" becomes "-" so a key is one path segment. The records are in records.ts.
 * The layout before this one (`<prefix>/ipam/v1/{blocks,handles,affinity}/…`) is read by
 * legacy.ts only, to convert it.
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

/** The prefix without trailing slashes ("" for "/"), checked. */
export function normalisePrefix(prefix: unknown): string {
  if (typeof prefix !== 'string')
    throw new IpamError('invalid', 'key prefix must be a string such as "/calico"');
  return prefix.replace(/\/+$/, '');
}

const BLOCK_PATH = 'assignment/ipv4/block/';
const AFFINITY_PATH = '/ipv4/block/';

export class IpamKeys {
  /** Everything IPAM stores is under this. */
  readonly root: string;
  readonly blocks: string;
  readonly handles: string;
  /** Every node's affinities: `<root>host/`. */
  readonly affinities: string;
  readonly config: string;

  constructor(prefix: string) {
    this.root = `${normalisePrefix(prefix)}/ipam/v2/`;
    this.blocks = this.root + BLOCK_PATH;
    this.handles = `${this.root}handle/`;
    this.affinities = `${this.root}host/`;
    this.config = `${this.root}config`;
  }

  block(c: Cidr): string {
    return this.blocks + cidrSegment(c);
  }

  handle(handle: string): string {
    return this.handles + handle;
  }

  /** Every key of the node's affinities starts with this (the trailing "/" keeps node-1 from node-10). */
  nodeAffinities(node: string): string {
    return `${this.affinities}${node}/`;
  }

  affinity(node: string, c: Cidr): string {
    return this.nodeAffinities(node) + AFFINITY_PATH.slice(1) + cidrSegment(c);
  }

  /** The block CIDR named by a block key; undefined for a key that is not one. */
  blockCidr(key: string): Cidr | undefined {
    if (!key.startsWith(this.blocks)) return undefined;
    const rest = key.slice(this.blocks.length);
    return rest.includes('/') ? undefined : segmentCidr(rest);
  }

  handleName(key: string): string | undefined {
    if (!key.startsWith(this.handles)) return undefined;
    const rest = key.slice(this.handles.length);
    return rest === '' || rest.includes('/') ? undefined : rest;
  }

  /** node and block CIDR of an affinity key. */
  affinityOf(key: string): { node: string; cidr: Cidr } | undefined {
    if (!key.startsWith(this.affinities)) return undefined;
    const rest = key.slice(this.affinities.length);
    const at = rest.indexOf(AFFINITY_PATH);
    if (at <= 0) return undefined;
    const node = rest.slice(0, at);
    const segment = rest.slice(at + AFFINITY_PATH.length);
    const cidr = node.includes('/') || segment.includes('/') ? undefined : segmentCidr(segment);
    return cidr ? { node, cidr } : undefined;
  }
}
