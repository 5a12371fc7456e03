/**
 * The machine's programs a test runs, looked up before it starts. A missing one is a
 * failure that names the Debian package providing it (scripts/install.sh installs them),
 * never a skip: a test that cannot run has not passed.
 *
 * The package comes from the table `tortie node checksystem` checks
 * (src/preflight/requirements.ts), the one list of what tortie needs from the machine. A
 * program that is not in it fails too: add its row there (package, parts, who runs it).
 */
import { spawnSync } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { basename, isAbsolute } from 'node:path';
import { COMMANDS, whichCommand, type CommandRequirement } from '../../src/preflight/index.js';

/** The table's row for `command`, spelled as there: a name on PATH or an absolute path. */
export function commandRequirement(command: string): CommandRequirement {
  const row = COMMANDS.find((c) => c.command === command);
  if (row === undefined) {
    throw new Error(
      `${command} is not in the table of src/preflight/requirements.ts: ` +
        'add it there with the Debian package that ships it',
    );
  }
  return row;
}

/**
 * Where `command` is (a name: the first match on PATH, as `command -v` finds it; an
 * absolute path: itself), or a failure naming its package.
 */
export function requireCommand(command: string): string {
  const { package: pkg } = commandRequirement(command);
  const found = whichCommand(command, process.env.PATH ?? '');
  if (found !== undefined) return found;
  throw new Error(
    `${command} is not installed (${isAbsolute(command) ? 'missing' : 'not on PATH'}): ` +
      `install the Debian package ${pkg} (apt-get install ${pkg}; scripts/install.sh installs it)`,
  );
}

/**
 * A program of the table as its Debian package ships it (`dpkg -L`, any bin or sbin
 * directory, resolved): for when the program must come from that package, e.g. the
 * statically linked busybox of busybox-static, copied alone into a container image (a
 * dynamically linked one would not start there).
 */
export function requirePackagedProgram(command: string): string {
  const { package: pkg } = commandRequirement(command);
  const program = basename(command);
  const listed = spawnSync('dpkg-query', ['-L', pkg], { encoding: 'utf8' });
  const paths =
    listed.status === 0
      ? listed.stdout.split('\n').filter((p) => /\/s?bin\//.test(p) && p.endsWith(`/${program}`))
      : [];
  const found = paths.find((p) => whichCommand(p, '') !== undefined);
  if (found === undefined) {
    throw new Error(
      `${program} from the Debian package ${pkg} is not installed` +
        `${listed.error ? ` (dpkg-query: ${listed.error.message})` : ''}: ` +
        `apt-get install ${pkg} (scripts/install.sh installs it)`,
    );
  }
  return realpathSync(found);
}
