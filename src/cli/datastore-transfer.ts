/**
 * `tortie datastore export` and `import`: the whole store as one manifest stream, to back
 * it up, move it to another etcd or another prefix, or keep it in Git.
 *
 *   datastore export [-o yaml|json]   every resource of every kind (all namespaces), then
 *                                     the IPAM records as one `IPAMRecords` document
 *   datastore import -f FILE|DIR|-    the same stream back; run it twice, nothing changes
 *
 * Exported resources carry no resourceVersion or uid (the importing store makes its own).
 * IPAM records are Calico's (`<prefix>/ipam/v2/…`), keys relative to `<prefix>/ipam/v2/`
 * (src/ipam/transfer.ts; an older export's v1 records are converted on import).
 * Import checks everything before it writes anything: every object valid, every IPAM
 * record valid and either absent from the store or equal to the one given (a record that
 * differs refuses the import: IPAM state is never overwritten, only filled in). Then resources
 * are applied (one transaction per 100 objects: etcd's --max-txn-ops allows 128
 * operations) and missing IPAM records created, each guarded by "still absent".
 * IPAM records are written only into a store whose agents do not run yet: that is what
 * a migration or restore is.
 */
import type { Command } from 'commander';
import { Option } from 'commander';
import { stringify as toYaml } from 'yaml';
import {
  DatastoreError,
  KIND_NAMES,
  type Datastore,
  type EtcdWatchClient,
  type StoredResource,
} from '../datastore/index.js';
import type { ManifestObject } from '../datastore/manifest.js';
import { guardedWrite, modEquals, putOp, readSnapshot } from '../datastore/txn.js';
import { IpamKeys } from '../ipam/keys.js';
import {
  canonicalRecord,
  exportRecord,
  importRecords,
  type TransferRecord,
} from '../ipam/transfer.js';
import { registerMigrateCommand } from './datastore-migrate.js';
import { validateAll } from './dry-run.js';
import {
  acceptVersionMismatch,
  collect,
  explain,
  readManifests,
  runAction,
  withStore,
  type CliIo,
} from './resource-common.js';

export const IPAM_RECORDS_KIND = 'IPAMRecords';
const IPAM_API_VERSION = 'tortie.io/v1';
/** Objects per apply transaction (each is a compare and a put; etcd allows 128 ops). */
const APPLY_CHUNK = 100;
/** IPAM records per transaction (a compare and a put each). */
const IPAM_CHUNK = 60;

/** A record of the IPAMRecords document: the key below `<prefix>/ipam/v2/`, the value. */
type IpamRecord = TransferRecord;

function exportable(r: StoredResource): Record<string, unknown> {
  const metadata: Record<string, unknown> = { ...r.metadata };
  delete metadata.resourceVersion;
  delete metadata.uid;
  return { ...r, metadata };
}

/** Every resource (kinds in the store's order, then key order) and the IPAM records. */
export async function exportStore(ds: Datastore<EtcdWatchClient>): Promise<unknown[]> {
  const docs: unknown[] = [];
  for (const kind of KIND_NAMES) docs.push(...(await ds.list(kind)).map(exportable));
  const keys = new IpamKeys(ds.prefix);
  const root = keys.root;
  const snap = await readSnapshot(
    ds.etcd,
    { prefixes: [root] },
    {
      deadline: Date.now() + ds.timeoutMs,
    },
  );
  const records: IpamRecord[] = (snap.prefixes.get(root) ?? []).map((kv) =>
    exportRecord(keys, kv.key.toString(), kv.value.toString()),
  );
  docs.push({
    apiVersion: IPAM_API_VERSION,
    kind: IPAM_RECORDS_KIND,
    metadata: { name: 'ipam' },
    records,
  });
  return docs;
}

function isIpamDocument(o: unknown): o is { records?: unknown } {
  return (
    typeof o === 'object' &&
    o !== null &&
    (o as { kind?: unknown }).kind === IPAM_RECORDS_KIND &&
    (o as { apiVersion?: unknown }).apiVersion === IPAM_API_VERSION
  );
}

function ipamRecordsOf(m: ManifestObject): IpamRecord[] {
  const records = (m.object as { records?: unknown }).records ?? [];
  if (!Array.isArray(records))
    throw new DatastoreError(
      'invalid',
      `${m.source}: ${IPAM_RECORDS_KIND}: records: is not a list`,
    );
  return records.map((r: unknown, i) => {
    const rec = r as { key?: unknown; value?: unknown };
    if (
      typeof r !== 'object' ||
      r === null ||
      typeof rec.key !== 'string' ||
      !/^(assignment|handle|host|config|blocks|handles|affinity)(\/[^\s]+)?$/.test(rec.key) ||
      rec.key.split('/').some((s) => s === '' || s === '.' || s === '..') ||
      rec.value === undefined
    )
      throw new DatastoreError(
        'invalid',
        `${m.source}: ${IPAM_RECORDS_KIND}: records[${i}]: give key (assignment/ipv4/block/…, handle/…, host/…/ipv4/block/… or config) and value`,
      );
    return { key: rec.key, value: rec.value };
  });
}

