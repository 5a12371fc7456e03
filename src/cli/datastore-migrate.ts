/**
 * `tortie datastore migrate --from-prefix /tortie [--to-prefix /calico]`: moves a store
 * kept in tortie's layout before Calico's (`<from>/resources/<plural>/[ns/]name`, objects
 * under tortie.io/v1, IPAM records under `<from>/ipam/v1/`) into Calico's layout under
 * `<to>` (src/datastore/kinds.ts), in the same etcd.
 *
 * Everything is checked before anything is written: every old object decodes and is
 * valid, and every object's new key is either absent or holds the same object (same
 * spec, labels and annotations; uid and creationTimestamp aside). One that differs refuses
 * the migration, naming it: nothing is overwritten. Then the missing objects are created,
 * each guarded by "still absent" (a race refuses the rest; run it again). Run twice, the
 * second run changes nothing. Objects keep their uid and creationTimestamp.
 *
 * The old keys stay where they are (a rollback to the older tortie finds its store);
 * delete them once the new store serves (`etcdctl del --prefix /tortie/`).
 *
 * IPAM records change format as well (v1 → Calico's v2, under `<to>/ipam/v2/`):
 * convertLegacyIpamRecords.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Command } from 'commander';
import {
  DatastoreError,
  decodeKeyValue,
  describeRef,
  encodeResource,
  KIND_NAMES,
  legacyKindPrefix,
  parseLegacyResourceKey,
  resourceKey,
  storedSpec,
  validateObject,
  type Datastore,
  type EtcdWatchClient,
  type ErrorDetail,
  type StoredResource,
} from '../datastore/index.js';
import { guardedWrite, modEquals, putOp, readSnapshot } from '../datastore/txn.js';
import { convertLegacyIpam } from '../ipam/legacy.js';
import { UsageError } from './usage.js';
import { runAction, withStore, type CliIo } from './resource-common.js';

/** Creates per transaction (a compare and a put each; etcd allows 128 operations). */
const CHUNK = 60;

export interface MigrateSummary {
  readonly created: number;
  readonly unchanged: number;
  readonly ipamWritten: number;
}

interface Planned {
  readonly key: string;
  readonly value: string;
  readonly who: string;
  readonly present: boolean;
}

/**
 * The IPAM half: `<from>/ipam/v1/…` records in Calico's format under `<to>/ipam/v2/…`
 * (convertLegacyIpam, src/ipam/legacy.ts). A record that does not convert refuses the
 * migration, naming it, before anything is written: moving the resources without every
 * allocation would let addresses in use be handed out again.
 */
export function convertLegacyIpamRecords(
  kvs: readonly { key: string; value: string }[],
  from: string,
  to: string,
): { key: string; value: string }[] {
  if (kvs.length === 0) return [];
  const { records, skipped } = convertLegacyIpam(kvs, { from, to });
  if (skipped.length > 0)
    throw new DatastoreError(
      'invalid',
      `migrate refused, nothing was written: ${skipped.length} of the ${kvs.length} IPAM record(s) under ${from}/ipam/v1/ do not convert to Calico's format:\n  ${skipped.map((s) => s.reason).join('\n  ')}`,
    );
  return records;
}

function oldObjectProblem(key: string, reason: string): ErrorDetail {
  return { object: key, path: '', reason, message: `${key}: ${reason}` };
}

