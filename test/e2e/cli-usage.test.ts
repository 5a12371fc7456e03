/**
 * Every usage mistake ends the same way through the built CLI: its message on stderr,
 * nothing on stdout, exit code 2, and nothing made — whether commander finds it while
 * parsing options or a command's action finds it (a combination of options, a missing
 * --id). Lab ids start with "cu"; no lab is built.
 *
 * Needs root (`ip netns`) and `npm run build` first.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runTortie, TORTIE_CLI } from '../helpers/cli.js';
import { newLabId } from '../helpers/netns.js';

/** Namespaces and state a lab with this id would have made. */
function traces(id: string): string[] {
  const netns = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter((n) => n.startsWith(`tortie-${id}-`));
  const state = `/run/tortie/labs/${id}`;
  return [...netns, ...(existsSync(state) ? [state] : [])];
}

describe('a usage mistake: the message on stderr, exit 2, nothing made', () => {
  it('the built CLI is there', () => {
    expect(existsSync(TORTIE_CLI), 'run `npm run build` first').toBe(true);
  });

  it('lab up --tor without --routing bgp says so and makes nothing', async () => {
    const id = newLabId('cu');
    const r = await runTortie(['lab', 'up', '--id', id, '--tor']);
    expect(r.stderr).toContain('--tor needs --routing bgp');
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(traces(id)).toEqual([]);
  });

  const id = newLabId('cu');
  // [what, args, a piece of the message on stderr]
  const cases: [string, string[], string | RegExp][] = [
    ['a bad lab id', ['lab', 'up', '--id', 'Bad_Id'], /--id.*Bad_Id/],
    ['--nodes 0', ['lab', 'up', '--id', id, '--nodes', '0'], '"0": give a number of nodes, 1-50'],
    [
      'IPIP with the iptables dataplane',
      ['lab', 'up', '--id', id, '--dataplane', 'iptables', '--encap', 'ipip'],
      'cannot encapsulate IPIP',
    ],
    ['a port out of range', ['lab', 'probe', '--id', id, '--port', '70000'], '"70000"'],
    [
      'a pod that is not NS/NAME',
      ['lab', 'pod', 'add', 'web', '--id', id, '--node', '0'],
      'NAMESPACE/NAME',
    ],
    [
      'a conformance option combination',
      ['lab', 'conformance', '--cases', 'x.json', '--encap', 'vxlan'],
      '--encap vxlan is for --dataplane iptables',
    ],
    ['demo --down without --id', ['demo', '--down'], '--down needs the --id'],
    ['an unknown ipam output format', ['ipam', 'check', '-o', 'xml'], '"xml": use text or json'],
    [
      'monitor --node with --pin-root',
      ['monitor', '--node', 'n1', '--pin-root', '/sys/fs/bpf/x'],
      'give --node or --pin-root, not both',
    ],
    ['a bad rule count', ['bench', 'verdict', '--rules', '1,x'], '"x" is not a rule count'],
    ['an unknown part', ['node', 'checksystem', '--for', 'nothing'], 'nothing'],
    ['an unknown kind', ['get', 'pods'], 'unknown resource kind "pods"'],
    ['an unknown command', ['frobnicate'], "unknown command 'frobnicate'"],
  ];
  it.each(cases)('%s', async (_what, args, message) => {
    const r = await runTortie(args);
    expect(r.stderr).toMatch(message instanceof RegExp ? message : new RegExp(escape(message)));
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(traces(id)).toEqual([]);
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
