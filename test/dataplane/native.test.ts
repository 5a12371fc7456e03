/**
 * The native binding against the real kernel (root): a fixture object compiled here
 * (test/fixtures/bpf/native_fixture.c) is opened, configured, loaded, run with
 * BPF_PROG_TEST_RUN, attached in a network namespace this file creates, pinned in a
 * bpffs directory of its own — all named with a per-run id and removed in afterAll.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { addonPath, isNativeError, native } from '../../src/native/index.js';
import { compileBpf } from '../helpers/bpf-build.js';
import { newRunId, runLinkName, runPrefix } from '../helpers/netns.js';
import type { BpfMap, BpfObject, NativeError } from '../../src/native/types.js';

const RUN = newRunId();
const PREFIX = runPrefix(RUN);
const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'bpf');
const BPFFS = `/sys/fs/bpf/${PREFIX}`;
const NETNS = `${PREFIX}-native`;
// A veth pair inside our namespace (this kernel has no dummy driver); IFNAMSIZ allows
// 15 characters. Programs are attached to the first end.
const LINK = runLinkName(RUN, 'a');
const PEER = runLinkName(RUN, 'b');

const TC_ACT_SHOT = 2;
const XDP_DROP = 1;
const XDP_PASS = 2;
const XDP_FLAGS_SKB_MODE = 2;

let buildDir = '';
let fixture = '';
let rejected = '';
const opened: { close(): void }[] = [];

function compile(name: string): string {
  return compileBpf(join(FIXTURES, `${name}.c`), join(buildDir, `${name}.o`));
}

/** Opens (and remembers, for afterAll) an object. */
function open(path: string, options?: { pinRoot?: string }): BpfObject {
  const object = native.openObject(path, options);
  opened.push(object);
  return object;
}

function loaded(configure?: (object: BpfObject) => void): BpfObject {
  const object = open(fixture);
  configure?.(object);
  object.load();
  return object;
}

function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value);
  return b;
}

function s32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32LE(value);
  return b;
}

/** struct fx_key { __u32 id; __u8 proto; __u8 pad; __u16 port; } */
function fxKey(id: number, proto = 6, port = 80): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(id, 0);
  b.writeUInt8(proto, 4);
  b.writeUInt16LE(port, 6);
  return b;
}

/** struct fx_val { __u64 packets; __s32 verdict; __u16 flags; __u8 tag[2]; } */
function fxVal(verdict: number, packets = 0n): Buffer {
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(packets, 0);
  b.writeInt32LE(verdict, 8);
  return b;
}

/** struct fx_lpm_key { __u32 prefixlen; __u32 addr; } with addr in network order. */
function lpmKey(prefixlen: number, addr: string): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(prefixlen, 0);
  Buffer.from(addr.split('.').map(Number)).copy(b, 4);
  return b;
}

/** A 64-byte Ethernet frame (contents do not matter to the fixture). */
function frame(): Buffer {
  const b = Buffer.alloc(64);
  b.writeUInt16BE(0x0800, 12);
  return b;
}

/** struct fx_event { __u32 mark, len, ifindex, seq; } */
function decodeEvent(b: Buffer): { mark: number; len: number; ifindex: number; seq: number } {
  return {
    mark: b.readUInt32LE(0),
    len: b.readUInt32LE(4),
    ifindex: b.readUInt32LE(8),
    seq: b.readUInt32LE(12),
  };
}

function catchNative(fn: () => unknown): NativeError {
  try {
    fn();
  } catch (error) {
    if (isNativeError(error)) return error;
    throw error;
  }
  throw new Error('expected the call to throw');
}

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8' });
}

function ifindexInNetns(name: string): number {
  const links = JSON.parse(ip('-n', NETNS, '-j', 'link', 'show', 'dev', name)) as {
    ifindex: number;
  }[];
  const index = links[0]?.ifindex;
  if (index === undefined) throw new Error(`no link ${name} in ${NETNS}`);
  return index;
}