export interface ImportSummary {
  readonly created: number;
  readonly configured: number;
  readonly unchanged: number;
  readonly ipamWritten: number;
  readonly ipamUnchanged: number;
}

/** Checks everything, then writes; see the module comment. */
export async function importStore(
  ds: Datastore<EtcdWatchClient>,
  manifests: readonly ManifestObject[],
): Promise<ImportSummary> {
  const resources = manifests.filter((m) => !isIpamDocument(m.object));
  const records = manifests.filter((m) => isIpamDocument(m.object)).flatMap(ipamRecordsOf);
  try {
    validateAll(resources.map((m) => m.object));
  } catch (e) {
    throw explain(e, resources, 'import');
  }
  const keys = new IpamKeys(ds.prefix);
  const root = keys.root;
  let given: { key: string; text: string }[];
  try {
    given = importRecords(ds.prefix, records);
  } catch (e) {
    throw new DatastoreError(
      'invalid',
      `import refused, nothing was written: ${IPAM_RECORDS_KIND}: ${(e as Error).message}`,
    );
  }
  const call = () => ({ deadline: Date.now() + ds.timeoutMs });
  const snap = await readSnapshot(ds.etcd, { prefixes: [root] }, call());
  const stored = new Map(
    (snap.prefixes.get(root) ?? []).map((kv) => [kv.key.toString(), kv.value.toString()]),
  );
  const missing: { key: string; text: string }[] = [];
  const differ: string[] = [];
  const seen = new Set<string>();
  for (const r of given) {
    const shown = r.key.slice(root.length);
    if (seen.has(r.key)) differ.push(`${shown}: given twice`);
    seen.add(r.key);
    const have = stored.get(r.key);
    if (have === undefined) missing.push(r);
    else if (!sameRecord(keys, r.key, have, r.text))
      differ.push(`${shown}: the store holds another value`);
  }
  if (differ.length > 0)
    throw new DatastoreError(
      'conflict',
      `import refused, nothing was written: IPAM records that differ from the store's (IPAM state is only filled in, never overwritten):\n  ${differ.join('\n  ')}`,
    );

  let created = 0;
  let configured = 0;
  let unchanged = 0;
  for (let i = 0; i < resources.length; i += APPLY_CHUNK) {
    const chunk = resources.slice(i, i + APPLY_CHUNK);
    let results;
    try {
      results = await ds.apply(chunk.map((m) => m.object));
    } catch (e) {
      throw explain(e, chunk, i === 0 ? 'import' : `import (after ${i} objects; run it again)`);
    }
    for (const r of results) {
      if (r.action === 'created') created++;
      else if (r.action === 'updated') configured++;
      else unchanged++;
    }
  }
  for (let i = 0; i < missing.length; i += IPAM_CHUNK) {
    const chunk = missing.slice(i, i + IPAM_CHUNK);
    const res = await guardedWrite(
      ds.etcd,
      chunk.map((r) => modEquals(r.key, '0')),
      chunk.map((r) => putOp(r.key, r.text)),
      call(),
    );
    if (!res.succeeded)
      throw new DatastoreError(
        'conflict',
        `import: IPAM records were written by someone else during the import (after ${i} of ${missing.length}); run it again`,
      );
  }
  return {
    created,
    configured,
    unchanged,
    ipamWritten: missing.length,
    ipamUnchanged: records.length - missing.length,
  };
}

/** The stored record and the given one encode the same (a record that does not parse: as text). */
function sameRecord(keys: IpamKeys, key: string, stored: string, text: string): boolean {
  try {
    return canonicalRecord(keys, key, stored) === text;
  } catch {
    return stored === text;
  }
}

export function registerDatastoreCommands(program: Command, io: CliIo): void {
  const datastore = program
    .command('datastore')
    .description('the whole store: export it as manifests, import them again, migrate it');
  datastore
    .command('export')
    .description('every resource and the IPAM records, as YAML documents (or a JSON list)')
    .addOption(
      new Option('-o, --output <format>', 'yaml or json').choices(['yaml', 'json']).default('yaml'),
    )
    .action(async (opts: { output: 'yaml' | 'json' }, cmd: Command) =>
      runAction(cmd, async () => {
        const docs = await withStore(cmd, exportStore);
        io.out(
          opts.output === 'json'
            ? JSON.stringify(docs, null, 2) + '\n'
            : docs.map((d) => toYaml(d)).join('---\n'),
        );
      }),
    );
  datastore
    .command('import')
    .description('apply an export: resources created or updated, missing IPAM records added')
    .option(
      '-f, --filename <file>',
      'an export: file, directory (recursive) or "-" for stdin; repeatable',
      collect,
      [],
    )
    .action(async (opts: { filename: string[] }, cmd: Command) =>
      runAction(cmd, async () => {
        const manifests = await readManifests(opts.filename, io);
        const s = await withStore(cmd, (ds) => importStore(ds, manifests));
        io.out(
          `resources: ${s.created} created, ${s.configured} configured, ${s.unchanged} unchanged\n` +
            `IPAM records: ${s.ipamWritten} written, ${s.ipamUnchanged} unchanged\n`,
        );
      }),
    );
  registerMigrateCommand(datastore, io);
  for (const c of [datastore, ...datastore.commands]) acceptVersionMismatch(c);
}
