/**
 * What the native mappings share: the key range of a kind, the identity an API object
 * gives its stored counterpart, and reading the value a put carries.
 */
import { encodeResource, type ObjectMeta, type StoredResource } from '../../codec.js';
import { kindPrefix, type KindName } from '../../kinds.js';
import type { KubeObject, KubeResource } from '../mapping.js';

export function coreResource(plural: string, kind: string, namespaced: boolean): KubeResource {
  return { group: '', version: 'v1', plural, kind, namespaced };
}

/** `${prefix}/resources/v3/<group>/<plural>/`: the range of one of tortie's kinds. */
export function rangeOf(kind: KindName, prefix: string): string {
  return kindPrefix(kind, undefined, prefix);
}

/**
 * The `[namespace/]name` of a key of a range; undefined for a key outside it or with
 * the wrong number of segments.
 */
export function keyParts(
  key: string,
  range: string,
  namespaced: boolean,
): { name: string; namespace?: string } | undefined {
  if (!key.startsWith(range)) return undefined;
  const parts = key.slice(range.length).split('/');
  if (parts.some((p) => p === '')) return undefined;
  if (namespaced) {
    return parts.length === 2 ? { namespace: parts[0]!, name: parts[1]! } : undefined;
  }
  return parts.length === 1 ? { name: parts[0]! } : undefined;
}

/** The identity of the stored object: the API object's uid and creation time. */
export function identityOf(
  object: KubeObject,
  name: string,
  namespace?: string,
): Pick<ObjectMeta, 'name' | 'namespace' | 'uid' | 'creationTimestamp'> {
  return {
    name,
    ...(namespace === undefined ? {} : { namespace }),
    uid: object.metadata.uid ?? '',
    creationTimestamp: object.metadata.creationTimestamp ?? '',
  };
}

/** Labels with nothing in them left out, as the codec stores them. */
export function someLabels(labels: Readonly<Record<string, string>> | undefined) {
  return labels === undefined || Object.keys(labels).length === 0 ? {} : { labels };
}

export function kv(key: string, resource: StoredResource<unknown>): { key: string; value: string } {
  return { key, value: encodeResource(resource) };
}

/** A put's value, read: a refusal text when it is not a stored resource. */
export interface PutValue {
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  readonly spec: Readonly<Record<string, unknown>>;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function stringRecord(v: unknown): Record<string, string> | undefined {
  if (v === undefined) return {};
  if (!isRecord(v)) return undefined;
  return Object.values(v).every((x) => typeof x === 'string')
    ? (v as Record<string, string>)
    : undefined;
}

export function readPut(key: string, value: string): PutValue | { refused: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (e) {
    return { refused: `the value for ${key} is not JSON (${(e as Error).message})` };
  }
  if (!isRecord(parsed) || !isRecord(parsed.metadata)) {
    return { refused: `the value for ${key} is not a resource with metadata and spec` };
  }
  const labels = stringRecord(parsed.metadata.labels);
  const annotations = stringRecord(parsed.metadata.annotations);
  if (labels === undefined)
    return { refused: `${key}: metadata.labels must map strings to strings` };
  if (annotations === undefined)
    return { refused: `${key}: metadata.annotations must map strings to strings` };
  const spec = parsed.spec === undefined ? {} : parsed.spec;
  if (!isRecord(spec)) return { refused: `${key}: spec must be an object` };
  return { labels, annotations, spec };
}

/** Order-insensitive equality of plain JSON values (objects by keys, arrays by position). */
export function sameJson(a: unknown, b: unknown): boolean {
  return canonical(a) === canonical(b);
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (isRecord(v)) {
    return `{${Object.keys(v)
      .filter((k) => v[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/** A string field of an API object (`spec.nodeName`...), or undefined. */
export function field(object: KubeObject, ...path: string[]): unknown {
  let at: unknown = object;
  for (const p of path) {
    if (!isRecord(at)) return undefined;
    at = at[p];
  }
  return at;
}

export function stringField(object: KubeObject, ...path: string[]): string | undefined {
  const v = field(object, ...path);
  return typeof v === 'string' && v !== '' ? v : undefined;
}

export { isRecord };