/** Runs `fn` with the calling thread inside our namespace, and always comes back. */
function inNetns<T>(fn: () => T): T {
  const back = native.enterNetns(`/run/netns/${NETNS}`);
  try {
    return fn();
  } finally {
    native.restoreNetns(back);
  }
}

beforeAll(() => {
  buildDir = mkdtempSync(join(tmpdir(), `${PREFIX}-`));
  fixture = compile('native_fixture');
  rejected = compile('native_rejected');
  mkdirSync(BPFFS);
  ip('netns', 'add', NETNS);
  ip('-n', NETNS, 'link', 'add', LINK, 'type', 'veth', 'peer', 'name', PEER);
  ip('-n', NETNS, 'link', 'set', LINK, 'up');
  ip('-n', NETNS, 'link', 'set', PEER, 'up');
});

afterAll(() => {
  for (const object of opened) object.close();
  if (existsSync(`/run/netns/${NETNS}`)) ip('netns', 'del', NETNS);
  rmSync(BPFFS, { recursive: true, force: true });
  if (buildDir) rmSync(buildDir, { recursive: true, force: true });
});

describe('native binding: basics', () => {
  it('reports the libbpf version and a positive number of possible CPUs', () => {
    expect(native.libbpfVersion()).toMatch(/^\d+\.\d+$/);
    expect(native.possibleCpus()).toBeGreaterThan(0);
    expect(existsSync(addonPath())).toBe(true);
  });

  it('lists the programs and maps of a loaded object with their kernel info', () => {
    const object = loaded();
    expect(object.path).toBe(fixture);
    expect(object.programs().map((p) => [p.name, p.section])).toEqual([
      ['fx_tc', 'tc'],
      ['fx_xdp', 'xdp'],
    ]);
    for (const program of object.programs()) expect(program.fd).toBeGreaterThan(0);
    const names = object.maps().map((m) => m.info().name);
    expect(names).toEqual(expect.arrayContaining(['fx_hash', 'fx_percpu', 'fx_lpm', 'fx_events']));
    const info = object.map('fx_hash').info();
    expect(info).toMatchObject({
      name: 'fx_hash',
      typeName: 'hash',
      keySize: 8,
      valueSize: 16,
      maxEntries: 64,
    });
    expect(info.id).toBeGreaterThan(0);
    expect(info.btfKeyTypeId).toBeGreaterThan(0);
    expect(object.map('fx_lpm').info()).toMatchObject({ typeName: 'lpm_trie', flags: 1 });
    expect(object.map('fx_percpu').info()).toMatchObject({ typeName: 'percpu_hash', valueSize: 4 });
    expect(object.map('fx_events').info().typeName).toBe('ringbuf');
  });

  it('gives a map of an unloaded object fd -1 and refuses to read it', () => {
    const object = open(fixture);
    const map = object.map('fx_hash');
    expect(map.fd).toBe(-1);
    expect(map.info()).toMatchObject({ name: 'fx_hash', keySize: 8, id: 0 });
    expect(catchNative(() => map.lookup(fxKey(1))).code).toBe('EBADF');
  });

  it('makes every wrapper of a closed object throw EBADF instead of using a stale fd', () => {
    const object = loaded();
    const map = object.map('fx_hash');
    const program = object.program('fx_tc');
    object.close();
    expect(map.fd).toBe(-1);
    expect(program.fd).toBe(-1);
    expect(catchNative(() => map.lookup(fxKey(1))).code).toBe('EBADF');
    expect(catchNative(() => object.map('fx_hash')).code).toBe('EBADF');
  });
});

