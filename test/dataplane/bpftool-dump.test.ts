/**
 * Users read tortie's state with bpftool. Every pinned map must carry BTF so that
 * `bpftool map dump pinned <root>/<map>` prints field names, not hex bytes.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDataplane, removePins, type Dataplane } from '../../src/loader/index.js';
import { MAPS, type MapSpec } from '../../src/maps/catalog.js';
import type { Codec } from '../../src/maps/codec.js';
import { native } from '../../src/native/index.js';
import { newRunId } from '../helpers/netns.js';

const pinRoot = `/sys/fs/bpf/tortie-t${newRunId()}`;

type Formatted = { key?: unknown; value?: unknown; values?: { value: unknown }[] };

function dump(name: string): Formatted[] {
  const out = execFileSync('bpftool', ['-j', 'map', 'dump', 'pinned', `${pinRoot}/${name}`], {
    encoding: 'utf8',
  });
  return (JSON.parse(out) as { formatted?: Formatted }[]).map((e) => e.formatted ?? {});
}

/** The member names of a formatted struct (an object) — scalars have none. */
function names(v: unknown): string[] {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? Object.keys(v) : [];
}

describe('bpftool shows named fields for every pinned map', () => {
  let dp: Dataplane;

  beforeAll(() => {
    dp = loadDataplane({ pinRoot });
    // One all-zero entry in every map that has none, so there is something to print.
    for (const spec of Object.values(MAPS) as MapSpec<unknown, unknown>[]) {
      const map = native.openPinnedMap(`${pinRoot}/${spec.name}`);
      const info = map.info();
      if (map.entries().keys.length === 0) {
        const valueBytes = spec.perCpu
          ? native.possibleCpus() * Math.ceil(info.valueSize / 8) * 8
          : info.valueSize;
        map.update(Buffer.alloc(info.keySize), Buffer.alloc(valueBytes));
      }
      map.close();
    }
  });

  afterAll(() => {
    dp?.close();
    removePins(pinRoot);
  });

  for (const spec of Object.values(MAPS) as MapSpec<unknown, unknown>[]) {
    it(`${spec.name}: keys and values print with their C field names`, () => {
      const entries = dump(spec.name);
      expect(entries.length).toBeGreaterThan(0);
      const first = entries[0]!;
      expect(first.key, 'no BTF-formatted key').toBeDefined();
      const value = spec.perCpu ? first.values?.[0]?.value : first.value;
      expect(value, 'no BTF-formatted value').toBeDefined();
      // Struct keys and values show exactly the codec's fields (padding aside).
      const fieldNames = (c: Codec<unknown>) =>
        c.fields.map((f) => f.name).filter((n) => !/^pad|^_/.test(n));
      const keyFields = fieldNames(spec.key);
      const valueFields = fieldNames(spec.value);
      if (keyFields.length > 1) expect(names(first.key)).toEqual(expect.arrayContaining(keyFields));
      if (valueFields.length > 1) expect(names(value)).toEqual(expect.arrayContaining(valueFields));
    });
  }
});
