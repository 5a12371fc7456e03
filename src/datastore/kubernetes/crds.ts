/**
 * The key ranges tortie owns on Kubernetes, each carried by a custom resource (./mapping.ts):
 *
 *   resources/v3/projectcalico.org/<plural>/…  Calico's kinds as `crd.projectcalico.org/v1`
 *       objects in the shape Calico's Kubernetes datastore (libcalico-go's KDD, v3.28)
 *       writes: name and namespace in the object's metadata; the rest of Calico's metadata
 *       — labels, annotations, creationTimestamp (and tortie's uid) — as JSON in the
 *       annotation `projectcalico.org/metadata`; only labels and annotations whose key
 *       holds `projectcalico.org/` (or `operator.tigera.io/`) also in the object's own
 *       metadata; spec (and status) as they are. Read back as Calico reads it: the
 *       object's labels and annotations with the annotation's merged over them (so an
 *       object labelled with `kubectl label` keeps the label), the uid the annotation
 *       holds, else the object's uid with its bits reversed as Calico shows it
 *       (`calicoUid`). Policy names are stored
 *       tier-prefixed (`default.<name>`), as in etcd. WorkloadEndpoints and Nodes are
 *       Kubernetes' own Pods and Nodes (./native/), not custom resources.
 *   resources/v3/tortie.io/agentconfigurations/…  `agentconfigurations.tortie.io/v1`.
 *   ipam/v2/assignment/ipv4/block/<a.b.c.d-n>  Calico's `ipamblocks` (name: the CIDR with
 *       "." and "/" as "-"), spec as Calico's IPAMBlockSpec (cidr, affinity, allocations,
 *       unallocated, attributes, strictAffinity, deleted, sequenceNumber[ForAllocation]).
 *   ipam/v2/host/<node>/ipv4/block/<cidr>      Calico's `blockaffinities` (`<node>-<cidr>`,
 *       hashed when longer than Kubernetes allows, as Calico does), spec {state, node, cidr,
 *       deleted: "false"}.
 *   ipam/v2/handle/<handle>                    Calico's `ipamhandles` (name: the handle in
 *       lower case), spec {handleID, block, deleted}.
 *   ipam/v2/config                             Calico's `ipamconfigs` "default", spec
 *       {strictAffinity, autoAllocateBlocks, maxBlocksPerHost}.
 *   tortie/status/…                            `tortiestatuses.tortie.io/v1` (cluster-scoped):
 *       spec {path: the key under status/, data: the stored JSON}.
 *
 * Two Calico kinds have no custom resource in Calico's KDD and get one here under Calico's
 * group: Profile (Calico derives profiles from namespaces and service accounts; tortie's
 * own Profiles are stored) and IPAMConfiguration as tortie's resource kind
 * (`ipamconfigurations`; Calico's `ipamconfigs` holds IPAM's own config record, above).
 */
import { createHash } from 'node:crypto';
import {
  CALICO_CRD_API_VERSION,
  KIND_NAMES,
  KINDS,
  kindPrefix,
  tortieKeysPrefix,
  TORTIE_API_VERSION,
  type KindName,
} from '../kinds.js';
import { parseBigJson, stringifyBigJson } from './bigjson.js';
import type { KeyMapping, KubeDelete, KubeObject, KubeResource, KubeWrite } from './mapping.js';

/** Calico's annotation with the metadata a custom resource has no field for. */
export const METADATA_ANNOTATION = 'projectcalico.org/metadata';

export const CALICO_CRD_GROUP = 'crd.projectcalico.org';
export const TORTIE_CRD_GROUP = 'tortie.io';

/** Kinds that are Kubernetes' own objects on this datastore (./native/), never custom resources. */
const NATIVE_KINDS: ReadonlySet<KindName> = new Set([
  'WorkloadEndpoint',
  'Node',
  'Namespace',
  'K8sNetworkPolicy',
]);

/** Kubernetes' object names (DNS subdomain, RFC 1123). */
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function isObjectName(name: string): boolean {
  return name.length <= 253 && DNS_SUBDOMAIN.test(name);
}

function normalise(prefix: string): string {
  return prefix.replace(/\/+$/, '');
}

function asRecord(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
    ? (v as Record<string, unknown>)
    : undefined;
}

