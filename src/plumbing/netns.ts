/**
 * Network namespaces: the named ones iproute2 keeps under /run/netns, and how to run a
 * program inside any namespace given by path (undefined = the caller's own).
 */
import { stat } from 'node:fs/promises';
import { CommandError, runCommand, type CommandOptions, type CommandResult } from './command.js';
import { PlumbingError, kindFromStderr } from './errors.js';
import { assertNetnsPathSyntax } from './names.js';

export const NETNS_RUN_DIR = '/run/netns';

/**
 * Where a command runs. `named` namespaces are entered with `ip -n NAME` (one exec);
 * any other path with `nsenter --net=PATH`, which also keeps the caller's mounts
 * (bpffs included, unlike `ip netns exec`).
 */
export type NetnsTarget =
  | { kind: 'current' }
  | { kind: 'named'; name: string; path: string }
  | { kind: 'path'; path: string };

const NETNS_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

export function assertNetnsName(name: string): void {
  if (typeof name !== 'string' || !NETNS_NAME.test(name)) {
    throw new PlumbingError(
      `invalid network namespace name ${JSON.stringify(name)}: use 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'`,
      { kind: 'invalid-argument', step: 'validate network namespace name' },
    );
  }
}

/** The path of the named namespace `name`: /run/netns/NAME. */
export function netnsPath(name: string): string {
  assertNetnsName(name);
  return `${NETNS_RUN_DIR}/${name}`;
}

/** `ip netns add NAME`; fails with kind 'already-exists' when it is there. Returns its path. */
export async function createNetns(name: string): Promise<string> {
  const path = netnsPath(name);
  try {
    await runCommand('ip', ['netns', 'add', name]);
  } catch (err) {
    throw commandFailure(err, `create network namespace ${name}`);
  }
  return path;
}

/** `ip netns delete NAME`; a namespace that is already gone is success. */
export async function deleteNetns(name: string): Promise<void> {
  assertNetnsName(name);
  try {
    await runCommand('ip', ['netns', 'delete', name]);
  } catch (err) {
    if (err instanceof CommandError && /No such file or directory/.test(err.stderr)) return;
    throw commandFailure(err, `delete network namespace ${name}`);
  }
}

/** A namespace given by path (named or not): never the caller's own implicitly. */
export type OtherNetns = Exclude<NetnsTarget, { kind: 'current' }>;

export function netnsTarget(
  path: string | undefined,
  what = 'network namespace path',
): NetnsTarget {
  return path === undefined ? { kind: 'current' } : otherNetns(path, what);
}

export function otherNetns(path: string, what = 'network namespace path'): OtherNetns {
  assertNetnsPathSyntax(path, what);
  const named = /^(?:\/var)?\/run\/netns\/([^/]+)$/.exec(path);
  if (named?.[1] && NETNS_NAME.test(named[1])) return { kind: 'named', name: named[1], path };
  return { kind: 'path', path };
}

export function describeNetns(target: NetnsTarget): string {
  return target.kind === 'current'
    ? 'the current network namespace'
    : `network namespace ${target.path}`;
}

/** Fails with kind 'not-found' unless the namespace's path exists. */
export async function assertNetnsExists(target: NetnsTarget, step: string): Promise<void> {
  if (target.kind === 'current') return;
  try {
    await stat(target.path);
  } catch (err) {
    throw new PlumbingError(`${step}: ${describeNetns(target)} does not exist`, {
      kind: 'not-found',
      step,
      cause: err,
    });
  }
}

/** Runs `ip [-n NAME] ARGS` in the namespace. */
export function runIpIn(
  target: NetnsTarget,
  args: readonly string[],
  options?: CommandOptions,
): Promise<CommandResult> {
  if (target.kind === 'named') return runCommand('ip', ['-n', target.name, ...args], options);
  return runIn(target, 'ip', args, options);
}

/** A namespace as callers hold it: a target, a path, or undefined for the caller's own. */
export type NetnsRef = NetnsTarget | string | undefined;

/**
 * Runs any program in the namespace (through nsenter unless it is the current one) and
 * collects its output; every failure is a CommandError (command.ts). This is the one
 * helper that runs a command in a namespace. `input` is what the program reads on stdin
 * (a string, or with a timeout in CommandOptions).
 */
export function runIn(
  where: NetnsRef,
  file: string,
  args: readonly string[],
  input?: CommandOptions | string,
): Promise<CommandResult> {
  const target = typeof where === 'string' ? otherNetns(where) : (where ?? CURRENT);
  const options = typeof input === 'string' ? { stdin: input } : input;
  if (target.kind === 'current') return runCommand(file, args, options);
  return runCommand('nsenter', [`--net=${target.path}`, '--', file, ...args], options);
}

const CURRENT: NetnsTarget = { kind: 'current' };

function commandFailure(err: unknown, step: string): PlumbingError {
  const stderr = err instanceof CommandError ? err.stderr.trim() : undefined;
  return new PlumbingError(`${step} failed: ${stderr || (err as Error).message}`, {
    kind: stderr ? kindFromStderr(stderr) : 'command-failed',
    step,
    ...(stderr ? { stderr } : {}),
    cause: err,
  });
}