describe('native binding: globals and test runs', () => {
  it('returns the compiled-in default when no global is set (.rodata 0 + .data 1)', () => {
    const object = loaded();
    const result = native.testRun(object.program('fx_tc').fd, { data: frame() });
    expect(result.retval).toBe(1);
    expect(result.data.length).toBe(64);
  });

  it('setGlobal on a volatile const (.rodata) and a .data variable changes the return', () => {
    const object = loaded((o) => {
      o.setGlobal('fx_default_verdict', s32(7));
      o.setGlobal('fx_default_bonus', s32(0));
    });
    expect(native.testRun(object.program('fx_tc').fd, { data: frame() }).retval).toBe(7);
  });

  it('returns the signed value the program wrote', () => {
    const object = loaded((o) => {
      o.setGlobal('fx_default_verdict', s32(-2));
      o.setGlobal('fx_default_bonus', s32(1));
    });
    expect(native.testRun(object.program('fx_tc').fd, { data: frame() }).retval).toBe(-1);
  });

  it('refuses setGlobal for an unknown name, a wrong size, a map, and after load', () => {
    const object = open(fixture);
    expect(catchNative(() => object.setGlobal('no_such_var', u32(1))).code).toBe('ENOENT');
    const wrongSize = catchNative(() => object.setGlobal('fx_default_verdict', Buffer.alloc(8)));
    expect(wrongSize.code).toBe('EINVAL');
    expect(wrongSize.message).toContain('4 bytes');
    expect(catchNative(() => object.setGlobal('fx_hash', Buffer.alloc(4))).code).toBe('EINVAL');
    object.load();
    expect(catchNative(() => object.setGlobal('fx_default_verdict', u32(1))).code).toBe('EBUSY');
  });

  it('passes ctx.mark to the program: a hash entry keyed by the mark decides the verdict', () => {
    const object = loaded();
    const hash = object.map('fx_hash');
    hash.update(fxKey(42), fxVal(TC_ACT_SHOT));
    const fd = object.program('fx_tc').fd;
    expect(native.testRun(fd, { data: frame(), ctx: { mark: 42, ifindex: 1 } }).retval).toBe(
      TC_ACT_SHOT,
    );
    expect(native.testRun(fd, { data: frame(), ctx: { mark: 43 } }).retval).toBe(1);
    const value = hash.lookup(fxKey(42));
    expect(value?.readBigUInt64LE(0)).toBe(1n);
  });

  it('repeats a run and reports the kernel-measured duration', () => {
    const object = loaded();
    const result = native.testRun(object.program('fx_tc').fd, { data: frame(), repeat: 1000 });
    expect(result.retval).toBe(1);
    expect(result.durationNs).toBeGreaterThan(0);
  });

  it('runs the XDP program, which reads the LPM trie', () => {
    const object = loaded();
    const fd = object.program('fx_xdp').fd;
    expect(native.testRun(fd, { data: frame() }).retval).toBe(XDP_PASS);
    object.map('fx_lpm').update(lpmKey(32, '0.0.0.0'), u32(XDP_DROP));
    expect(native.testRun(fd, { data: frame() }).retval).toBe(XDP_DROP);
  });

  it('fails a run whose output does not fit dataSizeOut with ENOSPC', () => {
    const object = loaded();
    const error = catchNative(() =>
      native.testRun(object.program('fx_tc').fd, { data: frame(), dataSizeOut: 10 }),
    );
    expect(error.code).toBe('ENOSPC');
  });
});

