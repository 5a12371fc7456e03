/**
 * The struct codecs of src/maps: round trips, byte order (addresses and ports
 * big-endian, the rest little-endian), zeroed padding, and errors that name the field.
 * (Their layout against the compiled C lives in test/dataplane/codecs-btf.test.ts.)
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import {
  ctEntryCodec,
  ctKeyCodec,
  defineStruct,
  endpointCodec,
  eventCodec,
  ipToU32,
  metricsKeyCodec,
  polL4KeyCodec,
  STRUCT_CODECS,
  u32Codec,
  u64Codec,
  verdictCodec,
  type Codec,
} from '../../src/maps/index.js';

/** Random values for every non-padding member, from the member's size. */
function valuesOf(codec: Codec<unknown>): fc.Arbitrary<Record<string, number | bigint>> {
  const shape: Record<string, fc.Arbitrary<number | bigint>> = {};
  for (const f of codec.fields) {
    if (f.name === 'pad') continue;
    shape[f.name] =
      f.size === 8 ? fc.bigUintN(64) : fc.integer({ min: 0, max: 2 ** (8 * f.size) - 1 });
  }
  return fc.record(shape);
}

describe('struct codecs', () => {
  it.each(STRUCT_CODECS.map((c) => [c.cName, c as Codec<unknown>] as const))(
    '%s: decode(encode(v)) is v, in exactly size bytes with zeroed padding',
    (_name, codec) => {
      fc.assert(
        fc.property(valuesOf(codec), (v) => {
          const buf = codec.encode(v);
          expect(buf.length).toBe(codec.size);
          expect(codec.decode(buf)).toEqual(v);
          for (const pad of codec.fields.filter((f) => f.name === 'pad')) {
            expect([...buf.subarray(pad.offset, pad.offset + pad.size)]).toEqual(
              Array(pad.size).fill(0),
            );
          }
        }),
      );
    },
  );

  it('writes addresses big-endian and other integers little-endian (tortie_endpoint)', () => {
    const buf = endpointCodec.encode({
      ip: ipToU32('10.0.0.1'),
      id: 0x01020304,
      ingress_set: 1,
      egress_set: 2,
      policy_rev: 3,
      flags: 0,
    });
    expect(buf.toString('hex')).toBe(
      '0a000001' + '04030201' + '01000000' + '02000000' + '03000000' + '00000000',
    );
  });

  it('writes ports big-endian and lays the conntrack key out as the kernel hashes it', () => {
    const key = ctKeyCodec.encode({
      saddr: ipToU32('10.0.0.1'),
      daddr: ipToU32('10.0.0.2'),
      sport: 40000,
      dport: 80,
      proto: 6,
      icmp_query: 0,
    });
    expect(key.toString('hex')).toBe(
      '0a000001' + '0a000002' + '9c40' + '0050' + '06' + '00' + '0000',
    );
    const echo = ctKeyCodec.encode({
      saddr: ipToU32('10.0.0.1'),
      daddr: ipToU32('10.0.0.2'),
      sport: 0x1234,
      dport: 0x1234,
      proto: 1,
      icmp_query: 8,
    });
    expect(echo.toString('hex')).toBe(
      '0a000001' + '0a000002' + '1234' + '1234' + '01' + '08' + '0000',
    );
  });

  it('writes the l4 tail of a policy key big-endian, so prefixes cover port ranges', () => {
    const key = polL4KeyCodec.encode({ prefixlen: 64, class_id: 5, l4: (6 << 16) | 443 });
    expect(key.toString('hex')).toBe('40000000' + '05000000' + '000601bb');
  });

  it('decodes u64 members as bigints', () => {
    const entry = ctEntryCodec.decode(Buffer.alloc(ctEntryCodec.size, 0xff));
    expect(entry.created_ns).toBe(2n ** 64n - 1n);
    expect(entry.state).toBe(0xff);
  });

  it('decodes at an offset inside a larger buffer', () => {
    const one = verdictCodec.encode({ action: 1, flags: 1, reserved: 0, rule_id: 42 });
    const buf = Buffer.concat([Buffer.alloc(3), one]);
    expect(verdictCodec.decode(buf, 3)).toEqual({ action: 1, flags: 1, reserved: 0, rule_id: 42 });
  });

  it('refuses a value out of its member range, naming struct and member', () => {
    const good = { ep_id: 1, reason: 64, dir: 0 };
    expect(() => metricsKeyCodec.encode({ ...good, reason: 256 })).toThrow(
      /tortie_metrics_key\.reason.*0\.\.255/,
    );
    expect(() => metricsKeyCodec.encode({ ...good, ep_id: -1 })).toThrow(
      /tortie_metrics_key\.ep_id/,
    );
    expect(() => metricsKeyCodec.encode({ ...good, ep_id: 1.5 })).toThrow(
      /tortie_metrics_key\.ep_id/,
    );
    expect(() =>
      ctEntryCodec.encode({
        ...ctEntryCodec.decode(Buffer.alloc(40)),
        created_ns: 1 as unknown as bigint,
      }),
    ).toThrow(/tortie_ct_entry\.created_ns: expected a u64 bigint/);
  });

  it('refuses a value with a member missing', () => {
    expect(() => metricsKeyCodec.encode({ ep_id: 1, reason: 1 } as never)).toThrow(
      /tortie_metrics_key: field dir is missing/,
    );
  });

  it('refuses to decode a buffer shorter than the struct', () => {
    expect(() => eventCodec.decode(Buffer.alloc(39))).toThrow(
      /tortie_event: need 40 bytes at offset 0, buffer has 39/,
    );
  });

  it('places members with C alignment and rounds the size up to the widest member', () => {
    const codec = defineStruct('demo', [
      ['a', 'u8'],
      ['b', 'u32'],
      ['c', 'u16'],
      ['d', 'u64'],
      ['e', 'u8'],
    ] as const);
    expect(codec.fields.map((f) => [f.name, f.offset])).toEqual([
      ['a', 0],
      ['b', 4],
      ['c', 8],
      ['d', 16],
      ['e', 24],
    ]);
    expect(codec.size).toBe(32);
  });

  it('refuses a struct that declares a member twice', () => {
    expect(() =>
      defineStruct('dup', [
        ['x', 'u8'],
        ['x', 'u8'],
      ] as const),
    ).toThrow(/dup: field x declared twice/);
  });

  it('codes bare scalars (map keys and values that are plain integers)', () => {
    expect(u32Codec.encode(1).toString('hex')).toBe('01000000');
    expect(u32Codec.decode(Buffer.from('2a000000', 'hex'))).toBe(42);
    expect(u64Codec.decode(u64Codec.encode(2n ** 63n))).toBe(2n ** 63n);
    expect(() => u32Codec.encode(2 ** 32)).toThrow(/__u32/);
  });
});