/** The stored JSON object, or why it is refused (a string). */
function parseValue(key: string, value: string): Record<string, unknown> | string {
  let parsed: unknown;
  try {
    parsed = parseBigJson(value);
  } catch (e) {
    return `the value for ${key} is not JSON (${(e as Error).message})`;
  }
  return asRecord(parsed) ?? `the value for ${key} is not a JSON object`;
}

/**
 * The uid Calico's KDD shows for a custom resource: the object's UUID with the bits of
 * every byte reversed except the version (byte 6) and variant (byte 8) ones, so it is
 * still a valid v4 UUID but never the underlying object's. Not a UUID: as it is.
 */
export function calicoUid(uid: string): string {
  const hex = uid.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) return uid;
  const bytes = Buffer.from(hex, 'hex');
  for (let i = 0; i < 16; i++) {
    if (i === 6 || i === 8) continue;
    let b = bytes[i]!;
    let r = 0;
    for (let bit = 0; bit < 8; bit++) {
      r = (r << 1) | (b & 1);
      b >>= 1;
    }
    bytes[i] = r;
  }
  const h = bytes.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** A label or annotation key Calico keeps in a custom resource's own metadata too. */
function calicoOwnKey(k: string): boolean {
  return k.includes('projectcalico.org/') || k.includes('operator.tigera.io/');
}

function stringMap(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(asRecord(v) ?? {})) if (typeof x === 'string') out[k] = x;
  return out;
}

function onlyCalicoOwn(m: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(m).filter(([k]) => calicoOwnKey(k)));
}

function refusedName(key: string, name: string): KubeWrite {
  return {
    refused: `${key}: ${JSON.stringify(name)} is not a Kubernetes object name (lower-case letters, digits, "-" and ".", at most 253)`,
  };
}

/** Common parts of a mapping: one resource, one key prefix. */
abstract class CrdMapping implements KeyMapping {
  constructor(readonly resource: KubeResource) {}
  abstract keyPrefix(prefix: string): string;
  abstract objectRef(key: string, prefix: string): { name: string; namespace?: string } | undefined;
  abstract toKv(object: KubeObject, prefix: string): { key: string; value: string } | undefined;
  abstract fromPut(
    key: string,
    value: string,
    current: KubeObject | undefined,
    prefix: string,
  ): KubeWrite;

  fromDelete(): KubeDelete {
    return { delete: true };
  }

  protected apiVersion(): string {
    return `${this.resource.group}/${this.resource.version}`;
  }
}

// --- resources (Calico's kinds, tortie's AgentConfiguration) ---------------------------

class ResourceMapping extends CrdMapping {
  constructor(
    readonly kind: KindName,
    resource: KubeResource,
  ) {
    super(resource);
  }

  keyPrefix(prefix: string): string {
    return kindPrefix(this.kind, undefined, prefix);
  }

  objectRef(key: string, prefix: string): { name: string; namespace?: string } | undefined {
    const base = this.keyPrefix(prefix);
    if (!key.startsWith(base)) return undefined;
    const parts = key.slice(base.length).split('/');
    if (parts.some((p) => p === '')) return undefined;
    if (this.resource.namespaced)
      return parts.length === 2 ? { namespace: parts[0]!, name: parts[1]! } : undefined;
    return parts.length === 1 ? { name: parts[0]! } : undefined;
  }

  toKv(object: KubeObject, prefix: string): { key: string; value: string } | undefined {
    const m = object.metadata;
    const info = KINDS[this.kind];
    if (this.resource.namespaced && !m.namespace) return undefined;
    const annotations = { ...(m.annotations ?? {}) };
    let saved: Record<string, unknown> = {};
    const raw = annotations[METADATA_ANNOTATION];
    delete annotations[METADATA_ANNOTATION];
    if (raw !== undefined) {
      try {
        saved = asRecord(JSON.parse(raw)) ?? {};
      } catch {
        saved = {};
      }
    }
    // As Calico reads it: the object's own labels and annotations, the annotation's over them.
    const labels = { ...(m.labels ?? {}), ...stringMap(saved.labels) };
    Object.assign(annotations, stringMap(saved.annotations));
    const metadata = {
      name: m.name,
      ...(this.resource.namespaced ? { namespace: m.namespace } : {}),
      uid: typeof saved.uid === 'string' && saved.uid !== '' ? saved.uid : calicoUid(m.uid ?? ''),
      creationTimestamp:
        typeof saved.creationTimestamp === 'string' && saved.creationTimestamp !== ''
          ? saved.creationTimestamp
          : (m.creationTimestamp ?? ''),
      ...(Object.keys(labels).length > 0 ? { labels } : {}),
      ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
    };
    const key = `${this.keyPrefix(prefix)}${this.resource.namespaced ? `${m.namespace}/` : ''}${m.name}`;
    const status = asRecord(object.status);
    return {
      key,
      value: stringifyBigJson({
        kind: info.kind,
        apiVersion: info.apiVersion,
        metadata,
        spec: asRecord(object.spec) ?? {},
        ...(status === undefined ? {} : { status }),
      }),
    };
  }

