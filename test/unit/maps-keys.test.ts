/** Address helpers, the key arithmetic of the two policy stages and where each entry is stored. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import {
  icmpPort,
  ipToU32,
  l4Value,
  polAddrKey,
  polAddrSlot,
  polL4Key,
  polL4Slot,
  polSportKey,
  u32ToIp,
} from '../../src/maps/index.js';

describe('IPv4 addresses as numbers', () => {
  it('reads a dotted quad as its host-order value', () => {
    expect(ipToU32('10.0.0.1')).toBe(0x0a000001);
    expect(ipToU32('255.255.255.255')).toBe(0xffffffff);
    expect(ipToU32('0.0.0.0')).toBe(0);
  });

  it('round-trips every 32-bit value', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (v) => ipToU32(u32ToIp(v)) === v),
    );
  });

  it.each(['256.0.0.1', '1.2.3', '1.2.3.4.5', ' 1.2.3.4', '010.0.0.1', 'a.b.c.d', ''])(
    'refuses %j',
    (bad) => {
      expect(() => ipToU32(bad)).toThrow(/not an IPv4 address/);
    },
  );

  it('refuses numbers that are no address', () => {
    expect(() => u32ToIp(-1)).toThrow(/not a 32-bit address value/);
    expect(() => u32ToIp(2 ** 32)).toThrow();
    expect(() => u32ToIp(1.5)).toThrow();
  });
});

describe('policy LPM keys', () => {
  it('covers the set id in full and the address by its prefix, host bits cleared', () => {
    expect(polAddrKey(3, ipToU32('10.1.2.3'), 8)).toEqual({
      prefixlen: 40,
      set_id: 3,
      addr: ipToU32('10.0.0.0'),
    });
    expect(polAddrKey(3, ipToU32('10.1.2.3'), 32)).toEqual({
      prefixlen: 64,
      set_id: 3,
      addr: ipToU32('10.1.2.3'),
    });
    expect(polAddrKey(3, ipToU32('10.1.2.3'), 0)).toEqual({ prefixlen: 32, set_id: 3, addr: 0 });
  });

  it('packs (proto, port) as proto << 16 | port, and ICMP as (type << 8) | code', () => {
    expect(l4Value(6, 80)).toBe(0x060050);
    expect(l4Value(1, icmpPort(8, 0))).toBe(0x010800);
    expect(icmpPort(3, 3)).toBe(0x0303);
  });

  it('starts l4 prefixes at 40 (class and zero byte) and clears bits beyond the prefix', () => {
    expect(polL4Key(9, l4Value(6, 80), 24)).toEqual({ prefixlen: 64, class_id: 9, l4: 0x060050 });
    expect(polL4Key(9, l4Value(6, 80), 8)).toEqual({ prefixlen: 48, class_id: 9, l4: 0x060000 });
    expect(polL4Key(9, l4Value(6, 80), 0)).toEqual({ prefixlen: 40, class_id: 9, l4: 0 });
  });

  it('refuses prefix lengths and values outside their stage', () => {
    expect(() => polAddrKey(1, 0, 33)).toThrow(/address prefix length 33/);
    expect(() => polL4Key(1, 0, 25)).toThrow(/l4 prefix length 25/);
    expect(() => polL4Key(1, 0x1000000, 24)).toThrow(/not 24 bits/);
    expect(() => l4Value(256, 0)).toThrow(/protocol 256/);
    expect(() => l4Value(6, 65536)).toThrow(/port 65536/);
  });

  it('starts source-port prefixes at 48 (class and 16 zero bits) and clears bits beyond', () => {
    expect(polSportKey(7, 40005, 16)).toEqual({ prefixlen: 64, class_id: 7, sport: 40005 });
    expect(polSportKey(7, 40005, 8)).toEqual({ prefixlen: 56, class_id: 7, sport: 0x9c00 });
    expect(polSportKey(7, 40005, 0)).toEqual({ prefixlen: 48, class_id: 7, sport: 0 });
    expect(() => polSportKey(7, 0, 17)).toThrow(/source-port prefix length 17/);
    expect(() => polSportKey(7, 65536, 16)).toThrow(/source port 65536/);
  });
});

describe('policy entries by prefix length: exact hashes, tries, class defaults', () => {
  it('stores a /32 in tortie_pol_ip32, keyed by set and address', () => {
    expect(polAddrSlot(3, ipToU32('10.1.2.3'), 32)).toEqual({
      map: 'polIp32',
      key: { set_id: 3, addr: ipToU32('10.1.2.3') },
    });
  });

  it('stores every shorter address prefix, /0 included, in the tortie_pol_addr trie', () => {
    for (const bits of [0, 1, 8, 24, 31]) {
      expect(polAddrSlot(3, ipToU32('10.1.2.3'), bits)).toEqual({
        map: 'polAddr',
        key: polAddrKey(3, ipToU32('10.1.2.3'), bits),
      });
    }
  });

  it('stores an exact (proto, port) in tortie_pol_port, keyed by class and l4', () => {
    expect(polL4Slot(9, l4Value(6, 80), 24)).toEqual({
      map: 'polPort',
      key: { class_id: 9, l4: 0x060050 },
    });
  });

  it('stores a class default (0 bits) in tortie_pol_dflt, keyed by the class id alone', () => {
    expect(polL4Slot(9, 0, 0)).toEqual({ map: 'polDflt', key: 9 });
  });

  it('stores port ranges and whole protocols (1..23 bits) in the tortie_pol_l4 trie', () => {
    for (const bits of [1, 8, 16, 23]) {
      expect(polL4Slot(9, l4Value(6, 80), bits)).toEqual({
        map: 'polL4',
        key: polL4Key(9, l4Value(6, 80), bits),
      });
    }
  });

  it('gives distinct entries of a stage distinct (map, key) slots', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            set: fc.integer({ min: 1, max: 3 }),
            addr: fc.integer({ min: 0, max: 0xffffffff }),
            bits: fc.integer({ min: 0, max: 32 }),
          }),
        ),
        (entries) => {
          const prefixes = new Set(
            entries.map((e) => JSON.stringify(polAddrKey(e.set, e.addr, e.bits))),
          );
          const slots = new Set(
            entries.map((e) => JSON.stringify(polAddrSlot(e.set, e.addr, e.bits))),
          );
          return prefixes.size === slots.size;
        },
      ),
    );
  });

  it('refuses prefix lengths outside their stage, as the key builders do', () => {
    expect(() => polAddrSlot(1, 0, 33)).toThrow(/address prefix length 33/);
    expect(() => polL4Slot(1, 0, 25)).toThrow(/l4 prefix length 25/);
  });
});
