/**
 * The system check's verdict and its words, without a machine: which parts make a
 * missing item an error, what one line says for a program and for a kernel feature, the
 * `--for` values, the command table's shape and the probe object's ELF header.
 */
import { describe, expect, it } from 'vitest';
import {
  buildReport,
  COMMANDS,
  formatRefusal,
  formatReport,
  KERNEL_FEATURES,
  parseParts,
  PARTS,
  whatToDo,
  type CommandRequirement,
  type KernelResult,
} from '../../src/preflight/index.js';
import { probeObject } from '../../src/preflight/probe-object.js';

const req = (command: string, pkg: string, parts: CommandRequirement['parts']) => ({
  requirement: { command, package: pkg, parts, usedBy: 'test' },
  path: undefined as string | undefined,
});
const feature = (id: string) => KERNEL_FEATURES.find((f) => f.id === id)!;

const missingVxlan: KernelResult = {
  feature: feature('vxlan'),
  ok: false,
  problem: 'kernel lacks vxlan links (CONFIG_VXLAN)',
  detail: 'link add tchk-vx type vxlan id 42: Error: Unknown device type.',
  fix: 'a kernel built with CONFIG_VXLAN=y',
};

describe('checksystem verdict', () => {
  it('makes a missing item an error only when a required part needs it', () => {
    const rep = buildReport(
      [req('tcpdump', 'tcpdump', ['tests']), req('ipset', 'ipset', ['core'])],
      [],
      ['core', 'lab'],
      12.4,
    );
    expect(rep.items.map((i) => [i.name, i.status])).toEqual([
      ['tcpdump', 'warn'],
      ['ipset', 'missing'],
    ]);
    expect(rep.ok).toBe(false);
    expect(rep.missingPackages).toEqual(['ipset', 'tcpdump']);
    expect(rep.durationMs).toBe(12);

    const tests = buildReport([req('tcpdump', 'tcpdump', ['tests'])], [], ['core', 'tests'], 1);
    expect(tests.items[0]!.status).toBe('missing');
    expect(tests.ok).toBe(false);
  });

  it('passes with warnings and counts a skipped item as neither', () => {
    const rep = buildReport(
      [req('wrk', 'wrk', ['bench'])],
      [{ feature: feature('ipset-hash-net'), ok: undefined, detail: 'not checked: needs ipset' }],
      ['core', 'lab'],
      1,
    );
    expect(rep.items.map((i) => i.status)).toEqual(['warn', 'skipped']);
    expect(rep.ok).toBe(true);
  });

  it('says what a program lacks by its package and a kernel feature by its config option', () => {
    const rep = buildReport(
      [req('tcpdump', 'tcpdump', ['tests']), req('/usr/sbin/bird', 'bird2', ['core'])],
      [missingVxlan, { feature: feature('veth'), ok: true }],
      ['core', 'lab'],
      1,
    );
    expect(rep.items.map(whatToDo)).toEqual([
      'not on PATH: apt-get install -y tcpdump',
      '/usr/sbin/bird is missing: apt-get install -y bird2',
      'kernel lacks vxlan links (CONFIG_VXLAN): link add tchk-vx type vxlan id 42: Error: Unknown device type.',
      '',
    ]);
    const text = formatReport(rep);
    expect(text.split('\n')[0]).toBe('ITEM                       NEEDED BY   STATUS    WHAT TO DO');
    expect(text).toMatch(/^vxlan links\s+core\s+MISSING\s+kernel lacks vxlan links/m);
    expect(text).toMatch(/^tcpdump \(command\)\s+tests\s+warn\s+not on PATH/m);
    expect(text).toMatch(/^2 item\(s\) that core, lab need are missing, 1 warning\(s\)$/m);
    expect(text).toMatch(/^install: apt-get install -y bird2 tcpdump$/m);
  });

  it("words the lab's refusal as one line per missing item", () => {
    const rep = buildReport([], [missingVxlan], ['core', 'lab'], 1);
    expect(formatRefusal('lab ab12', rep)).toBe(
      [
        'lab ab12: this machine lacks what it needs:',
        '  kernel lacks vxlan links (CONFIG_VXLAN): link add tchk-vx type vxlan id 42: Error: Unknown device type.',
        'run `tortie node checksystem` for the whole check',
      ].join('\n'),
    );
  });

  it('reads --for as parts, core always among them', () => {
    expect(parseParts('lab')).toEqual(['core', 'lab']);
    expect(parseParts('tests,bench')).toEqual(['core', 'tests', 'bench']);
    expect(parseParts('all')).toEqual([...PARTS]);
    expect(parseParts('core')).toEqual(['core']);
    expect(parseParts('lab,nodes')).toBeInstanceOf(Error);
  });
});

describe('checksystem tables', () => {
  it('lists each program once, with a package and the parts that run it', () => {
    const names = COMMANDS.map((c) => c.command);
    expect(new Set(names).size).toBe(names.length);
    for (const c of COMMANDS) {
      expect(c.package, c.command).toMatch(/^[a-z0-9][a-z0-9.+-]+$/);
      expect(c.parts.length, c.command).toBeGreaterThan(0);
    }
  });

  it('names a config option for every kernel feature', () => {
    for (const f of KERNEL_FEATURES.filter((k) => k.id !== 'root'))
      expect(f.config, f.id).toMatch(/^CONFIG_[A-Z0-9_]+(, CONFIG_[A-Z0-9_]+)*$/);
  });

  it('writes the probe object as a 64-bit little-endian EM_BPF relocatable ELF', () => {
    const elf = probeObject();
    expect(elf.subarray(0, 7)).toEqual(Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]));
    expect(elf.readUInt16LE(16)).toBe(1); // ET_REL
    expect(elf.readUInt16LE(18)).toBe(247); // EM_BPF
    const shoff = Number(elf.readBigUInt64LE(40));
    const shnum = elf.readUInt16LE(60);
    expect(shoff + shnum * 64).toBe(elf.length);
  });
});
