/**
 * The one way a usage mistake ends a `tortie` command: "error: <message>" on stderr
 * (commander's output, so a program that redirects it sees it too), then exit 2.
 *
 * Option and argument parsers (args.ts) throw commander's InvalidArgumentError, which
 * commander turns into that error itself. Actions throw UsageError (or, as parsers do,
 * InvalidArgumentError); program.ts's runProgram hands either to `failUsage`.
 */
import { InvalidArgumentError, type Command } from 'commander';

/** A mistake in how the command was called or configured: exit 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** A mistake in how the command was called, not a failure of what it did. */
export function isUsageMistake(e: unknown): e is Error {
  // An InvalidArgumentError gets this far only when an action threw it: commander turns
  // those of option parsers into its own error, printed already.
  return e instanceof UsageError || e instanceof InvalidArgumentError;
}

/** Prints the mistake through commander and ends the command with exit code 2. */
export function failUsage(cmd: Command, message: string): never {
  cmd.error(`error: ${message}`, { exitCode: 2, code: 'tortie.usage' });
}
