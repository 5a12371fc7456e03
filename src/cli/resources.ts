/**
 * The resource commands of `tortie`, as calicoctl and kubectl spell them:
 *
 *   apply|create|replace -f FILE|DIR|- [--dry-run]   (YAML or JSON, many documents; one transaction)
 *   validate -f FILE|DIR|-                 (check every object; needs no store)
 *   delete -f FILE|DIR|-  |  delete KIND NAME... [-n NS]
 *   get KIND [NAME...] [-n NS | -A] [-l SELECTOR]
 *       [-o table|wide|yaml|json|jsonpath=TEMPLATE|custom-columns=HEADER:PATH,...]
 *   label KIND NAME key=value... key- [--overwrite] [-n NS]  |  label KIND NAME KEY... --remove
 *   patch, version (verbs.ts); datastore export|import (datastore-transfer.ts)
 *
 * `-f DIR` reads every .yaml, .yml and .json file under DIR, at any depth, by path.
 * `--allow-version-mismatch` is accepted everywhere for calicoctl's scripts.
 *
 * Exit codes: 0 done, 1 refused or failed (a message, never a stack trace), 2 bad usage.
 */
import { Command } from 'commander';
import {
  DatastoreError,
  describeRef,
  type StoredResource,
  type WriteResult,
} from '../datastore/index.js';
import { kindSpellings } from '../datastore/kinds.js';
import { validationWarnings } from '../datastore/schema/index.js';
import { parseSelector, SelectorError } from '../policy/selector.js';
import { registerDatastoreCommands } from './datastore-transfer.js';
import { dryRun, validRefs } from './dry-run.js';
import { formatResources, isTableFormat, outputFormat, type OutputFormat } from './output.js';
import {
  acceptVersionMismatch,
  collect,
  explain,
  processIo,
  readManifests,
  refOf,
  resolveKind,
  runAction,
  withStore,
  type CliIo,
} from './resource-common.js';
import { UsageError } from './usage.js';
import { registerVerbCommands } from './verbs.js';
import type { ManifestObject } from '../datastore/manifest.js';

export { processIo, runAction, type CliIo } from './resource-common.js';

const VERB_WORDS: Record<'apply' | 'create' | 'replace', Record<WriteResult['action'], string>> = {
  apply: { created: 'created', updated: 'configured', unchanged: 'unchanged', deleted: 'deleted' },
  create: { created: 'created', updated: 'configured', unchanged: 'unchanged', deleted: 'deleted' },
  replace: { created: 'created', updated: 'replaced', unchanged: 'unchanged', deleted: 'deleted' },
};

/** What accepted objects carry that the user should know (field names read in another case, fields not enforced yet). */
function warn(io: CliIo, manifests: readonly ManifestObject[]): void {
  for (const w of validationWarnings(manifests.map((m) => m.object))) io.err(`Warning: ${w}\n`);
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
    .option(
      '-f, --filename <file>',
      'YAML or JSON file, directory (recursive) or "-" for stdin; repeatable',
      collect,
      [],
    )
    .option('--dry-run', 'validate and say what would happen to each object; write nothing', false)
    .action(async (opts: { filename: string[]; dryRun: boolean }, cmd: Command) =>
      runAction(cmd, async () => {
        const manifests = await readManifests(opts.filename, io);
        if (opts.dryRun) {
          const planned = await withStore(cmd, async (ds) => {
            try {
              return await dryRun(
                ds,
                verb,
                manifests.map((m) => m.object),
              );
            } catch (e) {
              throw explain(e, manifests, `${verb} (dry run)`);
            }
          });
          warn(io, manifests);
          for (const p of planned) io.out(`${p.ref} ${VERB_WORDS[verb][p.action]} (dry run)\n`);
          return;
        }
        const results = await withStore(cmd, async (ds) => {
          try {
            return await ds[verb](manifests.map((m) => m.object));
          } catch (e) {
            throw explain(e, manifests, verb);
          }
        });
        warn(io, manifests);
        for (const r of results) io.out(`${refOf(r.resource)} ${VERB_WORDS[verb][r.action]}\n`);
      }),
    );
}

function validateCommand(program: Command, io: CliIo): void {
  program
    .command('validate')
    .description('check the objects of files or directories; needs no store, writes nothing')
    .option(
      '-f, --filename <file>',
      'YAML or JSON file, directory (recursive) or "-" for stdin; repeatable',
      collect,
      [],
    )
    .action(async (opts: { filename: string[] }, cmd: Command) =>
      runAction(cmd, async () => {
        const manifests = await readManifests(opts.filename, io);
        let refs: string[];
        try {
          refs = validRefs(manifests.map((m) => m.object));
        } catch (e) {
          throw explain(e, manifests, 'validate');
        }
        warn(io, manifests);
        for (const ref of refs) io.out(`${ref} valid\n`);
      }),
    );
}

