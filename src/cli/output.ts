/**
 * How `tortie get` prints resources: aligned tables like calicoctl and kubectl (columns
 * per kind, more with `wide`), or the objects as YAML / JSON (a `<Kind>List` when more
 * than one object was asked for), ready to edit and apply again.
 */
import { stringify as toYaml } from 'yaml';
import { KINDS, type KindName, type StoredResource } from '../datastore/index.js';
import { InvalidArgumentError } from 'commander';
import { formatCustomColumns, parseCustomColumns, type CustomColumn } from './custom-columns.js';
import { executeTemplate, parseTemplate, type Template } from './jsonpath.js';
import { formatTable } from './table.js';

export const OUTPUT_FORMATS = ['table', 'wide', 'yaml', 'json'] as const;
export type OutputFormat =
  | (typeof OUTPUT_FORMATS)[number]
  | { readonly jsonpath: Template }
  | { readonly customColumns: readonly CustomColumn[] };

/**
 * The value of `-o`: table, wide, yaml, json, `jsonpath=TEMPLATE` or
 * `custom-columns=HEADER:PATH,...` (kubectl's and calicoctl's spellings).
 */
export function outputFormat(value: string): OutputFormat {
  if ((OUTPUT_FORMATS as readonly string[]).includes(value))
    return value as (typeof OUTPUT_FORMATS)[number];
  const eq = value.indexOf('=');
  const name = eq < 0 ? value : value.slice(0, eq);
  const arg = eq < 0 ? '' : value.slice(eq + 1);
  if (name === 'jsonpath') {
    if (arg === '')
      throw new InvalidArgumentError(`give a template: -o jsonpath='{.metadata.name}'`);
    return { jsonpath: parseTemplate(arg) };
  }
  if (name === 'custom-columns') return { customColumns: parseCustomColumns(arg) };
  throw new InvalidArgumentError(
    `"${value}": use table, wide, yaml, json, jsonpath=TEMPLATE or custom-columns=HEADER:PATH,...`,
  );
}

/** Whether the format is a table (an empty result is said on stderr, as kubectl does). */
export function isTableFormat(format: OutputFormat): boolean {
  return (
    format === 'table' ||
    format === 'wide' ||
    (typeof format === 'object' && 'customColumns' in format)
  );
}

/** Columns padded to their widest cell, three spaces apart (kubectl's); a final newline. */
export function renderTable(
  headers: readonly string[],
  rows: readonly (readonly string[])[],
): string {
  return formatTable(headers, rows, { gap: 3 }) + '\n';
}

