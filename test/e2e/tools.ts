/**
 * The machine's programs an e2e file runs, looked up before it starts. A missing one is a
 * failure that names the Debian package providing it (scripts/install.sh installs them),
 * never a skip: a test that cannot run has not passed.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, realpathSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** The absolute path of `command` on PATH (as `command -v` finds it), or a failure naming the package. */
export function requireCommand(command: string, debianPackage: string): string {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir !== '' && executable(join(dir, command))) return join(dir, command);
  }
  throw new Error(
    `${command} is not installed (not on PATH): install the Debian package ${debianPackage} ` +
      `(apt-get install ${debianPackage}; scripts/install.sh installs it)`,
  );
}

/**
 * A program as an installed Debian package ships it (`dpkg -L`): for when the program must
 * come from that package, e.g. the statically linked busybox of busybox-static, copied
 * alone into a container image (a dynamically linked one would not start there).
 */
export function requirePackagedProgram(debianPackage: string, program: string): string {
  const listed = spawnSync('dpkg-query', ['-L', debianPackage], { encoding: 'utf8' });
  const paths =
    listed.status === 0
      ? listed.stdout.split('\n').filter((p) => /\/s?bin\//.test(p) && p.endsWith(`/${program}`))
      : [];
  const found = paths.find(executable);
  if (found === undefined) {
    throw new Error(
      `${program} from the Debian package ${debianPackage} is not installed` +
        `${listed.error ? ` (dpkg-query: ${listed.error.message})` : ''}: ` +
        `apt-get install ${debianPackage} (scripts/install.sh installs it)`,
    );
  }
  return realpathSync(found);
}
