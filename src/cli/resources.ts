/**
 * The resource commands of `tortie`, as calicoctl and kubectl spell them:
 *
 *   apply|create|replace -f FILE|-        (YAML or JSON, many documents; one transaction)
 *   delete -f FILE|-  |  delete KIND NAME... [-n NS]
 *   get KIND [NAME...] [-n NS | -A] [-o table|wide|yaml|json]
 *   label KIND NAME key=value... key- [--overwrite] [-n NS]
 *
 * Exit codes: 0 done, 1 refused or failed (a message, never a stack trace), 2 bad usage.
 */
import { readFile } from 'node:fs/promises';
import { Command, Option } from 'commander';
import {
  Datastore,
  DatastoreError,
  describeRef,
  findKind,
  kindOfObject,
  type KindInfo,
  type StoredResource,
  type WriteResult,
} from '../datastore/index.js';
import { kindSpellings } from '../datastore/kinds.js';
import { datastoreFrom, type GlobalOptions } from './context.js';
import { failUsage, isUsageMistake, UsageError } from './usage.js';
import { formatResources, OUTPUT_FORMATS, type OutputFormat } from './output.js';
import { ManifestError, parseManifest, type ManifestObject } from '../datastore/manifest.js';

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

function resolveKind(spelling: string): KindInfo {
  const info = findKind(spelling);
  if (info === undefined) {
    throw new UsageError(
      `unknown resource kind ${JSON.stringify(spelling)} (known: ${kindSpellings().join(', ')})`,
    );
  }
  return info;
}

async function withStore<T>(cmd: Command, fn: (ds: Datastore) => Promise<T>): Promise<T> {
  const ds = await datastoreFrom(cmd.optsWithGlobals<GlobalOptions>());
  try {
    return await fn(ds);
  } finally {
    await ds.close();
  }
}

// --- manifests ------------------------------------------------------------------------