/** kubectl's age: 45s, 12m, 5h, 3d. */
export function age(timestamp: string | undefined, now = Date.now()): string {
  const t = timestamp === undefined ? NaN : Date.parse(timestamp);
  if (Number.isNaN(t)) return '';
  const s = Math.max(0, Math.floor((now - t) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

type Spec = Record<string, unknown>;
type Column = readonly [header: string, cell: (r: StoredResource, spec: Spec) => string];

const str = (v: unknown): string =>
  v === undefined || v === null
    ? ''
    : Array.isArray(v)
      ? v.map(str).join(',')
      : typeof v === 'object'
        ? JSON.stringify(v)
        : String(v);

const name: Column = ['NAME', (r) => r.metadata.name];
const field = (header: string, key: string): Column => [header, (_r, s) => str(s[key])];
const labels: Column = [
  'LABELS',
  (r) =>
    Object.entries(r.metadata.labels ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(',') || '<none>',
];
const ageColumn: Column = ['AGE', (r) => age(r.metadata.creationTimestamp)];
const count = (header: string, key: string): Column => [
  header,
  (_r, s) => String(Array.isArray(s[key]) ? s[key].length : 0),
];

interface KindColumns {
  readonly table: readonly Column[];
  readonly wide: readonly Column[];
}

const policyWide = [field('TIER', 'tier'), field('ORDER', 'order'), field('SELECTOR', 'selector')];

const COLUMNS: Record<KindName, KindColumns> = {
  IPPool: {
    table: [name, field('CIDR', 'cidr'), field('SELECTOR', 'nodeSelector')],
    wide: [
      name,
      field('CIDR', 'cidr'),
      field('BLOCKSIZE', 'blockSize'),
      field('NAT', 'natOutgoing'),
      field('IPIPMODE', 'ipipMode'),
      field('VXLANMODE', 'vxlanMode'),
      field('DISABLED', 'disabled'),
      field('SELECTOR', 'nodeSelector'),
    ],
  },
  NetworkPolicy: { table: [name], wide: [name, ...policyWide] },
  GlobalNetworkPolicy: { table: [name], wide: [name, ...policyWide] },
  Tier: {
    table: [name, field('ORDER', 'order')],
    wide: [name, field('ORDER', 'order'), field('DEFAULTACTION', 'defaultAction')],
  },
  Profile: {
    table: [name],
    wide: [name, count('INGRESS', 'ingress'), count('EGRESS', 'egress'), labels],
  },
  NetworkSet: { table: [name], wide: [name, field('NETS', 'nets'), labels] },
  GlobalNetworkSet: { table: [name], wide: [name, field('NETS', 'nets'), labels] },
  HostEndpoint: {
    table: [name, field('NODE', 'node')],
    wide: [
      name,
      field('NODE', 'node'),
      field('INTERFACE', 'interfaceName'),
      field('IPS', 'expectedIPs'),
      field('PROFILES', 'profiles'),
    ],
  },
  WorkloadEndpoint: {
    table: [
      field('WORKLOAD', 'workload'),
      field('NODE', 'node'),
      field('NETWORKS', 'ipNetworks'),
      field('INTERFACE', 'interfaceName'),
    ],
    wide: [
      name,
      field('WORKLOAD', 'workload'),
      field('NODE', 'node'),
      field('NETWORKS', 'ipNetworks'),
      field('INTERFACE', 'interfaceName'),
      field('MAC', 'mac'),
      field('PROFILES', 'profiles'),
    ],
  },
  Node: {
    table: [name],
    wide: [
      name,
      ['ASN', (_r, s) => str((s.bgp as Spec | undefined)?.asNumber)],
      ['IPV4', (_r, s) => str((s.bgp as Spec | undefined)?.ipv4Address)],
      labels,
    ],
  },
  BGPConfiguration: {
    table: [
      name,
      field('LOGSEVERITY', 'logSeverityScreen'),
      field('MESHENABLED', 'nodeToNodeMeshEnabled'),
      field('ASNUMBER', 'asNumber'),
    ],
    wide: [
      name,
      field('LOGSEVERITY', 'logSeverityScreen'),
      field('MESHENABLED', 'nodeToNodeMeshEnabled'),
      field('ASNUMBER', 'asNumber'),
      field('LISTENPORT', 'listenPort'),
    ],
  },
  BGPPeer: {
    table: [name, field('PEERIP', 'peerIP'), field('NODE', 'node'), field('ASN', 'asNumber')],
    wide: [
      name,
      field('PEERIP', 'peerIP'),
      field('NODE', 'node'),
      field('ASN', 'asNumber'),
      field('NODESELECTOR', 'nodeSelector'),
      field('PEERSELECTOR', 'peerSelector'),
    ],
  },
  AgentConfiguration: {
    table: [name],
    wide: [
      name,
      field('LOGLEVEL', 'logLevel'),
      field('DATAPLANE', 'dataplane'),
      field('HEALTHPORT', 'healthPort'),
      field('METRICSPORT', 'metricsPort'),
    ],
  },
  K8sNetworkPolicy: {
    table: [name, ['POD-SELECTOR', (_r, s) => podSelector(s.podSelector)], ageColumn],
    wide: [
      name,
      ['POD-SELECTOR', (_r, s) => podSelector(s.podSelector)],
      field('TYPES', 'policyTypes'),
      ageColumn,
    ],
  },
  Namespace: { table: [name, ageColumn], wide: [name, ageColumn, labels] },
  IPReservation: { table: [name], wide: [name, field('CIDRS', 'reservedCIDRs')] },
  IPAMConfiguration: {
    table: [name],
    wide: [name, field('STRICTAFFINITY', 'strictAffinity'), field('MAXBLOCKS', 'maxBlocksPerHost')],
  },
  BGPFilter: { table: [name], wide: [name] },
  FelixConfiguration: { table: [name], wide: [name] },
  KubeControllersConfiguration: { table: [name], wide: [name] },
  ClusterInformation: { table: [name], wide: [name] },
  StagedNetworkPolicy: { table: [name], wide: [name, ...policyWide] },
  StagedGlobalNetworkPolicy: { table: [name], wide: [name, ...policyWide] },
  StagedKubernetesNetworkPolicy: { table: [name], wide: [name] },
};

/** kubectl's rendering of a LabelSelector: "app=web,tier in (a,b)", "<none>" for {}. */
function podSelector(sel: unknown): string {
  if (typeof sel !== 'object' || sel === null) return '<none>';
  const s = sel as {
    matchLabels?: Record<string, string>;
    matchExpressions?: { key: string; operator: string; values?: string[] }[];
  };
  const parts = [
    ...Object.entries(s.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`),
    ...(s.matchExpressions ?? []).map((e) => {
      const values = `(${(e.values ?? []).join(',')})`;
      switch (e.operator) {
        case 'In':
          return `${e.key} in ${values}`;
        case 'NotIn':
          return `${e.key} notin ${values}`;
        case 'Exists':
          return e.key;
        default:
          return `!${e.key}`;
      }
    }),
  ];
  return parts.length === 0 ? '<none>' : parts.join(',');
}

export interface FormatOptions {
  readonly format: OutputFormat;
  /** Show a NAMESPACE column (namespaced kinds listed across namespaces). */
  readonly allNamespaces?: boolean;
  /** Print the object itself, not a List (a `get` of exactly one name). */
  readonly single?: boolean;
  /** The list's revision, for `metadata.resourceVersion` of a List. */
  readonly revision?: string;
}

function asDocument(
  kind: KindName,
  items: readonly StoredResource[],
  options: FormatOptions,
): unknown {
  if (options.single && items.length === 1) return items[0];
  const info = KINDS[kind];
  return {
    apiVersion: info.apiVersion,
    kind: `${info.kind}List`,
    metadata: options.revision === undefined ? {} : { resourceVersion: options.revision },
    items,
  };
}

/** The text `get` prints for these objects of one kind. */
export function formatResources(
  kind: KindName,
  items: readonly StoredResource[],
  options: FormatOptions,
): string {
  const format = options.format;
  if (typeof format === 'object') {
    if ('jsonpath' in format)
      return executeTemplate(format.jsonpath, asDocument(kind, items, options));
    return formatCustomColumns(format.customColumns, items);
  }
  switch (format) {
    case 'json':
      return JSON.stringify(asDocument(kind, items, options), null, 2) + '\n';
    case 'yaml':
      return toYaml(asDocument(kind, items, options));
    case 'table':
    case 'wide': {
      const columns = [...COLUMNS[kind][format === 'wide' ? 'wide' : 'table']];
      if (options.allNamespaces && KINDS[kind].namespaced)
        columns.unshift(['NAMESPACE', (r) => r.metadata.namespace ?? '']);
      return renderTable(
        columns.map(([h]) => h),
        items.map((r) => columns.map(([, cell]) => cell(r, r.spec))),
      );
    }
  }
}
