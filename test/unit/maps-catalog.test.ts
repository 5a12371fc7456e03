/** The map catalogue: names the kernel keeps whole, and one map per pin. */
import { describe, expect, it } from 'vitest';

import {
  MAPS,
  PINNED_MAP_NAMES,
  XDP_PINNED_MAP_NAMES,
  type MapSpec,
} from '../../src/maps/index.js';

const ALL_PINS = [...PINNED_MAP_NAMES, ...XDP_PINNED_MAP_NAMES];

/** BPF_OBJ_NAME_LEN is 16: the kernel cuts a map's name to 15 characters. */
const KERNEL_NAME_MAX = 15;

describe('map catalogue', () => {
  it('names every map within the kernel limit, so bpftool shows the pin name', () => {
    const tooLong = ALL_PINS.filter((n) => n.length > KERNEL_NAME_MAX);
    expect(tooLong).toEqual([]);
  });

  it('pins no two maps under one name', () => {
    expect(new Set(ALL_PINS).size).toBe(ALL_PINS.length);
  });

  it('keeps each policy stage in one exact hash and one trie (plus the class defaults), and the source-port stage in one trie', () => {
    const typeOf = (spec: MapSpec<unknown, unknown>) => `${spec.name}:${spec.typeName}`;
    expect(
      [MAPS.polIp32, MAPS.polAddr, MAPS.polPort, MAPS.polL4, MAPS.polDflt, MAPS.polSport].map(
        typeOf,
      ),
    ).toEqual([
      'tortie_pol_ip32:hash',
      'tortie_pol_addr:lpm_trie',
      'tortie_pol_port:hash',
      'tortie_pol_l4:lpm_trie',
      'tortie_pol_dflt:hash',
      'tortie_pol_sprt:lpm_trie',
    ]);
  });
});