async function readManifests(files: readonly string[], io: CliIo): Promise<ManifestObject[]> {
  if (files.length === 0) throw new UsageError('give the objects with -f FILE (or -f - for stdin)');
  const out: ManifestObject[] = [];
  for (const file of files) {
    let text: string;
    if (file === '-') {
      text = await io.readStdin();
    } else {
      try {
        text = await readFile(file, 'utf8');
      } catch (e) {
        throw new UsageError(
          `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
        );
      }
    }
    try {
      out.push(...parseManifest(text, file));
    } catch (e) {
      if (e instanceof ManifestError) throw new Error(`${e.message}; nothing was written`);
      throw e;
    }
  }
  if (out.length === 0) throw new Error(`no objects in ${files.join(', ')}; nothing was written`);
  return out;
}

/** A refused call's details, each line pointing at its document. */
function explain(e: unknown, manifests: readonly ManifestObject[], verb: string): unknown {
  if (!(e instanceof DatastoreError) || e.details.length === 0 || e.kind === 'unavailable')
    return e;
  const lines = e.details.map((d) => {
    const source = manifests[d.index ?? 0]?.source;
    return `  ${source === undefined ? '' : `${source}: `}${d.message}`;
  });
  return new DatastoreError(
    e.kind,
    `${verb} refused, nothing was written:\n${lines.join('\n')}`,
    e.details,
    { cause: e },
  );
}

const VERB_WORDS: Record<'apply' | 'create' | 'replace', Record<WriteResult['action'], string>> = {
  apply: { created: 'created', updated: 'configured', unchanged: 'unchanged', deleted: 'deleted' },
  create: { created: 'created', updated: 'configured', unchanged: 'unchanged', deleted: 'deleted' },
  replace: { created: 'created', updated: 'replaced', unchanged: 'unchanged', deleted: 'deleted' },
};

function refOf(r: StoredResource): string {
  const kind = kindOfObject(r.apiVersion, r.kind)?.name;
  if (kind === undefined) return `${r.kind} ${r.metadata.name}`;
  return describeRef({ kind, name: r.metadata.name, namespace: r.metadata.namespace });
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

// --- commands -------------------------------------------------------------------------

function writeCommand(
  program: Command,
  verb: 'apply' | 'create' | 'replace',
  description: string,
  io: CliIo,
): void {
  program
    .command(verb)
    .description(description)
    .option('-f, --filename <file>', 'YAML or JSON file, "-" for stdin; repeatable', collect, [])
    .action(async (opts: { filename: string[] }, cmd: Command) =>
      runAction(cmd, async () => {
        const manifests = await readManifests(opts.filename, io);
        const results = await withStore(cmd, async (ds) => {
          try {
            return await ds[verb](manifests.map((m) => m.object));
          } catch (e) {
            throw explain(e, manifests, verb);
          }
        });
        for (const r of results) io.out(`${refOf(r.resource)} ${VERB_WORDS[verb][r.action]}\n`);
      }),
    );
}

function deleteCommand(program: Command, io: CliIo): void {
  program
    .command('delete')
    .description('delete the objects of a file, or KIND NAME...; all or nothing')
    .argument('[kind]', 'kind of the objects (ippool, policy, gnp, ...)')
    .argument('[names...]', 'names of the objects')
    .option('-f, --filename <file>', 'YAML or JSON file, "-" for stdin; repeatable', collect, [])
    .option('-n, --namespace <ns>', 'namespace of namespaced kinds', 'default')
    .option('--skip-not-found', 'succeed for objects that do not exist', false)
    .action(
      async (
        kind: string | undefined,
        names: string[],
        opts: { filename: string[]; namespace: string; skipNotFound: boolean },
        cmd: Command,
      ) =>
        runAction(cmd, async () => {
          let targets: unknown[];
          let manifests: ManifestObject[] = [];
          if (opts.filename.length > 0) {
            if (kind !== undefined)
              throw new UsageError('give either -f FILE or KIND NAME..., not both');
            manifests = await readManifests(opts.filename, io);
            targets = manifests.map((m) => m.object);
          } else {
            if (kind === undefined)
              throw new UsageError('say what to delete: -f FILE, or KIND NAME...');
            const info = resolveKind(kind);
            if (names.length === 0)
              throw new UsageError(`name the ${info.plural} to delete: delete ${kind} NAME...`);
            targets = names.map((name) => ({ kind: info.name, name, namespace: opts.namespace }));
            manifests = names.map((name) => ({
              object: undefined,
              source: `${info.name} ${name}`,
            }));
          }
          const results = await withStore(cmd, async (ds) => {
            try {
              return await ds.delete(targets, { ignoreNotFound: opts.skipNotFound });
            } catch (e) {
              throw opts.filename.length > 0 ? explain(e, manifests, 'delete') : e;
            }
          });
          for (const r of results) io.out(`${refOf(r.resource)} deleted\n`);
        }),
    );
}

function getCommand(program: Command, io: CliIo): void {
  program
    .command('get')
    .description('print objects of one kind: a table, or YAML / JSON to edit and apply again')
    .argument(
      '<kind>',
      `kind (${kindSpellings().slice(0, 6).join(', ')}, ...; singular, plural or short)`,
    )
    .argument('[names...]', 'only these objects')
    .option('-n, --namespace <ns>', 'namespace of namespaced kinds (default "default")')
    .option('-A, --all-namespaces', 'every namespace', false)
    .addOption(
      new Option('-o, --output <format>', 'output format').choices(OUTPUT_FORMATS).default('table'),
    )
    .action(
      async (
        kind: string,
        names: string[],
        opts: { namespace?: string; allNamespaces: boolean; output: OutputFormat },
        cmd: Command,
      ) =>
        runAction(cmd, async () => {
          const info = resolveKind(kind);
          if (opts.allNamespaces && opts.namespace !== undefined)
            throw new UsageError('give -n NAMESPACE or -A, not both');
          if (opts.allNamespaces && names.length > 0)
            throw new UsageError('-A lists every namespace; it takes no names');
          const namespace =
            info.namespaced && !opts.allNamespaces ? (opts.namespace ?? 'default') : undefined;
          await withStore(cmd, async (ds) => {
            if (names.length === 0) {
              const { items, revision } = await ds.listWithRevision(
                info.name,
                namespace === undefined ? {} : { namespace },
              );
              if (items.length === 0 && (opts.output === 'table' || opts.output === 'wide')) {
                io.err(
                  `No ${info.plural} found${namespace === undefined ? '' : ` in namespace ${namespace}`}.\n`,
                );
                return;
              }
              io.out(
                formatResources(info.name, items, {
                  format: opts.output,
                  allNamespaces: opts.allNamespaces,
                  revision,
                }),
              );
              return;
            }
            const found: StoredResource[] = [];
            const missing: string[] = [];
            for (const name of names) {
              const r = await ds.get(info.name, name, namespace);
              if (r === undefined)
                missing.push(`${describeRef({ kind: info.name, name, namespace })} not found`);
              else found.push(r);
            }
            if (found.length > 0) {
              io.out(
                formatResources(info.name, found, {
                  format: opts.output,
                  single: names.length === 1,
                }),
              );
            }
            if (missing.length > 0) throw new DatastoreError('not-found', missing.join('\n'));
          });
        }),
    );
}

/** `key=value` sets, `key-` removes. */
export function parseLabelArgs(args: readonly string[]): Record<string, string | null> {
  const changes: Record<string, string | null> = {};
  for (const arg of args) {
    const eq = arg.indexOf('=');
    if (eq > 0) {
      changes[arg.slice(0, eq)] = arg.slice(eq + 1);
    } else if (eq < 0 && arg.endsWith('-') && arg.length > 1) {
      changes[arg.slice(0, -1)] = null;
    } else {
      throw new UsageError(
        `${JSON.stringify(arg)} is not a label change: use key=value to set, key- to remove`,
      );
    }
  }
  return changes;
}

function labelCommand(program: Command, io: CliIo): void {
  program
    .command('label')
    .description('set (key=value) or remove (key-) labels of one object')
    .argument('<kind>', 'kind of the object')
    .argument('<name>', 'name of the object')
    .argument('<labels...>', 'key=value to set, key- to remove')
    .option('-n, --namespace <ns>', 'namespace of namespaced kinds', 'default')
    .option('--overwrite', 'allow changing the value of an existing label', false)
    .action(
      async (
        kind: string,
        name: string,
        labelArgs: string[],
        opts: { namespace: string; overwrite: boolean },
        cmd: Command,
      ) =>
        runAction(cmd, async () => {
          const info = resolveKind(kind);
          const changes = parseLabelArgs(labelArgs);
          const result = await withStore(cmd, (ds) =>
            ds.label(info.name, name, info.namespaced ? opts.namespace : undefined, changes, {
              overwrite: opts.overwrite,
            }),
          );
          io.out(
            `${refOf(result.resource)} ${result.changed ? 'labeled' : 'not labeled (no change)'}\n`,
          );
        }),
    );
}

/** Adds apply, create, replace, delete, get and label to the program. */
export function registerResourceCommands(program: Command, io: CliIo = processIo): Command {
  writeCommand(program, 'apply', 'create or update the objects of a file; all or nothing', io);
  writeCommand(program, 'create', 'create the objects of a file; refused if any exists', io);
  writeCommand(
    program,
    'replace',
    'replace the objects of a file; refused if any is missing or changed since read',
    io,
  );
  deleteCommand(program, io);
  getCommand(program, io);
  labelCommand(program, io);
  return program;
}
