/**
 * Validation of one user object of any kind. Policy kinds go through
 * src/policy/resources.ts (their rules live there); the infrastructure kinds have their
 * schemas in this folder. The result is what the store writes: identity, metadata and
 * the spec to keep.
 */
import { z } from 'zod';
import { parseResource, ResourceError } from '../../policy/resources.js';
import { detail, type ErrorDetail } from '../errors.js';
import {
  describeRef,
  KIND_NAMES,
  KINDS,
  kindOfObject,
  type KindInfo,
  type KindName,
} from '../kinds.js';
import { agentConfigurationSpec } from './agent.js';
import { bgpConfigurationSpec, bgpPeerSpec } from './bgp.js';
import { hostEndpointSpec, workloadEndpointSpec } from './endpoints.js';
import { defaultOrNodeName, dnsSubdomain } from './fields.js';
import { parseWith } from './issues.js';
import { ipPoolSpec } from './ippool.js';
import { metadataSchema, type InputMetadata } from './metadata.js';
import { nodeSpec } from './node.js';

export type { InputMetadata } from './metadata.js';

export interface ValidObject {
  readonly info: KindInfo;
  readonly metadata: InputMetadata;
  /** What the store keeps as `spec`: defaults filled in for infrastructure kinds, as given for policy kinds. */
  readonly spec: Record<string, unknown>;
}

export type Validation =
  | { readonly ok: true; readonly object: ValidObject }
  | { readonly ok: false; readonly detail: ErrorDetail };

type SpecSchema = z.ZodType<unknown, z.ZodTypeDef, unknown>;

interface InfraKind {
  readonly name: z.ZodType<string, z.ZodTypeDef, unknown>;
  /** Whether an object without `spec` is refused. */
  readonly specRequired: boolean;
  readonly spec: (name: string) => SpecSchema;
}

const INFRA: Partial<Record<KindName, InfraKind>> = {
  IPPool: { name: dnsSubdomain, specRequired: true, spec: () => ipPoolSpec },
  HostEndpoint: { name: dnsSubdomain, specRequired: true, spec: () => hostEndpointSpec },
  WorkloadEndpoint: { name: dnsSubdomain, specRequired: true, spec: () => workloadEndpointSpec },
  Node: { name: dnsSubdomain, specRequired: false, spec: () => nodeSpec },
  BGPConfiguration: { name: defaultOrNodeName, specRequired: false, spec: bgpConfigurationSpec },
  BGPPeer: { name: dnsSubdomain, specRequired: true, spec: () => bgpPeerSpec },
  AgentConfiguration: {
    name: defaultOrNodeName,
    specRequired: false,
    spec: () => agentConfigurationSpec,
  },
};

const ENVELOPE_KEYS = new Set(['apiVersion', 'kind', 'metadata', 'spec']);
const K8S_ENVELOPE_KEYS = new Set([...ENVELOPE_KEYS, 'status']);

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** How messages name an object before it is validated. */
function label(info: KindInfo, obj: Record<string, unknown>): string {
  const m = isRecord(obj.metadata) ? obj.metadata : {};
  const name = typeof m.name === 'string' && m.name !== '' ? m.name : '(no name)';
  const namespace = typeof m.namespace === 'string' ? m.namespace : 'default';
  return describeRef({ kind: info.name, name, ...(info.namespaced ? { namespace } : {}) });
}

function identify(obj: unknown, index?: number): { info: KindInfo } | { refused: ErrorDetail } {
  if (!isRecord(obj)) {
    return {
      refused: detail(
        'object',
        '',
        'expected an object with apiVersion, kind, metadata and spec',
        index,
      ),
    };
  }
  const { apiVersion, kind } = obj;
  if (typeof apiVersion !== 'string')
    return { refused: detail('object', 'apiVersion', 'required field is missing', index) };
  if (typeof kind !== 'string')
    return { refused: detail('object', 'kind', 'required field is missing', index) };
  const info = kindOfObject(apiVersion, kind);
  if (info !== undefined) return { info };
  const known = KIND_NAMES.map((k) => KINDS[k]).filter((i) => i.apiVersion === apiVersion);
  if (known.length === 0) {
    const versions = [...new Set(KIND_NAMES.map((k) => KINDS[k].apiVersion))].join(', ');
    const reason = `unknown apiVersion ${JSON.stringify(apiVersion)} (expected one of ${versions})`;
    return { refused: detail('object', 'apiVersion', reason, index) };
  }
  const reason = `unknown kind ${JSON.stringify(kind)} for ${apiVersion} (expected one of ${known.map((i) => i.kind).join(', ')})`;
  return { refused: detail('object', 'kind', reason, index) };
}

function prefixed(prefix: string, path: string): string {
  if (path === '') return prefix;
  return path.startsWith('[') ? `${prefix}${path}` : `${prefix}.${path}`;
}

function validatePolicyKind(
  info: KindInfo,
  obj: Record<string, unknown>,
  who: string,
  index?: number,
): Validation {
  const meta = parseWith(metadataSchema(info, z.string()), obj.metadata);
  if (!meta.ok)
    return {
      ok: false,
      detail: detail(who, prefixed('metadata', meta.refusal.path), meta.refusal.reason, index),
    };
  const m = meta.value;
  try {
    parseResource({
      ...obj,
      metadata: {
        name: m.name,
        ...(m.namespace === undefined ? {} : { namespace: m.namespace }),
        labels: m.labels,
      },
    });
  } catch (e) {
    if (e instanceof ResourceError)
      return { ok: false, detail: detail(who, e.path, e.reason, index) };
    throw e;
  }
  const spec = isRecord(obj.spec) ? obj.spec : {};
  return { ok: true, object: { info, metadata: m, spec } };
}

function validateInfraKind(
  info: KindInfo,
  kind: InfraKind,
  obj: Record<string, unknown>,
  who: string,
  index?: number,
): Validation {
  const refuse = (path: string, reason: string): Validation => ({
    ok: false,
    detail: detail(who, path, reason, index),
  });
  for (const key of Object.keys(obj))
    if (!ENVELOPE_KEYS.has(key)) return refuse(key, 'unknown field');
  if (obj.metadata === undefined) return refuse('metadata', 'required field is missing');
  const meta = parseWith(metadataSchema(info, kind.name), obj.metadata);
  if (!meta.ok) return refuse(prefixed('metadata', meta.refusal.path), meta.refusal.reason);
  if (obj.spec === undefined && kind.specRequired)
    return refuse('spec', 'required field is missing');
  const spec = parseWith(kind.spec(meta.value.name), obj.spec ?? {});
  if (!spec.ok) return refuse(prefixed('spec', spec.refusal.path), spec.refusal.reason);
  return {
    ok: true,
    object: { info, metadata: meta.value, spec: spec.value as Record<string, unknown> },
  };
}

/** Validates one object; `index` (its place in a multi-object call) goes into the detail. */
export function validateObject(obj: unknown, index?: number): Validation {
  const identified = identify(obj, index);
  if ('refused' in identified) return { ok: false, detail: identified.refused };
  const { info } = identified;
  const record = obj as Record<string, unknown>;
  const who = label(info, record);
  const infra = INFRA[info.name];
  if (infra !== undefined) return validateInfraKind(info, infra, record, who, index);
  if (info.apiVersion !== 'tortie.io/v1') {
    for (const key of Object.keys(record)) {
      if (!K8S_ENVELOPE_KEYS.has(key))
        return { ok: false, detail: detail(who, key, 'unknown field', index) };
    }
  }
  return validatePolicyKind(info, record, who, index);
}