describe('native binding: map operations', () => {
  let object: BpfObject;
  let hash: BpfMap;
  beforeAll(() => {
    object = loaded();
    hash = object.map('fx_hash');
  });

  it('looks up, updates with BPF_NOEXIST/BPF_EXIST and deletes one entry', () => {
    expect(hash.lookup(fxKey(1))).toBeNull();
    hash.update(fxKey(1), fxVal(3), 1);
    expect(hash.lookup(fxKey(1))).toEqual(fxVal(3));
    expect(catchNative(() => hash.update(fxKey(1), fxVal(4), 1)).code).toBe('EEXIST');
    expect(catchNative(() => hash.update(fxKey(2), fxVal(4), 2)).code).toBe('ENOENT');
    hash.update(fxKey(1), fxVal(4), 2);
    expect(hash.lookup(fxKey(1))?.readInt32LE(8)).toBe(4);
    expect(hash.delete(fxKey(1))).toBe(true);
    expect(hash.delete(fxKey(1))).toBe(false);
  });

  it('refuses a key or value of the wrong size with EINVAL naming the sizes', () => {
    const error = catchNative(() => hash.lookup(Buffer.alloc(4)));
    expect(error.code).toBe('EINVAL');
    expect(error.message).toContain('fx_hash');
    expect(error.message).toContain('expected 8');
    expect(catchNative(() => hash.update(fxKey(1), Buffer.alloc(15))).code).toBe('EINVAL');
  });

  it('writes a batch into a hash map and lists it with entries()', () => {
    const ids = [10, 11, 12, 13, 14, 15];
    const written = hash.updateBatch(
      Buffer.concat(ids.map((id) => fxKey(id))),
      Buffer.concat(ids.map((id) => fxVal(id * 2))),
    );
    expect(written).toBe(ids.length);
    const { keys, values } = hash.entries();
    expect(keys.map((k) => k.readUInt32LE(0)).sort((a, b) => a - b)).toEqual(ids);
    keys.forEach((key, i) => expect(values[i]?.readInt32LE(8)).toBe(key.readUInt32LE(0) * 2));
  });

  it('deletes a batch, skipping absent keys, and counts only what it deleted', () => {
    const keys = Buffer.concat([fxKey(10), fxKey(99), fxKey(11), fxKey(98), fxKey(12)]);
    expect(hash.deleteBatch(keys)).toBe(3);
    const left = hash
      .entries()
      .keys.map((k) => k.readUInt32LE(0))
      .sort((a, b) => a - b);
    expect(left).toEqual([13, 14, 15]);
  });

  it('fails a batch whose values do not match the key count', () => {
    expect(catchNative(() => hash.updateBatch(fxKey(1), Buffer.alloc(32))).code).toBe('EINVAL');
    expect(catchNative(() => hash.updateBatch(Buffer.alloc(7), Buffer.alloc(16))).code).toBe(
      'EINVAL',
    );
  });

  it('batch-writes, lists and batch-deletes an LPM trie (single-element fallback)', () => {
    const lpm = object.map('fx_lpm');
    const prefixes = [lpmKey(8, '10.0.0.0'), lpmKey(16, '10.1.0.0'), lpmKey(24, '10.1.2.0')];
    expect(lpm.updateBatch(Buffer.concat(prefixes), Buffer.concat([u32(1), u32(2), u32(3)]))).toBe(
      3,
    );
    expect(lpm.lookup(lpmKey(32, '10.1.2.9'))).toEqual(u32(3)); // longest prefix match
    expect(lpm.lookup(lpmKey(32, '10.9.9.9'))).toEqual(u32(1));
    expect(lpm.entries().keys).toHaveLength(3);
    expect(
      lpm.deleteBatch(Buffer.concat([prefixes[0]!, lpmKey(24, '192.168.0.0'), prefixes[2]!])),
    ).toBe(2);
    expect(lpm.entries().keys).toEqual([prefixes[1]]);
  });

  it('reads a per-CPU map as possibleCpus slots of 8 bytes, summing to the runs made', () => {
    const percpu = object.map('fx_percpu');
    const cpus = native.possibleCpus();
    percpu.delete(u32(0));
    native.testRun(object.program('fx_tc').fd, { data: frame(), repeat: 25 });
    const value = percpu.lookup(u32(0));
    expect(value?.length).toBe(cpus * 8);
    let total = 0;
    for (let cpu = 0; cpu < cpus; cpu++) total += value!.readUInt32LE(cpu * 8);
    expect(total).toBe(25);

    const mine = Buffer.alloc(cpus * 8);
    mine.writeUInt32LE(5, 0);
    percpu.update(u32(1), mine);
    expect(percpu.lookup(u32(1))).toEqual(mine);
    expect(catchNative(() => percpu.update(u32(2), u32(5))).code).toBe('EINVAL');
    expect(percpu.updateBatch(Buffer.concat([u32(3), u32(4)]), Buffer.concat([mine, mine]))).toBe(
      2,
    );
    expect(percpu.entries().values.every((v) => v.length === cpus * 8)).toBe(true);
  });

  it('entries() of a map emptied under it returns nothing', () => {
    const lpm = object.map('fx_lpm');
    lpm.deleteBatch(Buffer.concat(lpm.entries().keys));
    expect(lpm.entries()).toEqual({ keys: [], values: [] });
  });
});

