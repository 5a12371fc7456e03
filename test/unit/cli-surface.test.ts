/**
 * The CLI's shared pieces without a process: the argument parsers (src/cli/args.ts),
 * the table printer (src/cli/table.ts), the matrix printer (src/util/matrix.ts), and the
 * one usage-error path (src/cli/usage.ts, src/cli/program.ts) on an in-memory program.
 */
import { Command, InvalidArgumentError } from 'commander';
import { describe, expect, it } from 'vitest';
import * as args from '../../src/cli/args.js';
import { exitCodeOf } from '../../src/cli/program.js';
import { formatTable } from '../../src/cli/table.js';
import { UsageError } from '../../src/cli/usage.js';
import { drawWrongCells } from '../../src/lab/conformance/report.js';
import { drawMatrix } from '../../src/lab/demo.js';
import { formatMatrix } from '../../src/util/matrix.js';

describe('argument parsers', () => {
  it('numbers: whole numbers in a range, refused with the range and the value given', () => {
    const n = args.intIn(1, 50, 'a number of nodes');
    expect(n('3')).toBe(3);
    for (const bad of ['0', '51', '2.5', 'two', '', '1e1'])
      expect(() => n(bad)).toThrow(
        new InvalidArgumentError(`"${bad}": give a number of nodes, 1-50`),
      );
    expect(args.port('80')).toBe(80);
    expect(() => args.port('70000')).toThrow('"70000": give a port, 1-65535');
    expect(args.positiveInt('5')).toBe(5);
    expect(() => args.positiveInt('0')).toThrow('"0" is not a positive integer');
    expect(args.seconds('0.5')).toBe(0.5);
    expect(() => args.seconds('-1')).toThrow('is not a number of seconds (0 or more)');
    expect(() => args.wholeSeconds('1.5')).toThrow('is not a whole number of seconds');
    expect(args.ruleCounts(100)('0,10,100')).toEqual([0, 10, 100]);
    expect(() => args.ruleCounts(100)('0,101')).toThrow(
      '--rules: "101" is not a rule count (0 to 100)',
    );
    expect(args.mtu('1450')).toBe(1450);
    expect(() => args.mtu('67')).toThrow('is not an MTU');
    expect(args.waitMs('0')).toBe(0);
    expect(() => args.waitMs('2s')).toThrow('"2s" is not a wait in milliseconds');
  });

  it('names: one of a list, ids, pod keys, labels', () => {
    expect(args.encap('vxlan')).toBe('vxlan');
    expect(() => args.encap('gre')).toThrow('"gre": use ipip, none or vxlan');
    expect(() => args.oneOf('static', 'bgp')('ospf')).toThrow('"ospf": use static or bgp');
    expect(() => args.protocol('sctp')).toThrow('"sctp": use tcp or udp');
    expect(args.listOf('--modes', ['bpf', 'iptables'] as const)('bpf,iptables')).toEqual([
      'bpf',
      'iptables',
    ]);
    expect(() => args.listOf('--modes', ['bpf', 'iptables'] as const)('bpf,ebpf')).toThrow(
      '--modes: "ebpf" is not one of bpf, iptables',
    );
    expect(args.clusterId('lab1')).toBe('lab1');
    expect(() => args.clusterId('toolongid')).toThrow('use 1-8 lower-case letters or digits');
    expect(args.labId('toolongid')).toBe('toolongid');
    expect(() => args.labId('Bad_Id')).toThrow('use 1-12 lower-case letters or digits');
    expect(args.podKey('default/web')).toEqual({
      namespace: 'default',
      name: 'web',
      key: 'default/web',
    });
    for (const bad of ['web', 'a/b/c', 'Default/web', '/web'])
      expect(() => args.podKey(bad)).toThrow('give NAMESPACE/NAME');
    expect(args.labels('app=web, tier=front,')).toEqual({ app: 'web', tier: 'front' });
    expect(() => args.labels('app')).toThrow('"app": give key=value');
    expect(args.ipAddresses('10.0.0.1', ['10.0.0.2'])).toEqual(['10.0.0.2', '10.0.0.1']);
    expect(() => args.ipAddresses('10.0.0.256')).toThrow('"10.0.0.256" is not an IPv4 address');
    expect(() => args.regex('(')).toThrow('"(" is not a regular expression');
    expect(() => args.parts('lab,nothing')).toThrow(InvalidArgumentError);
  });
});

