/**
 * Validation of one user object of any kind. Policy kinds go through
 * src/policy/resources.ts (their rules live there); the other kinds have their schemas
 * in this folder. The result is what the store writes: identity, metadata and the spec
 * to keep. A refused object carries every problem found in it, not only the first.
 *
 * Calico's kinds are read under projectcalico.org/v3, crd.projectcalico.org/v1 and
 * tortie.io/v1 (src/datastore/kinds.ts); which one an object came under makes no
 * difference to what is stored.
 */
import { z } from 'zod';
import {
  CALICO,
  CALICO_POLICY_SPECS,
  parseResource,
  ResourceError,
  stagedGlobalNetworkPolicySpec,
  stagedNetworkPolicySpec,
} from '../../policy/resources.js';
import { stagedKubernetesNetworkPolicySpec } from '../../policy/k8s.js';
import { didYouMean } from '../../util/nearest.js';
import { detail, type ErrorDetail } from '../errors.js';
import {
  describeRef,
  KIND_NAMES,
  KINDS,
  kindOfObject,
  knownApiVersions,
  type KindInfo,
  type KindName,
} from '../kinds.js';
import { agentConfigurationSpec } from './agent.js';
import { bgpConfigurationSpec, bgpFilterSpec, bgpPeerSpec } from './bgp.js';
import {
  clusterInformationSpec,
  felixConfigurationSpec,
  kubeControllersConfigurationSpec,
} from './calico-config.js';
import { hostEndpointSpec, workloadEndpointSpec } from './endpoints.js';
import { canonicalFieldNames, type FieldRewrite } from './field-case.js';
import { defaultOrNodeName, dnsSubdomain } from './fields.js';
import { ipamConfigurationName, ipamConfigurationSpec, ipReservationSpec } from './ipam.js';
import { parseWith, type Refusal } from './issues.js';
import { ipPoolSpec } from './ippool.js';
import { metadataSchema, type InputMetadata } from './metadata.js';
import { nodeSpec } from './node.js';

export type { InputMetadata } from './metadata.js';

export interface ValidObject {
  readonly info: KindInfo;
  readonly metadata: InputMetadata;
  /** What the store keeps as `spec`: defaults filled in for infrastructure kinds, as given for policy kinds. */
  readonly spec: Record<string, unknown>;
  /**
   * What the user should know although the object is accepted: field names read in
   * another case (as calicoctl reads them), fields stored but not enforced yet.
   */
  readonly warnings: readonly string[];
}

export type Validation =
  | { readonly ok: true; readonly object: ValidObject }
  | {
      readonly ok: false;
      /** The first problem. */
      readonly detail: ErrorDetail;
      /** Every problem of the object (the first is `detail`). */
      readonly details: readonly ErrorDetail[];
    };

type SpecSchema = z.ZodType<unknown, z.ZodTypeDef, unknown>;

interface SchemaKind {
  readonly name: z.ZodType<string, z.ZodTypeDef, unknown>;
  /** Whether an object without `spec` is refused. */
  readonly specRequired: boolean;
  readonly spec: (name: string) => SpecSchema;
  /** Store the spec as the user wrote it (validated, not converted): the staged policies. */
  readonly asGiven?: boolean;
}

/** `default`, as Calico's singletons are named. */
const anyName = z.string().min(1);

const SCHEMAS: Partial<Record<KindName, SchemaKind>> = {
  IPPool: { name: dnsSubdomain, specRequired: true, spec: () => ipPoolSpec },
  HostEndpoint: { name: dnsSubdomain, specRequired: true, spec: () => hostEndpointSpec },
  WorkloadEndpoint: { name: dnsSubdomain, specRequired: true, spec: () => workloadEndpointSpec },
  Node: { name: dnsSubdomain, specRequired: false, spec: () => nodeSpec },
  BGPConfiguration: { name: dnsSubdomain, specRequired: false, spec: bgpConfigurationSpec },
  BGPPeer: { name: dnsSubdomain, specRequired: true, spec: () => bgpPeerSpec },
  BGPFilter: { name: dnsSubdomain, specRequired: false, spec: () => bgpFilterSpec },
  AgentConfiguration: {
    name: defaultOrNodeName,
    specRequired: false,
    spec: () => agentConfigurationSpec,
  },
  IPReservation: { name: dnsSubdomain, specRequired: true, spec: () => ipReservationSpec },
  IPAMConfiguration: {
    name: ipamConfigurationName,
    specRequired: false,
    spec: () => ipamConfigurationSpec,
  },
  FelixConfiguration: {
    name: dnsSubdomain,
    specRequired: false,
    spec: () => felixConfigurationSpec,
  },
  KubeControllersConfiguration: {
    name: anyName,
    specRequired: false,
    spec: () => kubeControllersConfigurationSpec,
  },
  ClusterInformation: { name: anyName, specRequired: false, spec: () => clusterInformationSpec },
  StagedNetworkPolicy: {
    name: dnsSubdomain,
    specRequired: false,
    spec: () => stagedNetworkPolicySpec,
    asGiven: true,
  },
  StagedGlobalNetworkPolicy: {
    name: dnsSubdomain,
    specRequired: false,
    spec: () => stagedGlobalNetworkPolicySpec,
    asGiven: true,
  },
  StagedKubernetesNetworkPolicy: {
    name: dnsSubdomain,
    specRequired: false,
    spec: () => stagedKubernetesNetworkPolicySpec,
    asGiven: true,
  },
};