describe('native binding: pinning', () => {
  it('pins every non-internal map under pinRoot and a second load adopts them', () => {
    const root = `${BPFFS}/adopt`;
    const first = native.openObject(fixture, { pinRoot: root });
    first.load();
    first.map('fx_hash').update(fxKey(7), fxVal(TC_ACT_SHOT));
    const firstId = first.map('fx_hash').info().id;
    first.close();

    expect(readdirSync(root).sort()).toEqual(['fx_events', 'fx_hash', 'fx_lpm', 'fx_percpu']);

    const second = open(fixture, { pinRoot: root });
    second.load();
    const hash = second.map('fx_hash');
    expect(hash.info().id).toBe(firstId);
    expect(hash.lookup(fxKey(7))).toEqual(fxVal(TC_ACT_SHOT));
    // The adopted map is the one the new program reads.
    const run = native.testRun(second.program('fx_tc').fd, { data: frame(), ctx: { mark: 7 } });
    expect(run.retval).toBe(TC_ACT_SHOT);
  });

  it('opens a pinned map by path and sees the same entries', () => {
    const root = `${BPFFS}/open`;
    const object = open(fixture, { pinRoot: root });
    object.load();
    object.map('fx_hash').update(fxKey(5), fxVal(9));
    const pinned = native.openPinnedMap(`${root}/fx_hash`);
    try {
      expect(pinned.fd).toBeGreaterThan(0);
      expect(pinned.info()).toMatchObject({ name: 'fx_hash', keySize: 8, valueSize: 16 });
      expect(pinned.lookup(fxKey(5))).toEqual(fxVal(9));
      pinned.update(fxKey(6), fxVal(1));
      expect(object.map('fx_hash').lookup(fxKey(6))).toEqual(fxVal(1));
    } finally {
      pinned.close();
    }
    expect(pinned.fd).toBe(-1);
    expect(catchNative(() => pinned.lookup(fxKey(5))).code).toBe('EBADF');
  });

  it('fails the load when the pin at a map name is an incompatible map', () => {
    const root = `${BPFFS}/clash`;
    mkdirSync(root);
    const other = loaded();
    other.map('fx_lpm').pin(`${root}/fx_hash`); // an LPM trie where a hash is expected
    const object = open(fixture, { pinRoot: root });
    const error = catchNative(() => object.load());
    expect(error.code).toBe('EINVAL');
    expect(error.message).toContain('bpf_object__load');
    expect(error.libbpfLog).toMatch(/fx_hash/);
  });

  it('pins a program and runs it again through openPinnedProgram', () => {
    const object = loaded((o) => o.setGlobal('fx_default_verdict', s32(5)));
    const path = `${BPFFS}/prog_fx_tc`;
    object.program('fx_tc').pin(path);
    const pinned = native.openPinnedProgram(path);
    expect(pinned.name).toBe('fx_tc');
    expect(native.testRun(pinned.fd, { data: frame() }).retval).toBe(6);
    expect(catchNative(() => native.openPinnedProgram(`${BPFFS}/adopt/fx_hash`)).code).toBe(
      'EINVAL',
    );
  });
});