  fromPut(key: string, value: string, _current: KubeObject | undefined, prefix: string): KubeWrite {
    const ref = this.objectRef(key, prefix);
    if (ref === undefined) return { refused: `${key} is not a key of ${this.resource.plural}` };
    if (!isObjectName(ref.name)) return refusedName(key, ref.name);
    const v = parseValue(key, value);
    if (typeof v === 'string') return { refused: v };
    const meta = asRecord(v.metadata) ?? {};
    if (meta.name !== ref.name || (meta.namespace ?? undefined) !== ref.namespace)
      return {
        refused: `the value for ${key} names ${String(meta.namespace ?? '')}/${String(meta.name)}, not the key's object`,
      };
    // As Calico writes it: everything but the name in the annotation, only Calico's own
    // labels and annotations in the object's metadata as well.
    const userLabels = stringMap(meta.labels);
    const userAnnotations = stringMap(meta.annotations);
    delete userAnnotations[METADATA_ANNOTATION];
    const annotations: Record<string, string> = {
      ...onlyCalicoOwn(userAnnotations),
      [METADATA_ANNOTATION]: JSON.stringify({
        ...(typeof meta.uid === 'string' ? { uid: meta.uid } : {}),
        ...(typeof meta.creationTimestamp === 'string'
          ? { creationTimestamp: meta.creationTimestamp }
          : {}),
        ...(Object.keys(userLabels).length > 0 ? { labels: userLabels } : {}),
        ...(Object.keys(userAnnotations).length > 0 ? { annotations: userAnnotations } : {}),
      }),
    };
    const labels = onlyCalicoOwn(userLabels);
    const status = asRecord(v.status);
    return {
      object: {
        apiVersion: this.apiVersion(),
        kind: this.resource.kind,
        metadata: {
          name: ref.name,
          ...(ref.namespace === undefined ? {} : { namespace: ref.namespace }),
          ...(labels && Object.keys(labels).length > 0 ? { labels } : {}),
          annotations,
        },
        spec: asRecord(v.spec) ?? {},
        ...(status === undefined ? {} : { status }),
      },
    };
  }
}

// --- IPAM ------------------------------------------------------------------------------

function ipamRoot(prefix: string): string {
  return `${normalise(prefix)}/ipam/v2/`;
}

/** "10.65.0.0/26" → "10.65.0.0-26" (the key segment, as src/ipam/keys.ts writes it). */
function cidrSegment(cidr: string): string {
  return cidr.replace('/', '-');
}

function segmentCidr(segment: string): string | undefined {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3})-(\d{1,2})$/.exec(segment);
  return m ? `${m[1]}/${m[2]}` : undefined;
}

/** Calico's names.CIDRToName: "10.65.0.0/26" → "10-65-0-0-26". */
export function cidrToName(cidr: string): string {
  return cidr.replace(/[./:]/g, '-');
}

class BlockMapping extends CrdMapping {
  keyPrefix(prefix: string): string {
    return `${ipamRoot(prefix)}assignment/ipv4/block/`;
  }

  objectRef(key: string, prefix: string): { name: string } | undefined {
    const base = this.keyPrefix(prefix);
    if (!key.startsWith(base)) return undefined;
    const cidr = segmentCidr(key.slice(base.length));
    return cidr === undefined ? undefined : { name: cidrToName(cidr) };
  }