/** `status` is written by Calico's controllers; accepted on every kind and dropped. */
const ENVELOPE_KEYS = ['apiVersion', 'kind', 'metadata', 'spec', 'status'];

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

function refused(details: ErrorDetail[]): Validation {
  return { ok: false, detail: details[0]!, details };
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
  const known = KIND_NAMES.map((k) => KINDS[k]).filter((i) => i.apiVersions.includes(apiVersion));
  if (known.length === 0) {
    const versions = knownApiVersions();
    const reason = `unknown apiVersion ${JSON.stringify(apiVersion)}${didYouMean(apiVersion, versions)} (expected one of ${versions.join(', ')})`;
    return { refused: detail('object', 'apiVersion', reason, index) };
  }
  const kinds = known.map((i) => i.kind);
  const reason = `unknown kind ${JSON.stringify(kind)} for ${apiVersion}${didYouMean(kind, kinds)} (expected one of ${kinds.join(', ')})`;
  return { refused: detail('object', 'kind', reason, index) };
}

function prefixed(prefix: string, path: string): string {
  if (path === '') return prefix;
  return path.startsWith('[') ? `${prefix}${path}` : `${prefix}.${path}`;
}

function envelopeProblems(obj: Record<string, unknown>): Refusal[] {
  return Object.keys(obj)
    .filter((key) => !ENVELOPE_KEYS.includes(key))
    .map((key) => ({ path: key, reason: `unknown field${didYouMean(key, ENVELOPE_KEYS)}` }));
}

function validatePolicyKind(
  info: KindInfo,
  obj: Record<string, unknown>,
): Refusal[] | InputMetadata {
  const problems = envelopeProblems(obj);
  const meta = parseWith(metadataSchema(info, z.string()), obj.metadata);
  if (!meta.ok)
    problems.push(...meta.refusals.map((r) => ({ ...r, path: prefixed('metadata', r.path) })));
  try {
    const m = meta.ok ? meta.value : undefined;
    parseResource({
      apiVersion: obj.apiVersion,
      kind: obj.kind,
      metadata:
        m === undefined
          ? obj.metadata
          : {
              name: m.name,
              ...(m.namespace === undefined ? {} : { namespace: m.namespace }),
              labels: m.labels,
            },
      ...(obj.spec === undefined ? {} : { spec: obj.spec }),
    });
  } catch (e) {
    if (!(e instanceof ResourceError)) throw e;
    // Metadata problems were found above, in the words of the metadata schema.
    const rest = e.problems.filter((p) => meta.ok || !p.path.startsWith('metadata'));
    problems.push(...rest);
  }
  return problems.length > 0 || !meta.ok ? problems : meta.value;
}

function validateSchemaKind(
  info: KindInfo,
  kind: SchemaKind,
  obj: Record<string, unknown>,
): Refusal[] | ValidObject {
  const problems = envelopeProblems(obj);
  if (obj.metadata === undefined) {
    problems.push({ path: 'metadata', reason: 'required field is missing' });
    return problems;
  }
  const meta = parseWith(metadataSchema(info, kind.name), obj.metadata);
  if (!meta.ok)
    problems.push(...meta.refusals.map((r) => ({ ...r, path: prefixed('metadata', r.path) })));
  if (obj.spec === undefined && kind.specRequired) {
    problems.push({ path: 'spec', reason: 'required field is missing' });
    return problems;
  }
  const name =
    isRecord(obj.metadata) && typeof obj.metadata.name === 'string' ? obj.metadata.name : '';
  const spec = parseWith(kind.spec(name), obj.spec ?? {});
  if (!spec.ok)
    problems.push(...spec.refusals.map((r) => ({ ...r, path: prefixed('spec', r.path) })));
  if (problems.length > 0 || !meta.ok || !spec.ok) return problems;
  const kept = kind.asGiven ? (obj.spec ?? {}) : spec.value;
  return { info, metadata: meta.value, spec: kept as Record<string, unknown>, warnings: [] };
}

