/**
 * Which object a delete names: a `{kind, name, namespace?}` reference, or a whole
 * object (as `delete -f` reads them) of which only the identity counts, plus its
 * resourceVersion / uid as guards when given.
 */
import { dnsLabel } from '../policy/fields.js';
import type { StoredResource } from './codec.js';
import { detail, type ErrorDetail } from './errors.js';
import { describeRef, findKind, KINDS, kindOfObject, type KindName } from './kinds.js';

export interface ObjectRef {
  readonly kind: KindName | string;
  readonly name: string;
  readonly namespace?: string;
}

export interface ResolvedRef {
  readonly kind: KindName;
  readonly name: string;
  readonly namespace?: string;
  readonly resourceVersion?: string;
  readonly uid?: string;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/** A reference or an object → the identity to delete, or why it names nothing. */
export function resolveRef(input: unknown, index?: number): ResolvedRef | ErrorDetail {
  if (!isRecord(input))
    return detail('object', '', 'expected an object or {kind, name, namespace}', index);
  let kind: KindName | undefined;
  let name: unknown;
  let namespace: unknown;
  let resourceVersion: unknown;
  let uid: unknown;
  if ('apiVersion' in input || 'metadata' in input) {
    const { apiVersion, metadata } = input;
    if (typeof apiVersion !== 'string')
      return detail('object', 'apiVersion', 'required field is missing', index);
    if (typeof input.kind !== 'string')
      return detail('object', 'kind', 'required field is missing', index);
    kind = kindOfObject(apiVersion, input.kind)?.name;
    if (kind === undefined)
      return detail(
        'object',
        'kind',
        `unknown kind ${JSON.stringify(input.kind)} for ${apiVersion}`,
        index,
      );
    if (!isRecord(metadata)) return detail(kind, 'metadata', 'required field is missing', index);
    ({ name, namespace, resourceVersion, uid } = metadata);
  } else {
    if (typeof input.kind !== 'string')
      return detail('object', 'kind', 'required field is missing', index);
    kind = findKind(input.kind)?.name;
    if (kind === undefined)
      return detail('object', 'kind', `unknown kind ${JSON.stringify(input.kind)}`, index);
    ({ name, namespace } = input);
  }
  if (typeof name !== 'string' || !NAME.test(name)) {
    return detail(
      kind,
      'metadata.name',
      name === undefined
        ? 'required field is missing'
        : `${JSON.stringify(name)} is not a valid name`,
      index,
    );
  }
  const ns = KINDS[kind].namespaced ? (namespace ?? 'default') : undefined;
  if (ns !== undefined && (typeof ns !== 'string' || !dnsLabel.safeParse(ns).success)) {
    return detail(
      describeRef({ kind, name }),
      'metadata.namespace',
      `${JSON.stringify(ns)} is not a namespace name`,
      index,
    );
  }
  return {
    kind,
    name,
    ...(ns === undefined ? {} : { namespace: ns as string }),
    ...(typeof resourceVersion === 'string' ? { resourceVersion } : {}),
    ...(typeof uid === 'string' ? { uid } : {}),
  };
}

export function isResolved(r: ResolvedRef | ErrorDetail): r is ResolvedRef {
  return !('message' in r);
}

export interface DeleteRefusal {
  readonly kind: 'not-found' | 'conflict';
  readonly detail: ErrorDetail;
}

/** Why the object a reference names cannot be deleted as asked, or undefined. */
export function deleteRefusal(
  ref: ResolvedRef,
  stored: StoredResource | undefined,
  index?: number,
): DeleteRefusal | undefined {
  const who = describeRef(ref);
  if (stored === undefined)
    return { kind: 'not-found', detail: detail(who, '', 'not found', index) };
  const { resourceVersion, uid } = stored.metadata;
  if (ref.resourceVersion !== undefined && ref.resourceVersion !== resourceVersion) {
    const reason = `is ${ref.resourceVersion} but the stored object is at ${resourceVersion}: it changed since you read it`;
    return { kind: 'conflict', detail: detail(who, 'metadata.resourceVersion', reason, index) };
  }
  if (ref.uid !== undefined && ref.uid !== uid) {
    const reason = `is ${ref.uid} but the stored object's uid is ${uid}: it was deleted and created again`;
    return { kind: 'conflict', detail: detail(who, 'metadata.uid', reason, index) };
  }
  return undefined;
}