  toKv(object: KubeObject, prefix: string): { key: string; value: string } | undefined {
    const spec = asRecord(object.spec);
    if (typeof spec?.cidr !== 'string' || segmentCidr(cidrSegment(spec.cidr)) === undefined)
      return undefined;
    const { strictAffinity: _strict, affinityClaimTime: _claimed, ...record } = spec;
    return {
      key: this.keyPrefix(prefix) + cidrSegment(spec.cidr),
      value: stringifyBigJson(record),
    };
  }

  fromPut(key: string, value: string, _current: KubeObject | undefined, prefix: string): KubeWrite {
    const ref = this.objectRef(key, prefix);
    if (ref === undefined) return { refused: `${key} is not an IPAM block key` };
    const v = parseValue(key, value);
    if (typeof v === 'string') return { refused: v };
    if (typeof v.cidr !== 'string' || cidrToName(v.cidr) !== ref.name)
      return { refused: `the block stored at ${key} says its cidr is ${String(v.cidr)}` };
    return {
      object: {
        apiVersion: this.apiVersion(),
        kind: this.resource.kind,
        metadata: { name: ref.name },
        spec: { ...v, strictAffinity: v.strictAffinity ?? false },
      },
    };
  }
}

/** Calico's BlockAffinity name: `<node>-<cidr name>`, shortened with a hash past 252. */
export function affinityName(node: string, cidr: string): string {
  const cidrName = cidrToName(cidr);
  const name = `${node}-${cidrName}`;
  if (name.length < 253) return name;
  const hash = createHash('sha256').update(`${node}+${cidrName}`).digest('hex').slice(0, 11);
  return `${node.slice(0, 252 - cidrName.length - 13)}-${cidrName}-${hash}`;
}

class AffinityMapping extends CrdMapping {
  keyPrefix(prefix: string): string {
    return `${ipamRoot(prefix)}host/`;
  }

  private parse(key: string, prefix: string): { node: string; cidr: string } | undefined {
    const base = this.keyPrefix(prefix);
    if (!key.startsWith(base)) return undefined;
    const rest = key.slice(base.length);
    const at = rest.indexOf('/ipv4/block/');
    if (at <= 0) return undefined;
    const node = rest.slice(0, at);
    const cidr = segmentCidr(rest.slice(at + '/ipv4/block/'.length));
    return cidr === undefined || node.includes('/') ? undefined : { node, cidr };
  }

  objectRef(key: string, prefix: string): { name: string } | undefined {
    const p = this.parse(key, prefix);
    return p === undefined ? undefined : { name: affinityName(p.node, p.cidr) };
  }

  toKv(object: KubeObject, prefix: string): { key: string; value: string } | undefined {
    const spec = asRecord(object.spec);
    if (typeof spec?.node !== 'string' || typeof spec.cidr !== 'string') return undefined;
    if (spec.type !== undefined && spec.type !== 'host') return undefined;
    const deleted = spec.deleted === true || spec.deleted === 'true';
    return {
      key: `${this.keyPrefix(prefix)}${spec.node}/ipv4/block/${cidrSegment(spec.cidr)}`,
      value: JSON.stringify({ state: spec.state, deleted }),
    };
  }

  fromPut(key: string, value: string, _current: KubeObject | undefined, prefix: string): KubeWrite {
    const p = this.parse(key, prefix);
    if (p === undefined) return { refused: `${key} is not a block affinity key` };
    const name = affinityName(p.node, p.cidr);
    if (!isObjectName(name)) return refusedName(key, name);
    const v = parseValue(key, value);
    if (typeof v === 'string') return { refused: v };
    return {
      object: {
        apiVersion: this.apiVersion(),
        kind: this.resource.kind,
        metadata: { name },
        spec: {
          state: v.state,
          node: p.node,
          cidr: p.cidr,
          deleted: v.deleted === true ? 'true' : 'false',
        },
      },
    };
  }
}

class HandleMapping extends CrdMapping {
  keyPrefix(prefix: string): string {
    return `${ipamRoot(prefix)}handle/`;
  }

  objectRef(key: string, prefix: string): { name: string } | undefined {
    const base = this.keyPrefix(prefix);
    if (!key.startsWith(base)) return undefined;
    const handle = key.slice(base.length);
    return handle === '' || handle.includes('/') ? undefined : { name: handle.toLowerCase() };
  }

