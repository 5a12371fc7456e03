/**
 * What the resource commands (resources.ts, verbs.ts) share: where they print, how an
 * action ends, a kind from its spelling, a store for the call, and the objects of the
 * `-f` files and directories.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import type { AgentStore } from '../agent/datastore.js';
import {
  DatastoreError,
  describeRef,
  findKind,
  kindOfObject,
  type KindInfo,
  type StoredResource,
} from '../datastore/index.js';
import { kindSpellings } from '../datastore/kinds.js';
import { ManifestError, parseManifest, type ManifestObject } from '../datastore/manifest.js';
import { datastoreFrom, type GlobalOptions } from './context.js';
import { failUsage, isUsageMistake, UsageError } from './usage.js';

/** Where the commands write and read; tests pass their own. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  readStdin(): Promise<string>;
}

export const processIo: CliIo = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
  readStdin: async () => {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  },
};

/**
 * Runs an action: a usage mistake ends in failUsage (message on stderr, exit 2) — also in
 * a program that registers only these commands, without program.ts's runProgram;
 * anything else propagates for the caller to print (exit 1).
 */
export async function runAction(cmd: Command, action: () => Promise<void>): Promise<void> {
  try {
    await action();
  } catch (e) {
    if (isUsageMistake(e)) failUsage(cmd, e.message);
    throw e;
  }
}

export function resolveKind(spelling: string): KindInfo {
  const info = findKind(spelling);
  if (info === undefined) {
    throw new UsageError(
      `unknown resource kind ${JSON.stringify(spelling)} (known: ${kindSpellings().join(', ')})`,
    );
  }
  return info;
}

export async function withStore<T>(cmd: Command, fn: (ds: AgentStore) => Promise<T>): Promise<T> {
  const ds = await datastoreFrom(cmd.optsWithGlobals<GlobalOptions>());
  try {
    return await fn(ds);
  } finally {
    await ds.close();
  }
}

export function refOf(r: StoredResource): string {
  const kind = kindOfObject(r.apiVersion, r.kind)?.name;
  if (kind === undefined) return `${r.kind} ${r.metadata.name}`;
  return describeRef({ kind, name: r.metadata.name, namespace: r.metadata.namespace });
}

export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/**
 * `--allow-version-mismatch`, accepted (and ignored) so scripts written for calicoctl
 * run unchanged: tortie's client and agents are one package, there is no version check
 * to skip.
 */
export function acceptVersionMismatch(cmd: Command): Command {
  return cmd.option(
    '--allow-version-mismatch',
    'accepted for calicoctl scripts; tortie has no client/cluster version check to skip',
  );
}

// --- manifests ------------------------------------------------------------------------

const MANIFEST_FILE = /\.(ya?ml|json)$/i;

/**
 * The manifest files under a directory, at any depth, in a stable order (by path, byte
 * order); dot-files and dot-directories are skipped.
 */
export async function manifestFilesUnder(dir: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (d: string): Promise<void> => {
    const entries = await readdir(d, { withFileTypes: true });
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const path = join(d, e.name);
      if (e.isDirectory()) await walk(path);
      else if (e.isFile() && MANIFEST_FILE.test(e.name)) found.push(path);
    }
  };
  await walk(dir);
  return found.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    throw new UsageError(
      `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
}

/**
 * The objects of every `-f` (a file, `-` for stdin, or a directory read recursively),
 * in order. Every file is parsed before anything is written: one bad document refuses
 * the whole call.
 */
export async function readManifests(
  files: readonly string[],
  io: CliIo,
): Promise<ManifestObject[]> {
  if (files.length === 0)
    throw new UsageError('give the objects with -f FILE or -f DIR (or -f - for stdin)');
  const out: ManifestObject[] = [];
  const problems: string[] = [];
  for (const given of files) {
    let paths = [given];
    if (given !== '-') {
      const st = await stat(given).catch((e: NodeJS.ErrnoException) => {
        throw new UsageError(`cannot read ${given}: ${e.code ?? e.message}`);
      });
      if (st.isDirectory()) {
        paths = await manifestFilesUnder(given);
        if (paths.length === 0)
          throw new UsageError(`no .yaml, .yml or .json files under ${given}`);
      }
    }
    for (const file of paths) {
      const text = file === '-' ? await io.readStdin() : await readText(file);
      try {
        out.push(...parseManifest(text, file));
      } catch (e) {
        if (e instanceof ManifestError) problems.push(e.message);
        else throw e;
      }
    }
  }
  if (problems.length > 0) throw new Error(`${problems.join('\n')}; nothing was written`);
  if (out.length === 0) throw new Error(`no objects in ${files.join(', ')}; nothing was written`);
  return out;
}

/** A refused call's details, each line pointing at its document. */
export function explain(e: unknown, manifests: readonly ManifestObject[], verb: string): unknown {
  if (!(e instanceof DatastoreError) || e.details.length === 0 || e.kind === 'unavailable')
    return e;
  const lines = e.details.map((d) => {
    const source = manifests[d.index ?? 0]?.source;
    return `  ${source === undefined ? '' : `${source}: `}${d.message}`;
  });
  return new DatastoreError(
    e.kind,
    `${verb === 'validate' ? 'not valid' : `${verb} refused, nothing was written`}:\n${lines.join('\n')}`,
    e.details,
    { cause: e },
  );
}
