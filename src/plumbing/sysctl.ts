/**
 * Reads and writes net.* sysctls in a network namespace. In the caller's own namespace
 * through /proc/sys (no spawn); in another through one `nsenter --net=PATH sysctl`,
 * because /proc/sys/net always shows the namespace of the process that opens it.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { CommandError } from './command.js';
import { runIn, type NetnsTarget } from './netns.js';

/** A dotted sysctl key ("net.ipv4.conf.tor1.proxy_arp"); no component may contain '.' or '/'. */
export type SysctlKey = string;

function procPath(key: SysctlKey): string {
  return '/proc/sys/' + key.split('.').join('/');
}

function assertKey(key: SysctlKey): void {
  if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+$/.test(key))
    throw new Error(`invalid sysctl key ${JSON.stringify(key)}`);
}

export class SysctlError extends Error {
  override readonly name = 'SysctlError';
  constructor(
    message: string,
    readonly stderr: string,
    options: { cause: unknown },
  ) {
    super(message, options);
  }
}

/** Sets every key (in order). Throws SysctlError naming the key(s) that could not be set. */
export async function writeSysctls(
  target: NetnsTarget,
  values: ReadonlyArray<[SysctlKey, string]>,
): Promise<void> {
  values.forEach(([key]) => assertKey(key));
  if (target.kind === 'current') {
    for (const [key, value] of values) {
      try {
        await writeFile(procPath(key), value);
      } catch (err) {
        throw new SysctlError(
          `cannot set ${key}=${value}: ${(err as Error).message}`,
          (err as Error).message,
          {
            cause: err,
          },
        );
      }
    }
    return;
  }
  try {
    await runIn(target, 'sysctl', ['-q', '-w', ...values.map(([key, value]) => `${key}=${value}`)]);
  } catch (err) {
    const stderr = err instanceof CommandError ? err.stderr.trim() : (err as Error).message;
    throw new SysctlError(
      `cannot set ${values.map(([k, v]) => `${k}=${v}`).join(' ')}: ${stderr}`,
      stderr,
      {
        cause: err,
      },
    );
  }
}

/** Reads every key; a key that does not exist (e.g. its device is gone) maps to undefined. */
export async function readSysctls(
  target: NetnsTarget,
  keys: readonly SysctlKey[],
): Promise<Map<SysctlKey, string | undefined>> {
  keys.forEach(assertKey);
  const values = new Map<SysctlKey, string | undefined>(keys.map((key) => [key, undefined]));
  if (target.kind === 'current') {
    await Promise.all(
      keys.map(async (key) => {
        try {
          values.set(key, (await readFile(procPath(key), 'utf8')).trim());
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
      }),
    );
    return values;
  }
  let stdout: string;
  try {
    ({ stdout } = await runIn(target, 'sysctl', keys));
  } catch (err) {
    // sysctl exits non-zero when a key is missing but still prints the others.
    if (!(err instanceof CommandError) || err.exitCode === null || !/cannot stat/.test(err.stderr))
      throw err;
    stdout = err.stdout;
  }
  for (const line of stdout.split('\n')) {
    const match = /^(\S+) = (.*)$/.exec(line.trim());
    if (match?.[1] !== undefined && values.has(match[1])) values.set(match[1], match[2]);
  }
  return values;
}
