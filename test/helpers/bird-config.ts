/**
 * BIRD itself as the judge of a rendered configuration: `bird -p` parses it (parse only,
 * no privileges, nothing started). The check is part of the tests that call it, so a
 * machine without BIRD fails them, naming the package to install (./tools.ts), instead
 * of passing without the check.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIRD } from '../../src/bgp/bird.js';
import { requireCommand } from './tools.js';

/** Throws unless BIRD parses `text`; throws naming the package when BIRD is not installed. */
export function birdParses(text: string): void {
  const bird = requireCommand(BIRD);
  const dir = mkdtempSync(join(tmpdir(), 'tortie-bird-parse-'));
  try {
    writeFileSync(join(dir, 'bird.conf'), text);
    execFileSync(bird, ['-p', '-c', join(dir, 'bird.conf')], { stdio: 'pipe' });
  } catch (e) {
    const err = e as { stderr?: Buffer };
    throw new Error(`bird -p refused the config: ${err.stderr?.toString() ?? String(e)}\n${text}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
