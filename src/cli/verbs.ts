/**
 * calicoctl's other everyday verbs:
 *
 *   patch KIND NAME -p '<JSON merge patch>' [-n NS]   RFC 7396, as `calicoctl patch`
 *   version [--client]                                 client and cluster versions
 *
 * `patch` reads the object, merges the patch into it and replaces it guarded by the
 * resourceVersion it read; when someone else wrote in between it reads again and redoes
 * the merge (unless the patch itself names a resourceVersion: then the conflict is the
 * answer). The merged object is validated as `replace` validates it: nothing half written.
 */
import { Command, Option } from 'commander';
import type { Etcd3 } from 'etcd3';
import {
  DatastoreError,
  describeRef,
  type Datastore,
  type EtcdWatchClient,
} from '../datastore/index.js';
import { packageVersion } from '../util/package-root.js';
import { mergePatch, parseMergePatch } from './merge-patch.js';
import { refOf, resolveKind, runAction, withStore, type CliIo } from './resource-common.js';
import { UsageError } from './usage.js';

/** Attempts of a patch whose object keeps changing under it. */
const PATCH_ATTEMPTS = 5;

function patchCommand(program: Command, io: CliIo): void {
  program
    .command('patch')
    .description('change fields of one object with a JSON merge patch (RFC 7396)')
    .argument('<kind>', 'kind of the object')
    .argument('<name>', 'name of the object')
    .requiredOption('-p, --patch <json>', `the merge patch, e.g. '{"spec":{"disabled":true}}'`)
    .addOption(
      new Option('-t, --type <type>', 'patch type (only JSON merge patch)')
        .choices(['merge'])
        .default('merge'),
    )
    .option('-n, --namespace <ns>', 'namespace of namespaced kinds', 'default')
    .action(
      async (
        kind: string,
        name: string,
        opts: { patch: string; namespace: string },
        cmd: Command,
      ) =>
        runAction(cmd, async () => {
          const info = resolveKind(kind);
          const patch = parseMergePatch(opts.patch);
          const namespace = info.namespaced ? opts.namespace : undefined;
          const who = describeRef({ kind: info.name, name, namespace });
          const meta = patch.metadata;
          if (
            meta !== undefined &&
            (typeof meta !== 'object' || meta === null || Array.isArray(meta))
          )
            throw new UsageError('-p: metadata must be an object');
          for (const field of ['name', 'namespace'] as const) {
            if (meta !== undefined && field in meta)
              throw new UsageError(
                `-p: a patch cannot change metadata.${field} (delete the object and create it under the new ${field})`,
              );
          }
          if ('kind' in patch) throw new UsageError('-p: a patch cannot change kind');
          const pinned = meta !== undefined && 'resourceVersion' in meta;
          const result = await withStore(cmd, (ds) =>
            patchWithRetry(ds, info.name, name, namespace, who, patch, pinned),
          );
          io.out(
            `${refOf(result.resource)} patched${result.action === 'unchanged' ? ' (no change)' : ''}\n`,
          );
        }),
    );
}

async function patchWithRetry(
  ds: Datastore<EtcdWatchClient>,
  kind: ReturnType<typeof resolveKind>['name'],
  name: string,
  namespace: string | undefined,
  who: string,
  patch: Record<string, unknown>,
  pinned: boolean,
) {
  for (let attempt = 1; ; attempt++) {
    const current = await ds.get(kind, name, namespace);
    if (current === undefined) throw new DatastoreError('not-found', `${who} not found`);
    const patched = mergePatch(current, patch);
    try {
      const [result] = await ds.replace([patched]);
      return result!;
    } catch (e) {
      const conflict = e instanceof DatastoreError && e.kind === 'conflict';
      if (!conflict || pinned || attempt >= PATCH_ATTEMPTS) {
        if (e instanceof DatastoreError && e.kind === 'invalid')
          throw new DatastoreError(
            e.kind,
            `patch refused, nothing was written:\n  ${e.message.split('\n').join('\n  ')}`,
            e.details,
            { cause: e },
          );
        throw e;
      }
    }
  }
}

/** The client's version: tortie's package.json. */
export function clientVersion(): string {
  return packageVersion();
}

/**
 * The cluster's side of `version`. tortie keeps no ClusterInformation: the cluster is
 * the etcd it stores in and the agents heartbeating into it, so this reports etcd's
 * server version (etcd's status call) and the agents whose heartbeats are in the store,
 * with the version each reports in its heartbeat ("not reported" by agents older than
 * the field).
 */
async function clusterLines(ds: Datastore<EtcdWatchClient>): Promise<[string, string][]> {
  const { readNodeStatuses } = await import('../agent/status.js');
  const deadline = new Promise<never>((_, reject) =>
    setTimeout(
      () => reject(new Error(`no answer within ${ds.timeoutMs} ms`)),
      ds.timeoutMs,
    ).unref(),
  );
  // The Kubernetes datastore's client has no etcd behind it to ask (the API server's is
  // its own): only etcd's status call is asked.
  const maintenance = (ds.etcd as Partial<Pick<Etcd3, 'maintenance'>>).maintenance;
  const [etcd, agents] = await Promise.all([
    maintenance === undefined ? undefined : Promise.race([maintenance.status(), deadline]),
    Promise.race([readNodeStatuses(ds), deadline]),
  ]);
  const versions = new Map<string, string[]>();
  for (const a of agents) {
    const v = a.version;
    const key = typeof v === 'string' && v !== '' ? v : 'not reported';
    versions.set(key, [...(versions.get(key) ?? []), a.node]);
  }
  const reported = [...versions.keys()].filter((v) => v !== 'not reported');
  return [
    ['Cluster Version:', reported.length === 0 ? 'unknown' : reported.sort().join(', ')],
    ...(etcd === undefined
      ? ([['Cluster Type:', 'tortie,kdd']] as [string, string][])
      : ([
          ['Cluster Type:', 'tortie,etcd'],
          ['etcd Version:', etcd.version],
        ] as [string, string][])),
    [
      'Agents:',
      agents.length === 0
        ? 'none heartbeating'
        : [...versions]
            .map(([v, nodes]) => `${nodes.length} (${v}: ${nodes.sort().join(', ')})`)
            .join('; '),
    ],
  ];
}

function versionCommand(program: Command, io: CliIo): void {
  program
    .command('version')
    .description("the client's version and the cluster's (etcd, agents)")
    .option('--client', "only the client's version; no store needed", false)
    .action(async (opts: { client: boolean }, cmd: Command) =>
      runAction(cmd, async () => {
        const say = (lines: readonly [string, string][]) =>
          io.out(lines.map(([k, v]) => `${k.padEnd(19)}${v}\n`).join(''));
        say([['Client Version:', clientVersion()]]);
        if (!opts.client) say(await withStore(cmd, clusterLines));
      }),
    );
}

/** Adds patch and version. */
export function registerVerbCommands(program: Command, io: CliIo): void {
  patchCommand(program, io);
  versionCommand(program, io);
}