function deleteCommand(program: Command, io: CliIo): void {
  program
    .command('delete')
    .description('delete the objects of a file, or KIND NAME...; all or nothing')
    .argument('[kind]', 'kind of the objects (ippool, policy, gnp, ...)')
    .argument('[names...]', 'names of the objects')
    .option(
      '-f, --filename <file>',
      'YAML or JSON file, directory (recursive) or "-" for stdin; repeatable',
      collect,
      [],
    )
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
    .option(
      '-l, --selector <selector>',
      "only objects whose labels match (Calico syntax: app == 'web')",
    )
    .option(
      '-o, --output <format>',
      'table, wide, yaml, json, jsonpath=TEMPLATE or custom-columns=HEADER:PATH,...',
      outputFormat,
      'table' as OutputFormat,
    )
    .action(
      async (
        kind: string,
        names: string[],
        opts: {
          namespace?: string;
          allNamespaces: boolean;
          selector?: string;
          output: OutputFormat;
        },
        cmd: Command,
      ) =>
        runAction(cmd, async () => {
          const info = resolveKind(kind);
          if (opts.allNamespaces && opts.namespace !== undefined)
            throw new UsageError('give -n NAMESPACE or -A, not both');
          if (opts.allNamespaces && names.length > 0)
            throw new UsageError('-A lists every namespace; it takes no names');
          if (opts.selector !== undefined && names.length > 0)
            throw new UsageError('-l selects among all objects; it takes no names');
          const selector = selectorOf(opts.selector);
          const namespace =
            info.namespaced && !opts.allNamespaces ? (opts.namespace ?? 'default') : undefined;
          await withStore(cmd, async (ds) => {
            if (names.length === 0) {
              const listed = await ds.listWithRevision(
                info.name,
                namespace === undefined ? {} : { namespace },
              );
              const { revision } = listed;
              const items =
                selector === undefined
                  ? listed.items
                  : listed.items.filter((r) => selector.matches(r.metadata.labels ?? {}));
              if (items.length === 0 && isTableFormat(opts.output)) {
                io.err(
                  `No ${info.plural} found${namespace === undefined ? '' : ` in namespace ${namespace}`}${selector === undefined ? '' : ` matching ${selector.source}`}.\n`,
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

/** The `-l` selector, parsed; a bad one is a usage mistake that says where. */
function selectorOf(text: string | undefined): ReturnType<typeof parseSelector> | undefined {
  if (text === undefined) return undefined;
  try {
    return parseSelector(text);
  } catch (e) {
    if (e instanceof SelectorError) throw new UsageError(`-l: ${e.message}`);
    throw e;
  }
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

/** With --remove: each argument is a key (`key-` allowed too); `key=value` is a mistake. */
export function parseRemovedKeys(args: readonly string[]): Record<string, null> {
  const changes: Record<string, null> = {};
  for (const arg of args) {
    const key = arg.endsWith('-') && arg.length > 1 ? arg.slice(0, -1) : arg;
    if (key.includes('='))
      throw new UsageError(
        `${JSON.stringify(arg)}: with --remove give only label keys (e.g. --remove app), not key=value`,
      );
    changes[key] = null;
  }
  return changes;
}

function labelCommand(program: Command, io: CliIo): void {
  program
    .command('label')
    .description('set (key=value) or remove (key-, or KEY --remove) labels of one object')
    .argument('<kind>', 'kind of the object')
    .argument('<name>', 'name of the object')
    .argument('<labels...>', 'key=value to set, key- to remove (with --remove: the keys)')
    .option('-n, --namespace <ns>', 'namespace of namespaced kinds', 'default')
    .option('--overwrite', 'allow changing the value of an existing label', false)
    .option('--remove', "remove the labels named (calicoctl's spelling of key-)", false)
    .action(
      async (
        kind: string,
        name: string,
        labelArgs: string[],
        opts: { namespace: string; overwrite: boolean; remove: boolean },
        cmd: Command,
      ) =>
        runAction(cmd, async () => {
          const info = resolveKind(kind);
          const changes = opts.remove ? parseRemovedKeys(labelArgs) : parseLabelArgs(labelArgs);
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

const RESOURCE_COMMANDS = [
  'apply',
  'create',
  'replace',
  'delete',
  'get',
  'label',
  'validate',
  'patch',
  'version',
] as const;

/**
 * Adds apply, create, replace, validate, delete, get, label, patch and version to the
 * program, and `--allow-version-mismatch` to it and to each of them.
 */
export function registerResourceCommands(program: Command, io: CliIo = processIo): Command {
  acceptVersionMismatch(program);
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
  validateCommand(program, io);
  registerVerbCommands(program, io);
  registerDatastoreCommands(program, io);
  for (const name of RESOURCE_COMMANDS)
    acceptVersionMismatch(program.commands.find((c) => c.name() === name)!);
  return program;
}