/** Whether calicoctl reads this kind (so field names are matched in any case, as its decoder does). */
function readByCalicoctl(info: KindInfo): boolean {
  return info.apiVersions.includes(CALICO);
}

const ENVELOPE = z.object(Object.fromEntries(ENVELOPE_KEYS.map((k) => [k, z.unknown()])));

/** The schema whose field names an object's names are matched against, in any case. */
function caseSchema(info: KindInfo, obj: Record<string, unknown>): z.ZodTypeAny {
  const kind = SCHEMAS[info.name];
  const name =
    isRecord(obj.metadata) && typeof obj.metadata.name === 'string' ? obj.metadata.name : '';
  return ENVELOPE.extend({
    metadata: metadataSchema(info, kind?.name ?? z.string()),
    spec: kind !== undefined ? kind.spec(name) : (CALICO_POLICY_SPECS[info.kind] ?? z.unknown()),
  });
}

/**
 * The object with its field names in their canonical case, when calicoctl would read it
 * so (Go's JSON decoder ignores case); `rewrites` says what was renamed.
 */
function canonicalCase(obj: unknown, rewrites: FieldRewrite[]): unknown {
  if (!isRecord(obj)) return obj;
  const envelope: FieldRewrite[] = [];
  const folded = canonicalFieldNames(obj, ENVELOPE, [], envelope) as Record<string, unknown>;
  const info =
    typeof folded.apiVersion === 'string' && typeof folded.kind === 'string'
      ? kindOfObject(folded.apiVersion, folded.kind)
      : undefined;
  if (info === undefined || !readByCalicoctl(info)) return obj;
  const inner: FieldRewrite[] = [];
  const out = canonicalFieldNames(folded, caseSchema(info, folded), [], inner);
  rewrites.push(...envelope, ...inner);
  return out;
}

/** Calico's untracked and pre-DNAT policies: stored, but they only ever apply to host endpoints. */
function hostPolicyWarnings(info: KindInfo, spec: Record<string, unknown>): string[] {
  if (info.name !== 'GlobalNetworkPolicy') return [];
  return (['doNotTrack', 'preDNAT'] as const)
    .filter((f) => spec[f] === true)
    .map(
      (f) =>
        `spec.${f}: stored; ${f} policies are not enforced yet (a ${f} policy applies to host endpoints only, never to pods)`,
    );
}

/** Validates one object; `index` (its place in a multi-object call) goes into the details. */
export function validateObject(input: unknown, index?: number): Validation {
  const rewrites: FieldRewrite[] = [];
  const obj = canonicalCase(input, rewrites);
  const identified = identify(obj, index);
  if ('refused' in identified) return refused([identified.refused]);
  const { info } = identified;
  const record = obj as Record<string, unknown>;
  const who = label(info, record);
  const warnings = (spec: Record<string, unknown>): string[] => [
    ...rewrites.map(
      (r) =>
        `${who}: ${r.path}: read as ${r.to} (calicoctl's decoder ignores the case of field names; stored as ${r.to})`,
    ),
    ...hostPolicyWarnings(info, spec).map((w) => `${who}: ${w}`),
  ];
  // The envelope and the policy parser may both see one unknown top-level field: once each.
  const toDetails = (problems: Refusal[]): ErrorDetail[] => {
    const byId = new Map(problems.map((p) => [`${p.path}\u0000${p.reason}`, p]));
    return [...byId.values()].map((p) => detail(who, p.path, p.reason, index));
  };
  const schema = SCHEMAS[info.name];
  if (schema !== undefined) {
    const result = validateSchemaKind(info, schema, record);
    return Array.isArray(result)
      ? refused(toDetails(result))
      : { ok: true, object: { ...result, warnings: warnings(result.spec) } };
  }
  const result = validatePolicyKind(info, record);
  if (Array.isArray(result)) return refused(toDetails(result));
  const spec = isRecord(record.spec) ? record.spec : {};
  return { ok: true, object: { info, metadata: result, spec, warnings: warnings(spec) } };
}

/** The warnings of every object that validates (see ValidObject.warnings). */
export function validationWarnings(objects: readonly unknown[]): string[] {
  return objects.flatMap((o, i) => {
    const v = validateObject(o, objects.length > 1 ? i : undefined);
    return v.ok ? v.object.warnings : [];
  });
}
