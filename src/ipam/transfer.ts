/**
 * IPAM records in `tortie datastore export` / `import` (src/cli/datastore-transfer.ts):
 * each record as `{ key, value }`, the key below `<prefix>/ipam/v2/` (e.g.
 * `assignment/ipv4/block/10.65.0.0-26`), the value the stored JSON as an object. Calico's
 * 64-bit sequence numbers past 2^53 are written as strings of digits (JSON and YAML
 * readers would round them) and read back exactly.
 *
 * Import checks every record through the codec (records.ts) before anything is written and
 * writes it as the codec encodes it; two records are the same when they encode the same.
 * Records of an export made before IPAM took Calico's format (keys `blocks/…`,
 * `handles/…`, `affinity/…`) are converted (legacy.ts).
 */
import { IpamError } from './errors.js';
import { parseJson, stringifyJson } from './json.js';
import { IpamKeys, normalisePrefix } from './keys.js';
import { convertLegacyIpam } from './legacy.js';
import {
  encodeAffinity,
  encodeBlock,
  encodeHandle,
  encodeStoredConfig,
  parseAffinity,
  parseBlock,
  parseHandle,
  parseStoredConfig,
} from './records.js';

export interface TransferRecord {
  readonly key: string;
  readonly value: unknown;
}

function plain(v: unknown): unknown {
  if (typeof v === 'bigint') return v.toString();
  if (Array.isArray(v)) return v.map(plain);
  if (v !== null && typeof v === 'object')
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

/** A stored record (full key, text) as an export carries it. */
export function exportRecord(keys: IpamKeys, key: string, text: string): TransferRecord {
  let value: unknown;
  try {
    value = plain(parseJson(text));
  } catch {
    value = text;
  }
  return { key: key.slice(keys.root.length), value };
}

/** A record's text: digit strings of sequence numbers become integers again. */
function recordText(value: unknown): string {
  const text = stringifyJson(value);
  return text
    .replace(/"sequenceNumber":"(\d+)"/g, '"sequenceNumber":$1')
    .replace(/"sequenceNumberForAllocation":\{[^{}]*\}/g, (m) =>
      m.replace(/("\d+"):"(\d+)"/g, '$1:$2'),
    );
}

/** The record as IPAM writes it; IpamError `invalid` when it is not one. */
export function canonicalRecord(keys: IpamKeys, key: string, text: string): string {
  const cidr = keys.blockCidr(key);
  if (cidr) return encodeBlock(parseBlock(key, text, cidr), cidr);
  const handle = keys.handleName(key);
  if (handle) return encodeHandle(parseHandle(key, text, handle));
  if (keys.affinityOf(key)) return encodeAffinity(parseAffinity(key, text).state);
  if (key === keys.config) return encodeStoredConfig(parseStoredConfig(key, text));
  throw new IpamError('invalid', `${key.slice(keys.root.length)} is not an IPAM record key`);
}

const LEGACY = /^(blocks|handles|affinity)\//;

/**
 * The records of an import, checked and encoded: full keys under `prefix`, texts as
 * stored. Legacy (v1) records are converted. Errors name the record's index.
 */
export function importRecords(
  prefix: string,
  records: readonly TransferRecord[],
): { key: string; text: string }[] {
  const keys = new IpamKeys(prefix);
  const v1Root = `${normalisePrefix(prefix)}/ipam/v1/`;
  return records.map((r, i) => {
    const where = `records[${i}] (${r.key})`;
    if (r.key.split('/').some((s) => s === '' || s === '.' || s === '..'))
      throw new IpamError('invalid', `${where}: not a record key`);
    try {
      if (LEGACY.test(r.key)) {
        const text = typeof r.value === 'string' ? r.value : JSON.stringify(r.value);
        const c = convertLegacyIpam([{ key: v1Root + r.key, value: text }], { from: prefix });
        const skipped = c.skipped[0];
        if (skipped) throw new IpamError('invalid', skipped.reason.slice(v1Root.length));
        const out = c.records[0]!;
        return { key: out.key, text: out.value };
      }
      const key = keys.root + r.key;
      const text = typeof r.value === 'string' ? r.value : recordText(r.value);
      return { key, text: canonicalRecord(keys, key, text) };
    } catch (e) {
      throw new IpamError('invalid', `${where}: ${(e as Error).message}`);
    }
  });
}