describe('native binding: errors', () => {
  it('throws ENOENT with errno 2 and the path for a missing pin', () => {
    const path = `${BPFFS}/missing`;
    const error = catchNative(() => native.openPinnedMap(path));
    expect(error).toBeInstanceOf(Error);
    expect(error.code).toBe('ENOENT');
    expect(error.errno).toBe(2);
    expect(error.message).toContain(path);
  });

  it('throws ENOENT for an object file that does not exist', () => {
    const error = catchNative(() => native.openObject(join(buildDir, 'absent.o')));
    expect(error.code).toBe('ENOENT');
    expect(error.message).toContain('bpf_object__open_file');
  });

  it('puts the verifier log of a rejected program in the message and libbpfLog', () => {
    const object = open(rejected);
    const error = catchNative(() => object.load());
    expect(error.code).toBe('EACCES');
    expect(error.errno).toBe(13);
    expect(error.message).toContain('invalid access to packet');
    expect(error.libbpfLog).toContain('BEGIN PROG LOAD LOG');
    expect(error.libbpfLog).toContain('fx_rejected');
  });

  it('does not carry an earlier call’s libbpf lines into a later error', () => {
    catchNative(() => open(rejected).load());
    const error = catchNative(() => native.openPinnedMap(`${BPFFS}/missing`));
    expect(error.libbpfLog).toBeUndefined();
    expect(error.message).not.toContain('invalid access');
  });
});

describe('native binding: ring buffer', () => {
  let object: BpfObject;
  beforeAll(() => {
    object = loaded();
  });

  it('consume() delivers each record the program wrote, synchronously, then nothing', () => {
    const records: Buffer[] = [];
    const ring = native.ringBuffer(object.map('fx_events').fd, (r) => records.push(r));
    try {
      ring.consume(); // whatever earlier runs left
      records.length = 0;
      const fd = object.program('fx_tc').fd;
      native.testRun(fd, { data: frame(), ctx: { mark: 77, ifindex: 1 } });
      native.testRun(fd, { data: frame(), ctx: { mark: 78, ifindex: 1 } });
      expect(ring.consume()).toBe(2);
      expect(records.map(decodeEvent).map((e) => [e.mark, e.len, e.ifindex])).toEqual([
        [77, 64, 1],
        [78, 64, 1],
      ]);
      expect(ring.consume()).toBe(0);
    } finally {
      ring.close();
    }
    expect(catchNative(() => ring.consume()).code).toBe('EBADF');
  });

  it('keeps records a throwing callback did not take for the next consume()', () => {
    let calls = 0;
    const marks: number[] = [];
    const ring = native.ringBuffer(object.map('fx_events').fd, (r) => {
      calls++;
      if (calls === 1) throw new Error('first record refused');
      marks.push(decodeEvent(r).mark);
    });
    try {
      const fd = object.program('fx_tc').fd;
      native.testRun(fd, { data: frame(), ctx: { mark: 1 } });
      native.testRun(fd, { data: frame(), ctx: { mark: 2 } });
      expect(() => ring.consume()).toThrow('first record refused');
      expect(ring.consume()).toBe(1);
      expect(marks).toEqual([2]);
    } finally {
      ring.close();
    }
  });

  it('poll mode delivers records on the event loop without consume()', async () => {
    const marks: number[] = [];
    let wake: () => void = () => {};
    const arrived = new Promise<void>((resolve) => (wake = resolve));
    const ring = native.ringBuffer(
      object.map('fx_events').fd,
      (r) => {
        marks.push(decodeEvent(r).mark);
        if (marks.includes(303)) wake();
      },
      { poll: true },
    );
    try {
      const fd = object.program('fx_tc').fd;
      for (const mark of [301, 302, 303]) native.testRun(fd, { data: frame(), ctx: { mark } });
      const timeout = new Promise<never>((_, reject) =>
        setTimeout(
          () => reject(new Error(`records not delivered; got ${marks.join(',')}`)),
          5000,
        ).unref(),
      );
      await Promise.race([arrived, timeout]);
      expect(marks.slice(-3)).toEqual([301, 302, 303]);
    } finally {
      ring.close();
    }
    // Nothing reaches the callback after close().
    const before = marks.length;
    native.testRun(object.program('fx_tc').fd, { data: frame(), ctx: { mark: 304 } });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(marks.length).toBe(before);
  });

  it('refuses a map that is not a ring buffer', () => {
    const error = catchNative(() => native.ringBuffer(object.map('fx_hash').fd, () => {}));
    expect(error.message).toContain('ring_buffer__new');
  });

  /** Runs a script in a fresh node process with the addon and the fixture. */
  function child(body: string): ReturnType<typeof spawnSync> {
    const script = `
      const native = require(${JSON.stringify(addonPath())});
      const object = native.openObject(${JSON.stringify(fixture)});
      object.load();
      const frame = Buffer.alloc(64);
      ${body}
    `;
    return spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 });
  }

  it('lets the process exit on its own after close() of a polling ring buffer', () => {
    const result = child(`
      const ring = native.ringBuffer(object.map('fx_events').fd, (r) => {
        console.log('record', r.readUInt32LE(0));
        ring.close();
        object.close();
      }, { poll: true });
      native.testRun(object.program('fx_tc').fd, { data: frame, ctx: { mark: 55 } });
    `);
    expect(result.signal).toBeNull();
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(result.stdout).toBe('record 55\n');
  });

  it('survives process.exit() while a ring buffer is still polling', () => {
    const result = child(`
      native.ringBuffer(object.map('fx_events').fd, () => {
        console.log('record');
        process.exit(3);
      }, { poll: true });
      native.testRun(object.program('fx_tc').fd, { data: frame });
    `);
    expect(result.signal).toBeNull();
    expect(result.status).toBe(3);
    expect(result.stdout).toBe('record\n');
  });
});

