/**
 * Finds the programs of requirements.ts as a spawn would: a bare name in the directories
 * of PATH, in order, an absolute path as it is. Nothing is run.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';
import type { CommandRequirement } from './requirements.js';

export interface CommandFound {
  readonly requirement: CommandRequirement;
  /** Where it was found; undefined when it is not there. */
  readonly path: string | undefined;
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** Where `command` resolves on `searchPath` (a PATH value), or undefined. */
export function whichCommand(command: string, searchPath: string): string | undefined {
  if (isAbsolute(command)) return executable(command) ? command : undefined;
  for (const dir of searchPath.split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, command);
    if (executable(candidate)) return candidate;
  }
  return undefined;
}

export function findCommands(
  requirements: readonly CommandRequirement[],
  searchPath: string,
): CommandFound[] {
  return requirements.map((requirement) => ({
    requirement,
    path: whichCommand(requirement.command, searchPath),
  }));
}
