/**
 * Finding a store in the layout tortie used before Calico's (`<prefix>/resources/<plural>/…`,
 * under "/tortie" by default), so that an agent or the CLI that sees an empty store says
 * which command moves the old one (`tortie datastore migrate`) instead of running on
 * nothing. Only counts are read (one transaction).
 */
import type { EtcdCallOptions, EtcdKvClient } from './etcd/client.js';
import {
  DEFAULT_PREFIX,
  KIND_NAMES,
  kindPrefix,
  legacyKindPrefix,
  LEGACY_PREFIX,
  type KindName,
} from './kinds.js';
import { prefixEnd } from './txn.js';

export interface LegacyFinding {
  /** The prefix the old layout was found under. */
  readonly fromPrefix: string;
  /** Kinds with objects in the old layout and none in the new one, with the old count. */
  readonly kinds: readonly { readonly kind: KindName; readonly count: number }[];
}

function countOp(prefix: string) {
  return {
    request_range: {
      key: Buffer.from(prefix),
      range_end: prefixEnd(prefix),
      count_only: true,
    },
  };
}

/** Where old-layout objects may be: under the store's prefix, and under "/tortie" for "/calico". */
export function legacyPrefixes(prefix: string): string[] {
  const p = prefix.replace(/\/+$/, '');
  return p === DEFAULT_PREFIX ? [p, LEGACY_PREFIX] : [p];
}

/**
 * Kinds that have objects in the old layout but none in the new one under `prefix`; the
 * first prefix (legacyPrefixes) with any. Undefined when there is nothing to migrate.
 */
export async function findLegacyLayout(
  etcd: EtcdKvClient,
  prefix: string,
  options: EtcdCallOptions,
  kinds: readonly KindName[] = KIND_NAMES,
): Promise<LegacyFinding | undefined> {
  const olds = legacyPrefixes(prefix);
  const ranges = [
    ...kinds.map((k) => kindPrefix(k, undefined, prefix)),
    ...olds.flatMap((o) => kinds.map((k) => legacyKindPrefix(k, o))),
  ];
  const res = await etcd.kv.txn({ success: ranges.map(countOp) }, options);
  const count = (i: number) => Number(res.responses[i]?.response_range?.count ?? 0);
  for (let o = 0; o < olds.length; o++) {
    const found = kinds.flatMap((kind, i) => {
      const old = count(kinds.length * (o + 1) + i);
      return old > 0 && count(i) === 0 ? [{ kind, count: old }] : [];
    });
    if (found.length > 0) return { fromPrefix: olds[o]!, kinds: found };
  }
  return undefined;
}

/** What to tell the user: what was found, and the command that moves it. */
export function migrateHint(found: LegacyFinding, toPrefix: string): string {
  const what = found.kinds.map((k) => `${k.count} ${k.kind}`).join(', ');
  const to = toPrefix.replace(/\/+$/, '');
  return (
    `the store holds objects in tortie's old layout under ${found.fromPrefix}/resources/ (${what}) ` +
    `and none of those kinds in Calico's layout under ${to}/resources/v3/: move them with ` +
    `\`tortie datastore migrate --from-prefix ${found.fromPrefix} --to-prefix ${to}\``
  );
}