describe('native binding: btfStructs', () => {
  it('lists the fixture structs with exact member offsets and sizes', () => {
    const structs = native.btfStructs(fixture);
    expect(structs.find((s) => s.name === 'fx_key')).toEqual({
      name: 'fx_key',
      size: 8,
      members: [
        { name: 'id', offset: 0, size: 4 },
        { name: 'proto', offset: 4, size: 1 },
        { name: 'pad', offset: 5, size: 1 },
        { name: 'port', offset: 6, size: 2 }, // through the fx_port_t typedef
      ],
    });
    expect(structs.find((s) => s.name === 'fx_val')).toEqual({
      name: 'fx_val',
      size: 16,
      members: [
        { name: 'packets', offset: 0, size: 8 },
        { name: 'verdict', offset: 8, size: 4 },
        { name: 'flags', offset: 12, size: 2 }, // through const volatile
        { name: 'tag', offset: 14, size: 2 }, // an array: element size * count
      ],
    });
    const skb = structs.find((s) => s.name === '__sk_buff');
    expect(skb?.members.find((m) => m.name === 'mark')).toEqual({
      name: 'mark',
      offset: 8,
      size: 4,
    });
    expect(structs.every((s) => s.name !== '')).toBe(true);
  });

  it('throws ENOENT for a file that does not exist', () => {
    expect(catchNative(() => native.btfStructs(join(buildDir, 'absent.o'))).code).toBe('ENOENT');
  });
});