describe('the table printer', () => {
  it('pads every column but the last to its widest cell, gap spaces apart, no trailing spaces', () => {
    expect(
      formatTable(
        ['NAME', 'IP', 'NOTE'],
        [
          ['a', '10.0.0.1', ''],
          ['longer', '10.0.0.10', 'x'],
        ],
      ),
    ).toBe('NAME    IP         NOTE\na       10.0.0.1\nlonger  10.0.0.10  x');
    expect(formatTable(['A', 'B'], [['xxxx', 'y']], { gap: 3 })).toBe('A      B\nxxxx   y');
  });

  it('right-aligns the columns asked for (numbers)', () => {
    expect(
      formatTable(
        ['endpoint', 'packets'],
        [
          ['1', '5'],
          ['22', '1234567890'],
        ],
        { align: ['left', 'right'] },
      ),
    ).toBe('endpoint     packets\n1                  5\n22        1234567890');
  });
});

describe('the matrix printer', () => {
  const keys = ['x/a', 'x/bb', 'y/c'];
  const reach = new Map([
    ['x/a -> x/bb', true],
    ['x/a -> y/c', false],
    ['x/bb -> x/a', true],
    ['x/bb -> y/c', true],
    ['y/c -> x/a', false],
    ['y/c -> x/bb', false],
  ]);

  it("draws the one-node and lab demos' matrix as drawMatrix does", () => {
    const predicted = new Map(reach);
    predicted.set('y/c -> x/a', true);
    const drawn = drawMatrix('title', keys, reach, predicted);
    const cell = (from: string, to: string) => {
      if (from === to) return '.';
      const o = reach.get(`${from} -> ${to}`) ?? false;
      const p = predicted.get(`${from} -> ${to}`);
      return `${p !== undefined && p !== o ? '!' : ''}${o ? 'yes' : '-'}`;
    };
    expect(drawn.text).toBe(`title\n${formatMatrix(keys, cell)}`);
    expect(formatMatrix(keys, cell).split('\n')).toEqual([
      '       x/a x/bb  y/c',
      'x/a      .  yes    -',
      'x/bb   yes    .  yes',
      'y/c     !-    -    .',
    ]);
  });

  it("draws conformance failures' wrong cells as drawWrongCells does", () => {
    const wrong: [string, string, boolean, boolean][] = [['x/a', 'y/c', true, false]];
    const byCell = new Map(wrong.map(([f, t, , o]) => [`${f} ${t}`, o]));
    const cell = (from: string, to: string) => {
      const o = byCell.get(`${from} ${to}`);
      return o !== undefined ? (o ? '1' : '0') : from === to ? '-' : '.';
    };
    expect(drawWrongCells(keys, wrong, true)).toBe(formatMatrix(keys, cell, { indent: '      ' }));
  });

  it('numbers the columns when asked (wide keys)', () => {
    expect(
      formatMatrix(
        ['default/client', 'default/web'],
        (a, b) => (a === b ? '-' : reach.get(`${a} -> ${b}`) ? '.' : 'X'),
        { columns: 'numbers' },
      ),
    ).toBe(
      ['   FROM \\ TO        0 1', '0  default/client   - X', '1  default/web      X -'].join('\n'),
    );
  });
});

describe('the usage-error path', () => {
  function program(action: () => void): { cmd: Command; err: () => string } {
    let err = '';
    const cmd = new Command()
      .name('tortie')
      .exitOverride()
      .configureOutput({ writeErr: (s) => (err += s), writeOut: () => undefined });
    cmd.command('x').action(action);
    return { cmd, err: () => err };
  }

  it.each([
    ['a UsageError', new UsageError('--tor needs --routing bgp')],
    ["commander's InvalidArgumentError", new InvalidArgumentError('--tor needs --routing bgp')],
  ])('%s thrown in an action: "error: <message>" on stderr, exit 2', async (_what, error) => {
    const p = program(() => {
      throw error;
    });
    const e = await p.cmd.parseAsync(['x'], { from: 'user' }).catch((x: unknown) => x);
    expect(exitCodeOf(p.cmd, e)).toBe(2);
    expect(p.err()).toBe('error: --tor needs --routing bgp\n');
  });

  it("a parser's refusal is commander's (printed once), exit 2; a failure exits 1", async () => {
    const p = program(() => undefined);
    p.cmd.commands[0]!.option('--port <p>', 'port', args.port);
    const e = await p.cmd
      .parseAsync(['x', '--port', '0'], { from: 'user' })
      .catch((x: unknown) => x);
    expect(exitCodeOf(p.cmd, e)).toBe(2);
    expect(p.err()).toBe(
      `error: option '--port <p>' argument '0' is invalid. "0": give a port, 1-65535\n`,
    );
    const failing = program(() => {
      throw new Error('etcd is down');
    });
    const f = await failing.cmd.parseAsync(['x'], { from: 'user' }).catch((x: unknown) => x);
    const errors: string[] = [];
    const saved = console.error;
    console.error = (s: string) => errors.push(s);
    try {
      expect(exitCodeOf(failing.cmd, f)).toBe(1);
    } finally {
      console.error = saved;
    }
    expect(errors).toEqual(['tortie: etcd is down']);
  });
});
