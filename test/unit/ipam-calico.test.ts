/**
 * IPAM's records in Calico's format (pure parts): the codec against records shaped as
 * Calico's etcd datastore stores them (test/fixtures/calico-ipam), 64-bit sequence numbers,
 * the "timestamp" attribute, the conversion of tortie's v1 records, the config's
 * precedence, reservations, and pool selection by allowedUses and assignmentMode.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { selectPools, type PoolSpec } from '../../src/cni/pools.js';
import { checkConfig, DEFAULT_CONFIG, effectiveConfig } from '../../src/ipam/config.js';
import { parseCidr } from '../../src/ipam/ipv4.js';
import { parseJson, parseJsonSlowly, stringifyJson } from '../../src/ipam/json.js';
import { IpamKeys } from '../../src/ipam/keys.js';
import { convertLegacyIpam } from '../../src/ipam/legacy.js';
import { exportRecord, importRecords } from '../../src/ipam/transfer.js';
import { enabledPools } from '../../src/ipam/pools.js';
import {
  allocationNode,
  allocationTime,
  calicoTimestamp,
  encodeBlock,
  freeOrdinal,
  newBlock,
  parseAffinity,
  parseBlock,
  parseHandle,
  parseStoredConfig,
  withAllocation,
  withoutAllocations,
} from '../../src/ipam/records.js';
import { parseReservations } from '../../src/ipam/reservations.js';

const fixture = (name: string) =>
  readFileSync(new URL(`../fixtures/calico-ipam/${name}`, import.meta.url), 'utf8').trim();

const cidr = parseCidr('10.65.0.0/29');
const KEY = '/calico/ipam/v2/assignment/ipv4/block/10.65.0.0-29';

describe("Calico's records", () => {
  it('reads a block Calico wrote: allocations with handle, attributes and sequence number', () => {
    const b = parseBlock(KEY, fixture('block.json'), cidr);
    expect(b.affinity).toBe('host:node-a');
    expect(b.allocations.map((a) => [a.ordinal, a.handle])).toEqual([
      [0, 'k8s-pod-network.1f2e3d'],
      [2, 'ipip-tunnel-addr-node-a'],
      [3, 'k8s-pod-network.4c5b6a'],
    ]);
    expect(b.allocations[2]!.attrs).toMatchObject({ pod: 'web-1', namespace: 'prod' });
    expect(b.unallocated).toEqual([4, 5, 6, 7, 1]);
    // Past 2^53: read exactly, as bigints.
    expect(b.seq).toBe(1717236672123456795n);
    expect(b.allocations[0]!.seq).toBe(1717236672123456789n);
    // The node that asked (borrowed by node-b), else the block's node.
    expect(b.allocations.map((a) => allocationNode(b, a))).toEqual(['node-a', 'node-a', 'node-b']);
    expect(allocationTime(b.allocations[0]!)?.toISOString()).toBe('2024-06-01T10:11:12.123Z');
    expect(allocationTime(b.allocations[1]!)).toBeUndefined();
  });

  it('refuses a block whose ordinal is both free and allocated, naming the key', () => {
    const text = fixture('block.json').replace('"unallocated": [4,', '"unallocated": [0,');
    expect(() => parseBlock(KEY, text, cidr)).toThrow(
      `stored block ${KEY} lists ordinal 0 as both free and allocated`,
    );
    expect(() => parseBlock(KEY, fixture('block.json'), parseCidr('10.65.0.8/29'))).toThrow(
      /says its cidr is 10.65.0.0\/29/,
    );
    expect(() => parseBlock(KEY, '{"cidr":', cidr)).toThrow(/is not JSON/);
  });

  it('writes a block back as Calico stores it, sequence numbers digit for digit', () => {
    const text = fixture('block.json');
    const b = parseBlock(KEY, text, cidr);
    const again = encodeBlock(b, cidr);
    expect(parseBlock(KEY, again, cidr)).toEqual(b);
    expect(again).toContain('"sequenceNumber":1717236672123456795');
    expect(again).toContain('"0":1717236672123456789');
    expect(Object.keys(JSON.parse(again) as object)).toEqual([
      'cidr',
      'affinity',
      'allocations',
      'unallocated',
      'attributes',
      'sequenceNumber',
      'sequenceNumberForAllocation',
      'deleted',
    ]);
  });

  it('allocates as Calico: the next of "unallocated", the block number recorded, released ones last', () => {
    let b = parseBlock(KEY, fixture('block.json'), cidr);
    const o = freeOrdinal(b, cidr)!;
    expect(o).toBe(4);
    const at = new Date('2026-12-07T03:37:38.120Z');
    b = withAllocation(b, o, { handle: 'h', node: 'node-a', attrs: { pod: 'p' }, at });
    const mine = b.allocations.find((a) => a.ordinal === 4)!;
    expect(mine.seq).toBe(1717236672123456795n);
    expect(b.seq).toBe(1717236672123456796n);
    expect(mine.attrs).toEqual({
      pod: 'p',
      node: 'node-a',
      timestamp: '2026-12-07 03:37:38.12 +0000 UTC',
    });
    b = withoutAllocations(b, (a) => a.ordinal === 0).block;
    expect(b.unallocated).toEqual([5, 6, 7, 1, 0]);
    // Attributes shared by equal allocations are stored once, as Calico's findOrAddAttribute.
    const two = withAllocation(
      withAllocation(newBlock(cidr, 'n'), 0, { handle: 'h', node: 'n', attrs: {}, at }),
      1,
      { handle: 'h', node: 'n', attrs: {}, at },
    );
    const stored = JSON.parse(encodeBlock(two, cidr)) as {
      allocations: unknown[];
      attributes: unknown[];
    };
    expect(stored.allocations.slice(0, 3)).toEqual([0, 0, null]);
    expect(stored.attributes).toHaveLength(1);
  });

  it('reads handles, affinities and the config record', () => {
    expect(parseHandle('k', fixture('handle.json'), 'k8s-pod-network.1f2e3d')).toEqual({
      handle: 'k8s-pod-network.1f2e3d',
      blocks: { '10.65.0.0/29': 1 },
    });
    expect(parseAffinity('k', fixture('affinity.json'))).toEqual({
      state: 'confirmed',
      deleted: false,
    });
    expect(parseStoredConfig('k', fixture('config.json'))).toEqual({
      strictAffinity: true,
      autoAllocateBlocks: true,
      maxBlocksPerHost: 0,
    });
    expect(() => parseAffinity('k', '{"state":"sure"}')).toThrow(
      /stored record k is malformed: state/,
    );
  });

  it('JSON with 64-bit integers: bigints past 2^53 only, everything else as JSON.parse', () => {
    const text = '{"a":[1,-2.5e3,9007199254740993,"9007199254740993",true,null],"b":{"\\"x":{}}}';
    expect(parseJson(text)).toEqual({
      a: [1, -2500, 9007199254740993n, '9007199254740993', true, null],
      b: { '"x': {} },
    });
    expect(stringifyJson(parseJson(text))).toBe(
      '{"a":[1,-2500,9007199254740993,"9007199254740993",true,null],"b":{"\\"x":{}}}',
    );
    for (const bad of ['{', '[1,]', '{"a" 1}', '1 2', 'nul'])
      expect(() => parseJson(bad)).toThrow();
    // The fast path agrees with the reference parser, also on numbers that only look big
    // and on strings that hold long digit runs or the mark's escape.
    for (const t of [
      fixture('block.json'),
      text,
      '[1e1234567890123456,-12345678901234567,12345678901234567.5,"\\u0000123","a:1234567890123456789"]',
      '{"x":"\\"12345678901234567890","y":[12345678901234567890, 0.12345678901234567890]}',
      '{"k":"a\\\\","n":12345678901234567890}',
    ])
      expect(parseJson(t)).toEqual(parseJsonSlowly(t));
    expect(parseJson('{"k":"a\\\\","n":12345678901234567890}')).toEqual({
      k: 'a\\',
      n: 12345678901234567890n,
    });
  });

  it("formats the timestamp as Go's time.String() of a UTC time, and reads both forms", () => {
    expect(calicoTimestamp(new Date('2026-01-02T03:04:05.000Z'))).toBe(
      '2026-01-02 03:04:05 +0000 UTC',
    );
    const a = (timestamp: string) => ({ ordinal: 0, handle: 'h', attrs: { timestamp }, seq: 0n });
    expect(allocationTime(a('2026-01-02 03:04:05.5 +0100 CET'))?.toISOString()).toBe(
      '2026-01-02T02:04:05.500Z',
    );
    expect(allocationTime(a('2026-01-02T03:04:05Z'))?.toISOString()).toBe(
      '2026-01-02T03:04:05.000Z',
    );
    expect(allocationTime(a('yesterday'))).toBeUndefined();
  });
});

describe('converting v1 records', () => {
  const at = '2025-03-04T05:06:07.000Z';
  const v1 = [
    {
      key: '/tortie/ipam/v1/blocks/10.65.0.0-29',
      value: JSON.stringify({
        cidr: '10.65.0.0/29',
        affinity: 'host:n1',
        allocations: [
          {
            ordinal: 2,
            handle: 'net.c1',
            node: 'n2',
            allocatedAt: at,
            seq: 4,
            attrs: { namespace: 'prod', workload: 'web' },
          },
        ],
        nextOrdinal: 3,
        seq: 5,
      }),
    },
    {
      key: '/tortie/ipam/v1/handles/net.c1',
      value: JSON.stringify({ handle: 'net.c1', blocks: { '10.65.0.0/29': [2] } }),
    },
    {
      key: '/tortie/ipam/v1/affinity/n1/10.65.0.0-29',
      value: JSON.stringify({ node: 'n1', cidr: '10.65.0.0/29', claimedAt: at }),
    },
    { key: '/tortie/ipam/v1/blocks/10.65.0.8-29', value: '{"cidr":"10.65.0.8/29"}' },
    { key: '/tortie/other', value: '{}' },
  ];

  it("turns blocks, handles and affinities into Calico's, keeping every allocation", () => {
    const r = convertLegacyIpam(v1, { from: '/tortie', to: '/calico' });
    const keys = new IpamKeys('/calico');
    expect(r.records.map((x) => x.key)).toEqual([
      keys.block(cidr),
      keys.handle('net.c1'),
      keys.affinity('n1', cidr),
    ]);
    expect(r.converted).toEqual(v1.slice(0, 3).map((x) => x.key));
    expect(r.skipped.map((s) => s.key)).toEqual([v1[3]!.key, v1[4]!.key]);
    expect(r.skipped[0]!.reason).toMatch(/malformed/);
    const b = parseBlock(r.records[0]!.key, r.records[0]!.value, cidr);
    expect(b.allocations).toEqual([
      {
        ordinal: 2,
        handle: 'net.c1',
        attrs: {
          namespace: 'prod',
          workload: 'web',
          pod: 'web',
          node: 'n2',
          timestamp: '2025-03-04 05:06:07 +0000 UTC',
        },
        seq: 4n,
      },
    ]);
    expect(allocationTime(b.allocations[0]!)?.toISOString()).toBe(at);
    // The free ordinals from the old cursor on.
    expect(b.unallocated).toEqual([3, 4, 5, 6, 7, 0, 1]);
    expect(JSON.parse(r.records[1]!.value)).toEqual({
      block: { '10.65.0.0/29': 1 },
      deleted: false,
    });
    expect(JSON.parse(r.records[2]!.value)).toEqual({ state: 'confirmed', deleted: false });
  });
});

describe('the IPAM configuration', () => {
  it("takes the request's, else the stored record's, else the defaults", () => {
    const stored = { strictAffinity: true, autoAllocateBlocks: true, maxBlocksPerHost: 0 };
    const requested = checkConfig({ maxBlocksPerHost: 3 });
    expect(requested).toEqual({ ...DEFAULT_CONFIG, maxBlocksPerHost: 3 });
    expect(effectiveConfig(requested, stored, DEFAULT_CONFIG)).toBe(requested);
    expect(effectiveConfig(undefined, stored, DEFAULT_CONFIG)).toBe(stored);
    expect(effectiveConfig(undefined, undefined, DEFAULT_CONFIG)).toBe(DEFAULT_CONFIG);
    expect(() => checkConfig({ strictAffinity: 'yes' })).toThrow(/config.strictAffinity/);
    expect(() => checkConfig({ maxBlocksPerHost: -1 })).toThrow(/config.maxBlocksPerHost/);
  });
});

describe('reservations', () => {
  it('reserves addresses and CIDRs, and says when a whole block is reserved', () => {
    const r = parseReservations(['10.0.0.5', '10.0.1.0/24']);
    expect(r.has(parseCidr('10.0.0.5/32').base)).toBe(true);
    expect(r.has(parseCidr('10.0.0.6/32').base)).toBe(false);
    expect(r.covers(parseCidr('10.0.1.64/26'))).toBe(true);
    expect(r.covers(parseCidr('10.0.0.0/26'))).toBe(false);
    expect(() => parseReservations(['10.0.0.1/8'])).toThrow(/reserved\[0\]/);
  });
});

describe('pools by use and assignment mode', () => {
  const pools: PoolSpec[] = [
    { name: 'auto', cidr: '10.1.0.0/16', blockSize: 26 },
    { name: 'manual', cidr: '10.2.0.0/16', blockSize: 26, assignmentMode: 'Manual' },
    { name: 'tunnel', cidr: '10.3.0.0/16', blockSize: 26, allowedUses: ['Tunnel'] },
  ];
  const node = { name: 'n1', labels: {} };

  it('pods get Automatic Workload pools unless a Manual one is named', () => {
    expect(selectPools(pools, node).map((p) => p.name)).toEqual(['auto']);
    expect(selectPools(pools, node, ['manual']).map((p) => p.name)).toEqual(['manual']);
    expect(() => selectPools(pools, node, ['tunnel'])).toThrow(/is not for pods/);
    expect(() => selectPools(pools.slice(1), node)).toThrow(
      /manual .* is Manual .*; tunnel .* is not for pods/,
    );
  });

  it('IPAM uses a pool only for what its allowedUses allow', () => {
    expect(enabledPools(pools, 'Tunnel').map((p) => p.spec.name)).toEqual([
      'auto',
      'manual',
      'tunnel',
    ]);
    expect(() => enabledPools(pools.slice(2), 'Workload')).toThrow(
      /no enabled pool allows use Workload \(allowedUses of tunnel: Tunnel\)/,
    );
  });
});

describe('export and import of IPAM records', () => {
  it('carries 64-bit sequence numbers as digits and writes them back exactly', () => {
    const keys = new IpamKeys('/calico');
    const exported = exportRecord(keys, keys.block(cidr), fixture('block.json'));
    expect(exported.key).toBe('assignment/ipv4/block/10.65.0.0-29');
    expect((exported.value as { sequenceNumber: unknown }).sequenceNumber).toBe(
      '1717236672123456795',
    );
    // Through YAML/JSON and back: the same record.
    const [back] = importRecords('/calico', [JSON.parse(JSON.stringify(exported))]);
    expect(back!.key).toBe(keys.block(cidr));
    expect(parseBlock(back!.key, back!.text, cidr)).toEqual(
      parseBlock(KEY, fixture('block.json'), cidr),
    );
  });

  it("converts an older export's v1 records, and refuses a record IPAM cannot read", () => {
    const [h] = importRecords('/calico', [
      { key: 'handles/net.c1', value: { handle: 'net.c1', blocks: { '10.65.0.0/29': [2, 3] } } },
    ]);
    expect(h).toEqual({
      key: '/calico/ipam/v2/handle/net.c1',
      text: '{"block":{"10.65.0.0/29":2},"deleted":false}',
    });
    expect(() => importRecords('/calico', [{ key: 'handle/x', value: { ips: [] } }])).toThrow(
      /records\[0\] \(handle\/x\): stored record .* is malformed: block/,
    );
    expect(() => importRecords('/calico', [{ key: 'nope/x', value: {} }])).toThrow(
      /not an IPAM record key/,
    );
  });
});