  toKv(object: KubeObject, prefix: string): { key: string; value: string } | undefined {
    const spec = asRecord(object.spec);
    if (typeof spec?.handleID !== 'string' || spec.handleID === '') return undefined;
    return {
      key: this.keyPrefix(prefix) + spec.handleID,
      value: JSON.stringify({ block: spec.block ?? {}, deleted: spec.deleted === true }),
    };
  }

  fromPut(key: string, value: string, _current: KubeObject | undefined, prefix: string): KubeWrite {
    const ref = this.objectRef(key, prefix);
    if (ref === undefined) return { refused: `${key} is not an IPAM handle key` };
    if (!isObjectName(ref.name)) return refusedName(key, ref.name);
    const v = parseValue(key, value);
    if (typeof v === 'string') return { refused: v };
    return {
      object: {
        apiVersion: this.apiVersion(),
        kind: this.resource.kind,
        metadata: { name: ref.name },
        spec: {
          handleID: key.slice(this.keyPrefix(prefix).length),
          block: v.block ?? {},
          deleted: v.deleted === true,
        },
      },
    };
  }
}

class IpamConfigMapping extends CrdMapping {
  /** A single key: the range is the key itself. */
  keyPrefix(prefix: string): string {
    return `${ipamRoot(prefix)}config`;
  }

  objectRef(key: string, prefix: string): { name: string } | undefined {
    return key === this.keyPrefix(prefix) ? { name: 'default' } : undefined;
  }

  toKv(object: KubeObject, prefix: string): { key: string; value: string } | undefined {
    if (object.metadata.name !== 'default') return undefined;
    const spec = asRecord(object.spec) ?? {};
    return {
      key: this.keyPrefix(prefix),
      value: JSON.stringify({
        ...(spec.strictAffinity === true ? { strict_affinity: true } : {}),
        ...(spec.autoAllocateBlocks === true ? { auto_allocate_blocks: true } : {}),
        ...(typeof spec.maxBlocksPerHost === 'number' && spec.maxBlocksPerHost > 0
          ? { maxBlocksPerHost: spec.maxBlocksPerHost }
          : {}),
      }),
    };
  }

  fromPut(key: string, value: string, _current: KubeObject | undefined, prefix: string): KubeWrite {
    if (this.objectRef(key, prefix) === undefined)
      return { refused: `${key} is not IPAM's config key` };
    const v = parseValue(key, value);
    if (typeof v === 'string') return { refused: v };
    return {
      object: {
        apiVersion: this.apiVersion(),
        kind: this.resource.kind,
        metadata: { name: 'default' },
        spec: {
          strictAffinity: v.strict_affinity === true,
          autoAllocateBlocks: v.auto_allocate_blocks === true,
          maxBlocksPerHost: typeof v.maxBlocksPerHost === 'number' ? v.maxBlocksPerHost : 0,
        },
      },
    };
  }
}

// --- tortie's status records -----------------------------------------------------------

/**
 * The object name of a status path ("nodes/<node>", "endpoints/<node>/<ns>/<name>"):
 * readable (`node.<node>`, `endpoint.<node>.<ns>.<name>`) when that is a valid name and
 * cannot be read two ways, else `<kind>-<sha256 of the path>`.
 */
export function statusObjectName(path: string): string | undefined {
  const parts = path.split('/');
  if (parts.some((p) => p === '')) return undefined;
  const hashed = (kind: string) =>
    `${kind}-${createHash('sha256').update(path).digest('hex').slice(0, 40)}`;
  if (parts[0] === 'nodes' && parts.length === 2) {
    const name = `node.${parts[1]}`;
    return isObjectName(name) ? name : hashed('node');
  }
  if (parts[0] === 'endpoints' && parts.length === 4) {
    const readable = parts.slice(1).every((p) => !p.includes('.'));
    const name = `endpoint.${parts.slice(1).join('.')}`;
    return readable && isObjectName(name) ? name : hashed('endpoint');
  }
  return hashed('status');
}

class StatusMapping extends CrdMapping {
  keyPrefix(prefix: string): string {
    return `${tortieKeysPrefix(prefix)}status/`;
  }

  objectRef(key: string, prefix: string): { name: string } | undefined {
    const base = this.keyPrefix(prefix);
    if (!key.startsWith(base)) return undefined;
    const name = statusObjectName(key.slice(base.length));
    return name === undefined ? undefined : { name };
  }

