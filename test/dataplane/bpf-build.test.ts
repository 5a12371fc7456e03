/**
 * The BPF objects build from kernel UAPI, libbpf and clang headers alone. A glibc header
 * under `-target bpf` wants `gnu/stubs-32.h`, which only libc6-dev-i386 ships: a machine
 * without it cannot build tortie. The build refuses such an object itself (bpf/check-deps.sh)
 * with a message naming the header, before clang can fail on the missing stub.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { BPF_DIR, bpfCflags } from '../helpers/bpf-build.js';
import { newRunId } from '../helpers/netns.js';

const GLIBC = /(^|\/)(features\.h|gnu\/stubs[^/]*\.h|sys\/[^/]+\.h|bits\/[^/]+\.h)$/;
const runId = newRunId();
const scratch: string[] = [];

afterAll(() => {
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

/** The headers clang reads for a source (clang -M; -MG lists missing ones too). */
function dependencies(source: string, cwd: string): string[] {
  const out = execFileSync('clang', [...bpfCflags(), '-M', '-MG', source], {
    cwd,
    encoding: 'utf8',
  });
  return out
    .replace(/^[^:]*:/, '')
    .replace(/\\\n/g, ' ')
    .split(/\s+/)
    .filter((d) => d.length > 0);
}

/** A copy of bpf/ (sources only) with one line added to lib/compat.h. */
function scratchCopy(extraInclude: string): string {
  const dir = mkdtempSync(join(tmpdir(), `tortie-bpf-build-${runId}-`));
  scratch.push(dir);
  cpSync(BPF_DIR, dir, {
    recursive: true,
    filter: (src) => !['.arch'].includes(basename(src)) && !/\.(o|d)$/.test(src),
  });
  const compat = join(dir, 'lib', 'compat.h');
  const text = readFileSync(compat, 'utf8');
  writeFileSync(compat, text.replace('#include "icmp.h"', `#include "icmp.h"\n${extraInclude}`));
  return dir;
}

describe('the BPF build needs no C library', () => {
  it('tc_policy.c reads only UAPI, libbpf, clang and its own headers', () => {
    const deps = dependencies('tc_policy.c', BPF_DIR);
    expect(deps.length).toBeGreaterThan(10);
    expect(deps.filter((d) => GLIBC.test(d))).toEqual([]);
    for (const dep of deps) {
      const ok =
        dep.startsWith(BPF_DIR) ||
        !dep.startsWith('/') ||
        /^\/usr\/include\/(linux|asm-generic|bpf)\//.test(dep) ||
        dep.includes('/clang/');
      expect(ok, `unexpected header ${dep}`).toBe(true);
    }
  });

  it('the flags name no architecture and no multiarch directory', () => {
    const flags = bpfCflags().join(' ');
    expect(flags).not.toMatch(/x86_64|aarch64|linux-gnu/);
    expect(flags).toContain('-target bpf');
  });

  it.each([
    [
      '<linux/icmp.h>, which pulls in glibc through <linux/if.h>',
      '#include <linux/icmp.h>',
      'sys/socket.h',
    ],
    ['<stdint.h>, which clang forwards to glibc', '#include <stdint.h>', '/usr/include/stdint.h'],
  ])('refuses an object that includes %s', (_what, line, named) => {
    const dir = scratchCopy(line);
    const r = spawnSync('make', ['--no-print-directory', '-C', dir], { encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('reaches C library (glibc) headers');
    expect(r.stderr).toContain(named);
    // Refused by the check, before clang compiled anything.
    expect(r.stderr).not.toContain('fatal error');
    expect(spawnSync('test', ['-e', join(dir, 'tc_policy.o')]).status).not.toBe(0);
  });

  it('builds the unchanged copy (the refusal is the check, not the copy)', () => {
    const dir = scratchCopy('');
    const r = spawnSync('make', ['--no-print-directory', '-C', dir], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