/** The old store, read at one revision: objects as the new layout stores them. */
async function plan(
  ds: Datastore<EtcdWatchClient>,
  from: string,
  to: string,
): Promise<{ planned: Planned[]; ipam: { key: string; value: string }[] }> {
  const call = () => ({ deadline: Date.now() + ds.timeoutMs });
  const prefixes = KIND_NAMES.map((k) => legacyKindPrefix(k, from));
  const ipamRoot = `${from}/ipam/v1/`;
  const old = await readSnapshot(ds.etcd, { prefixes: [...prefixes, ipamRoot] }, call());
  const problems: ErrorDetail[] = [];
  const moved: { key: string; resource: StoredResource; who: string }[] = [];
  for (const prefix of prefixes) {
    for (const kv of old.prefixes.get(prefix) ?? []) {
      const key = kv.key.toString();
      const ref = parseLegacyResourceKey(key, from);
      if (ref === undefined) {
        problems.push(oldObjectProblem(key, 'is not a key of the old layout'));
        continue;
      }
      let obj: Record<string, unknown>;
      try {
        obj = JSON.parse(kv.value.toString()) as Record<string, unknown>;
      } catch {
        problems.push(oldObjectProblem(key, 'does not hold JSON'));
        continue;
      }
      const meta = (obj.metadata ?? {}) as Record<string, unknown>;
      const v = validateObject({
        apiVersion: obj.apiVersion,
        kind: obj.kind,
        metadata: {
          name: meta.name,
          ...(meta.namespace === undefined ? {} : { namespace: meta.namespace }),
          ...(meta.labels === undefined ? {} : { labels: meta.labels }),
          ...(meta.annotations === undefined ? {} : { annotations: meta.annotations }),
        },
        spec: obj.spec,
      });
      if (!v.ok) {
        problems.push(...v.details.map((d) => oldObjectProblem(key, d.message)));
        continue;
      }
      const o = v.object;
      if (o.info.name !== ref.kind || o.metadata.name !== ref.name) {
        problems.push(oldObjectProblem(key, `holds ${o.info.kind} ${o.metadata.name}`));
        continue;
      }
      const resource: StoredResource = {
        apiVersion: o.info.apiVersion,
        kind: o.info.kind,
        metadata: {
          name: o.metadata.name,
          ...(o.metadata.namespace === undefined ? {} : { namespace: o.metadata.namespace }),
          uid: typeof meta.uid === 'string' ? meta.uid : '',
          creationTimestamp:
            typeof meta.creationTimestamp === 'string' ? meta.creationTimestamp : '',
          ...(o.metadata.labels === undefined ? {} : { labels: o.metadata.labels }),
          ...(o.metadata.annotations === undefined ? {} : { annotations: o.metadata.annotations }),
        },
        spec: storedSpec(o.info.name, o.spec),
      };
      moved.push({
        key: resourceKey(o.info.name, o.metadata.name, o.metadata.namespace, to),
        resource,
        who: describeRef({
          kind: o.info.name,
          name: o.metadata.name,
          namespace: o.metadata.namespace,
        }),
      });
    }
  }
  if (problems.length > 0)
    throw new DatastoreError(
      'invalid',
      `migrate refused, nothing was written: objects of the old store under ${from}/resources/ do not read:\n  ${problems.map((p) => p.message).join('\n  ')}`,
      problems,
    );
  const ipam = convertLegacyIpamRecords(
    (old.prefixes.get(ipamRoot) ?? []).map((kv) => ({
      key: kv.key.toString(),
      value: kv.value.toString(),
    })),
    from,
    to,
  );

  const now = await readSnapshot(
    ds.etcd,
    { keys: [...moved.map((m) => m.key), ...ipam.map((r) => r.key)] },
    call(),
  );
  const differ: string[] = [];
  const planned = moved.map((m): Planned => {
    const kv = now.keys.get(m.key);
    if (kv === undefined)
      return { key: m.key, value: encodeResource(m.resource), who: m.who, present: false };
    let same = false;
    try {
      const have = decodeKeyValue(kv, to).resource;
      same =
        isDeepStrictEqual(have.spec, m.resource.spec) &&
        isDeepStrictEqual(have.metadata.labels ?? {}, m.resource.metadata.labels ?? {}) &&
        isDeepStrictEqual(have.metadata.annotations ?? {}, m.resource.metadata.annotations ?? {});
    } catch {
      same = false;
    }
    if (!same) differ.push(`${m.who}: ${m.key} holds another object`);
    return { key: m.key, value: '', who: m.who, present: true };
  });
  const ipamMissing = ipam.filter((r) => {
    const kv = now.keys.get(r.key);
    if (kv === undefined) return true;
    if (kv.value.toString() !== r.value) differ.push(`${r.key}: holds another IPAM record`);
    return false;
  });
  if (differ.length > 0)
    throw new DatastoreError(
      'conflict',
      `migrate refused, nothing was written: the new layout under ${to}/ already holds objects that differ from the old store's (nothing is overwritten; delete or rename them first):\n  ${differ.join('\n  ')}`,
    );
  return { planned, ipam: ipamMissing };
}

/** Checks everything, then creates what is missing; see the module comment. */
export async function migrateStore(
  ds: Datastore<EtcdWatchClient>,
  fromPrefix: string,
  toPrefix: string,
): Promise<MigrateSummary> {
  const from = fromPrefix.replace(/\/+$/, '');
  const to = toPrefix.replace(/\/+$/, '');
  const { planned, ipam } = await plan(ds, from, to);
  const writes = [
    ...planned.filter((p) => !p.present).map((p) => ({ key: p.key, value: p.value })),
    ...ipam,
  ];
  for (let i = 0; i < writes.length; i += CHUNK) {
    const chunk = writes.slice(i, i + CHUNK);
    const res = await guardedWrite(
      ds.etcd,
      chunk.map((w) => modEquals(w.key, '0')),
      chunk.map((w) => putOp(w.key, w.value)),
      { deadline: Date.now() + ds.timeoutMs },
    );
    if (!res.succeeded)
      throw new DatastoreError(
        'conflict',
        `migrate: keys under ${to}/ were written by someone else during the migration (after ${i} of ${writes.length}); run it again`,
      );
  }
  return {
    created: planned.filter((p) => !p.present).length,
    unchanged: planned.filter((p) => p.present).length,
    ipamWritten: ipam.length,
  };
}

function checkPrefix(flag: string, p: string): string {
  if (!p.startsWith('/')) throw new UsageError(`${flag} ${JSON.stringify(p)} must start with "/"`);
  return p;
}

export function registerMigrateCommand(datastore: Command, io: CliIo): void {
  datastore
    .command('migrate')
    .description(
      "move a store in tortie's old layout (<from>/resources/<plural>/…) into Calico's (<to>/resources/v3/…)",
    )
    .requiredOption('--from-prefix <prefix>', 'where the old store is (tortie used /tortie)')
    .option(
      '--to-prefix <prefix>',
      'where Calico keeps its store (default: --etcd-prefix, /calico)',
    )
    .action(async (opts: { fromPrefix: string; toPrefix?: string }, cmd: Command) =>
      runAction(cmd, async () => {
        const from = checkPrefix('--from-prefix', opts.fromPrefix);
        const s = await withStore(cmd, (ds) =>
          migrateStore(ds, from, checkPrefix('--to-prefix', opts.toPrefix ?? ds.prefix)),
        );
        io.out(
          `resources: ${s.created} created, ${s.unchanged} unchanged\nIPAM records: ${s.ipamWritten} written\n`,
        );
      }),
    );
}
