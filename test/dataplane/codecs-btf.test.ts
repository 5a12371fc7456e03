/**
 * The TypeScript codecs (src/maps/) against the compiled object's BTF: every struct of
 * bpf/tortie_maps.h must have a codec whose size and members (name, offset, size) are
 * exactly the C struct's, so a changed header cannot reach a node with stale codecs.
 * The structs are read from both objects (tc_policy.o and xdp_uplink.o): each
 * describes the structs its programs use, and both include the one header.
 * Reads the ELF only: no privileges needed, but the object must be built.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import { STRUCT_CODECS, type Codec } from '../../src/maps/index.js';
import { native, packageRoot } from '../../src/native/index.js';
import type { BtfStruct } from '../../src/native/types.js';
import { buildObject } from './bpf-harness.js';

const root = packageRoot();
const OBJECT = process.env.TORTIE_TEST_BPF_OBJECT ?? join(root, 'bpf', 'tc_policy.o');
const XDP_OBJECT = join(root, 'bpf', 'xdp_uplink.o');

/** The struct names the shared header declares. */
function headerStructs(): string[] {
  const header = readFileSync(join(root, 'bpf', 'tortie_maps.h'), 'utf8');
  return [...header.matchAll(/^struct\s+(\w+)\s*\{/gm)].map((m) => m[1]!);
}

let btf: Map<string, BtfStruct>;
const codecs = new Map<string, Codec<unknown>>(
  STRUCT_CODECS.map((c) => [c.cName, c as Codec<unknown>]),
);

beforeAll(() => {
  if (process.env.TORTIE_TEST_BPF_OBJECT === undefined) buildObject();
  // The tc object's description wins where both describe a struct (they must agree:
  // one header); the XDP object adds the structs only it uses.
  btf = new Map(
    [...native.btfStructs(XDP_OBJECT), ...native.btfStructs(OBJECT)].map((s) => [s.name, s]),
  );
});

describe('codecs mirror the C structs of bpf/tortie_maps.h', () => {
  it('finds the header declaring structs (the scan itself works)', () => {
    expect(headerStructs().length).toBeGreaterThanOrEqual(14);
  });

  it('has a codec for every struct the header declares', () => {
    const missing = headerStructs().filter((name) => !codecs.has(name));
    expect(missing).toEqual([]);
  });

  it("finds every header struct in the object's BTF (so the comparison below covers all)", () => {
    const absent = headerStructs().filter((name) => !btf.has(name));
    expect(absent).toEqual([]);
  });

  it.each(STRUCT_CODECS.map((c) => [c.cName, c] as const))(
    '%s: same size and members as in BTF',
    (name, codec) => {
      const c = btf.get(name);
      expect(c, `struct ${name} is not in the BTF of ${OBJECT}`).toBeDefined();
      expect({ size: codec.size, members: codec.fields }).toEqual({
        size: c!.size,
        members: c!.members.map(({ name: n, offset, size }) => ({ name: n, offset, size })),
      });
    },
  );
});
