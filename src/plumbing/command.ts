/**
 * Runs an external program without a shell and collects its output. Every failure —
 * the program is missing, exits non-zero, is killed or times out — is a CommandError
 * that carries the command line and the program's stderr.
 */
import { spawn } from 'node:child_process';

export interface CommandResult {
  stdout: string;
  stderr: string;
}

export interface CommandOptions {
  /** Written to the program's stdin, which is then closed. */
  stdin?: string;
  /** The program is killed (SIGKILL) after this long. Default 30 s. */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;

export interface CommandFailure {
  file: string;
  args: readonly string[];
  /** The exit code, or null when the program never ran or was killed. */
  exitCode: number | null;
  /** True when the program could not be started at all (so it did nothing). */
  notStarted: boolean;
  stdout: string;
  stderr: string;
  /** "exited with status 2", "timed out after 30000 ms", ... */
  reason: string;
  cause?: unknown;
}

export class CommandError extends Error {
  override readonly name = 'CommandError';
  readonly file: string;
  readonly args: readonly string[];
  readonly exitCode: number | null;
  readonly notStarted: boolean;
  readonly stdout: string;
  readonly stderr: string;

  constructor(failure: CommandFailure) {
    const detail = failure.stderr.trim();
    super(
      `${[failure.file, ...failure.args].join(' ')}: ${failure.reason}${detail ? `: ${detail}` : ''}`,
      failure.cause === undefined ? undefined : { cause: failure.cause },
    );
    this.file = failure.file;
    this.args = failure.args;
    this.exitCode = failure.exitCode;
    this.notStarted = failure.notStarted;
    this.stdout = failure.stdout;
    this.stderr = failure.stderr;
  }
}

export function runCommand(
  file: string,
  args: readonly string[],
  options: CommandOptions = {},
): Promise<CommandResult> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let spawnError: Error | undefined;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);

    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    // The program may exit before reading its input (EPIPE): its exit status tells more.
    child.stdin.on('error', () => undefined);
    child.on('error', (err) => {
      spawnError = err;
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const output = {
        file,
        args,
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
      };
      if (spawnError) {
        const reason = `cannot run (${spawnError.message})`;
        reject(
          new CommandError({
            ...output,
            exitCode: null,
            notStarted: true,
            reason,
            cause: spawnError,
          }),
        );
      } else if (timedOut || signal) {
        const reason = timedOut ? `timed out after ${timeoutMs} ms` : `killed by ${signal}`;
        reject(new CommandError({ ...output, exitCode: null, notStarted: false, reason }));
      } else if (code !== 0) {
        const reason = `exited with status ${code}`;
        reject(new CommandError({ ...output, exitCode: code, notStarted: false, reason }));
      } else {
        resolve({ stdout: output.stdout, stderr: output.stderr });
      }
    });
    child.stdin.end(options.stdin ?? '');
  });
}