describe('native binding: tc and XDP attachment in a network namespace', () => {
  let object: BpfObject;
  let other: BpfObject;
  beforeAll(() => {
    object = loaded();
    other = loaded();
  });

  it('enterNetns switches the calling thread and restoreNetns switches it back', () => {
    const host = readlinkSync('/proc/thread-self/ns/net');
    const inside = inNetns(() => readlinkSync('/proc/thread-self/ns/net'));
    expect(inside).not.toBe(host);
    expect(readlinkSync('/proc/thread-self/ns/net')).toBe(host);
  });

  it('attaches, queries, replaces and detaches a tc program on both directions', () => {
    const ifindex = ifindexInNetns(LINK);
    const tcFd = object.program('fx_tc').fd;
    const otherFd = other.program('fx_tc').fd;
    for (const direction of ['ingress', 'egress'] as const) {
      const attached = inNetns(() => {
        expect(native.tcQuery(ifindex, direction)).toBeNull();
        return native.tcAttach(ifindex, direction, tcFd);
      });
      expect(attached).toMatchObject({ ifindex, direction, priority: 1, handle: 1 });
      expect(attached.progId).toBeGreaterThan(0);
      // tc itself sees our program there.
      const shown = execFileSync('tc', ['-n', NETNS, 'filter', 'show', 'dev', LINK, direction], {
        encoding: 'utf8',
      });
      expect(shown).toContain(`id ${attached.progId}`);

      inNetns(() => {
        expect(native.tcQuery(ifindex, direction)).toEqual(attached);
        const error = catchNative(() =>
          native.tcAttach(ifindex, direction, otherFd, { replace: false }),
        );
        expect(error.code).toBe('EEXIST');
        const replaced = native.tcAttach(ifindex, direction, otherFd);
        expect(replaced.progId).not.toBe(attached.progId);
        expect(native.tcQuery(ifindex, direction)?.progId).toBe(replaced.progId);
        expect(native.tcQuery(ifindex, direction, { priority: 2 })).toBeNull();
        expect(native.tcDetach(ifindex, direction)).toBe(true);
        expect(native.tcDetach(ifindex, direction)).toBe(false);
        expect(native.tcQuery(ifindex, direction)).toBeNull();
      });
    }
  });

  it('attaches at a chosen priority and handle', () => {
    const ifindex = ifindexInNetns(LINK);
    inNetns(() => {
      const at = native.tcAttach(ifindex, 'ingress', object.program('fx_tc').fd, {
        priority: 7,
        handle: 3,
      });
      expect(at).toMatchObject({ priority: 7, handle: 3 });
      expect(native.tcQuery(ifindex, 'ingress', { priority: 7, handle: 3 })?.progId).toBe(
        at.progId,
      );
      expect(native.tcQuery(ifindex, 'ingress')).toBeNull();
      expect(native.tcDetach(ifindex, 'ingress', { priority: 7, handle: 3 })).toBe(true);
    });
  });

  it('throws ENODEV for tc and XDP on an interface that does not exist', () => {
    const codes = inNetns(() => [
      catchNative(() => native.tcAttach(999_999, 'ingress', object.program('fx_tc').fd)).code,
      catchNative(() => native.tcQuery(999_999, 'egress')).code,
      catchNative(() => native.xdpAttach(999_999, object.program('fx_xdp').fd)).code,
      catchNative(() => native.xdpQuery(999_999)).code,
    ]);
    expect(codes).toEqual(['ENODEV', 'ENODEV', 'ENODEV', 'ENODEV']);
  });

  it('attaches, queries and detaches an XDP program in SKB mode', () => {
    const ifindex = ifindexInNetns(LINK);
    const xdpFd = object.program('fx_xdp').fd;
    const id = inNetns(() => {
      expect(native.xdpQuery(ifindex)).toBe(0);
      native.xdpAttach(ifindex, xdpFd, XDP_FLAGS_SKB_MODE);
      return native.xdpQuery(ifindex, XDP_FLAGS_SKB_MODE);
    });
    expect(id).toBeGreaterThan(0);
    const link = JSON.parse(ip('-n', NETNS, '-j', '-d', 'link', 'show', 'dev', LINK)) as {
      xdp?: { prog?: { id: number } };
    }[];
    expect(link[0]?.xdp?.prog?.id).toBe(id);
    inNetns(() => {
      expect(native.xdpQuery(ifindex)).toBe(id);
      native.xdpDetach(ifindex, XDP_FLAGS_SKB_MODE);
      expect(native.xdpQuery(ifindex)).toBe(0);
    });
  });
});
