/**
 * Several iproute2 commands in one `ip -batch -` spawn (~3 ms each saved). Each line is
 * labelled with the step it performs and the interface it acts on, so that a failure
 * names them. ip stops at the first failing line and reports it as "Command failed -:N".
 */
import { CommandError } from './command.js';
import { runIpIn, type NetnsTarget } from './netns.js';

export interface IpBatchLine {
  /** What the line does, in words: "add the /32 route to the pod". */
  step: string;
  /** The interface the line acts on. */
  ifName: string;
  /** One iproute2 command without the leading `ip`: "link set dev tor1 up". */
  command: string;
}

export class IpBatchError extends Error {
  override readonly name = 'IpBatchError';

  constructor(
    /** The line that failed, or undefined when ip gave no line number (an argument it rejected). */
    readonly failed: IpBatchLine | undefined,
    /** Index in the batch of the failed line (0-based), or undefined. */
    readonly failedIndex: number | undefined,
    /** ip's own words, without the "Command failed" trailer. */
    readonly stderr: string,
    /** What the lines before the failed one printed. */
    readonly stdout: string,
    options: { cause: unknown },
  ) {
    super(
      `ip batch failed${failed ? ` at "${failed.command}"` : ''}: ${stderr || 'no message'}`,
      options,
    );
  }
}

/**
 * Runs the lines in order and returns ip's stdout (with `json`, one JSON array per `show`
 * line, each on its own line). Throws IpBatchError on the first failure.
 */
export async function runIpBatch(
  target: NetnsTarget,
  lines: readonly IpBatchLine[],
  options: { json?: boolean } = {},
): Promise<string> {
  for (const line of lines) {
    if (line.command.includes('\n'))
      throw new Error(`ip batch line contains a newline: ${line.command}`);
  }
  const args = [...(options.json ? ['-json'] : []), '-batch', '-'];
  const stdin = lines.map((line) => line.command).join('\n') + '\n';
  try {
    const { stdout } = await runIpIn(target, args, { stdin });
    return stdout;
  } catch (err) {
    if (!(err instanceof CommandError)) throw err;
    const marker = /Command failed -:(\d+)/.exec(err.stderr);
    const index = marker?.[1] === undefined ? undefined : Number(marker[1]) - 1;
    const stderr = err.stderr
      .split('\n')
      .filter((text) => text.trim() !== '' && !/^Command failed -:\d+/.test(text))
      .join('\n')
      .trim();
    throw new IpBatchError(
      index === undefined ? undefined : lines[index],
      index,
      stderr || err.message,
      err.stdout,
      {
        cause: err,
      },
    );
  }
}