  toKv(object: KubeObject, prefix: string): { key: string; value: string } | undefined {
    const spec = asRecord(object.spec);
    if (typeof spec?.path !== 'string') return undefined;
    return { key: this.keyPrefix(prefix) + spec.path, value: stringifyBigJson(spec.data ?? null) };
  }

  fromPut(key: string, value: string, _current: KubeObject | undefined, prefix: string): KubeWrite {
    const ref = this.objectRef(key, prefix);
    if (ref === undefined) return { refused: `${key} is not a status key` };
    let data: unknown;
    try {
      data = parseBigJson(value);
    } catch (e) {
      return { refused: `the value for ${key} is not JSON (${(e as Error).message})` };
    }
    const path = key.slice(this.keyPrefix(prefix).length);
    const parts = path.split('/');
    return {
      object: {
        apiVersion: this.apiVersion(),
        kind: this.resource.kind,
        metadata: {
          name: ref.name,
          labels: {
            'tortie.io/status': parts[0] === 'nodes' ? 'node' : 'endpoint',
            ...(parts[1] !== undefined && isObjectName(parts[1]) && parts[1].length <= 63
              ? { 'tortie.io/node': parts[1] }
              : {}),
          },
        },
        spec: { path, data },
      },
    };
  }
}

// --- the table -------------------------------------------------------------------------

function resource(group: string, kind: string, plural: string, namespaced: boolean): KubeResource {
  return { group, version: 'v1', kind, plural, namespaced };
}

function resourceMappings(): KeyMapping[] {
  return KIND_NAMES.filter((k) => !NATIVE_KINDS.has(k)).map((k) => {
    const info = KINDS[k];
    const group = info.apiVersions.includes(CALICO_CRD_API_VERSION)
      ? CALICO_CRD_GROUP
      : info.apiVersion === TORTIE_API_VERSION
        ? TORTIE_CRD_GROUP
        : undefined;
    if (group === undefined) throw new Error(`kind ${k} has no custom resource group`);
    return new ResourceMapping(k, resource(group, info.kind, info.plural, info.namespaced));
  });
}

/** Every CRD-backed range: Calico's kinds, AgentConfiguration, IPAM, status. */
export const CRD_MAPPINGS: readonly KeyMapping[] = [
  ...resourceMappings(),
  new BlockMapping(resource(CALICO_CRD_GROUP, 'IPAMBlock', 'ipamblocks', false)),
  new AffinityMapping(resource(CALICO_CRD_GROUP, 'BlockAffinity', 'blockaffinities', false)),
  new HandleMapping(resource(CALICO_CRD_GROUP, 'IPAMHandle', 'ipamhandles', false)),
  new IpamConfigMapping(resource(CALICO_CRD_GROUP, 'IPAMConfig', 'ipamconfigs', false)),
  new StatusMapping(resource(TORTIE_CRD_GROUP, 'TortieStatus', 'tortiestatuses', false)),
];

/** True for a mapping of this file (it converts without reading the current object). */
export function isCrdMapping(m: KeyMapping): boolean {
  return m instanceof CrdMapping;
}

/**
 * A minimal structural CustomResourceDefinition for each custom resource of the table:
 * names and scope as Calico's (or tortie's), spec and status kept as written
 * (`x-kubernetes-preserve-unknown-fields`); validation is tortie's, before it writes.
 */
export function crdManifests(
  mappings: readonly KeyMapping[] = CRD_MAPPINGS,
): Record<string, unknown>[] {
  const seen = new Map<string, KubeResource>();
  for (const m of mappings) seen.set(`${m.resource.plural}.${m.resource.group}`, m.resource);
  const open = { type: 'object', 'x-kubernetes-preserve-unknown-fields': true };
  return [...seen.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, r]) => ({
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name },
      spec: {
        group: r.group,
        names: {
          kind: r.kind,
          listKind: `${r.kind}List`,
          plural: r.plural,
          singular: r.kind.toLowerCase(),
        },
        scope: r.namespaced ? 'Namespaced' : 'Cluster',
        versions: [
          {
            name: r.version,
            served: true,
            storage: true,
            schema: {
              openAPIV3Schema: {
                type: 'object',
                properties: {
                  apiVersion: { type: 'string' },
                  kind: { type: 'string' },
                  metadata: { type: 'object' },
                  spec: open,
                  status: open,
                },
              },
            },
          },
        ],
      },
    }));
}
