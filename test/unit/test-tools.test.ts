/**
 * How a test requires a program (test/helpers/tools.ts): found on PATH, or a failure
 * naming the Debian package of checksystem's table; a program not in the table is refused.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { COMMANDS } from '../../src/preflight/index.js';
import { commandRequirement, requireCommand } from '../helpers/tools.js';

const empty = mkdtempSync(join(tmpdir(), 'tortie-test-tools-'));
afterAll(() => rmSync(empty, { recursive: true, force: true }));
afterEach(() => vi.unstubAllEnvs());

describe('requireCommand', () => {
  it('finds a program of the table on PATH', () => {
    expect(requireCommand('sh')).toMatch(/\/sh$/);
  });

  it("names the package from checksystem's table when the program is missing", () => {
    vi.stubEnv('PATH', empty);
    const pkg = COMMANDS.find((c) => c.command === 'tcpdump')!.package;
    expect(() => requireCommand('tcpdump')).toThrow(
      `tcpdump is not installed (not on PATH): install the Debian package ${pkg} (apt-get install ${pkg};`,
    );
  });

  it('refuses a program the table does not list', () => {
    expect(() => commandRequirement('no-such-tool')).toThrow(
      'no-such-tool is not in the table of src/preflight/requirements.ts',
    );
    expect(() => requireCommand('no-such-tool')).toThrow(/not in the table/);
  });
});
