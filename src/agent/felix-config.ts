/**
 * The agent's settings from the datastore: Calico's FelixConfiguration and tortie's own
 * AgentConfiguration, each as `default` (every node) and `node.<name>` (one node, field
 * by field over `default`, as in Felix), mapped onto the agent's settings
 * (./config.ts, CLUSTER_SETTINGS). Pure: the agent hands in what it read or watched.
 *
 * Precedence, highest first (docs/agent.md, "Configuration from the datastore"):
 *
 *   flag > environment > agent.yaml            (local: AgentConfig.localSettings)
 *   AgentConfiguration node.<name> > FelixConfiguration node.<name>
 *   AgentConfiguration default     > FelixConfiguration default
 *   built-in defaults
 *
 * Every field of Calico's FelixConfigurationSpec is accepted; each is in one group:
 *  - live: applied by the running agent (at the reconcile that follows the change);
 *  - restart: applied at the agent's next start (a load-time constant, a bound port...);
 *    while the configured value differs from the running one, status says so;
 *  - fixed: tortie has one value (VXLAN port and VNI, IPv4 only): that value is accepted,
 *    another is reported as not applicable;
 *  - not implemented: accepted, stored and listed by name in the agent's status.
 * A value tortie cannot use (a bad log level, reportingInterval 0) is listed with why,
 * and the setting keeps its local or default value: a cluster's configuration is never
 * refused.
 */
import { goDurationSeconds } from '../util/duration.js';
import { FELIX_FIELDS } from '../datastore/schema/calico-config.js';
import {
  CLUSTER_SETTINGS,
  ENDPOINT_TO_HOST_ACTIONS,
  type AgentConfig,
  type ClusterSetting,
  type LogLevel,
} from './config.js';
import { VXLAN_PORT, VXLAN_VNI } from './vxlan.js';

/** Settings the running agent changes without a restart. */
export const LIVE_SETTINGS: ReadonlySet<ClusterSetting> = new Set<ClusterSetting>([
  'logLevel',
  'reportIntervalSeconds',
  'natOutgoingAddress',
  'natPortRange',
  'ipipMtu',
  'vxlanMtu',
  'xdpEnabled',
  'genericXdpEnabled',
]);

export type ClusterValues = { -readonly [S in ClusterSetting]?: AgentConfig[S] };

type Parsed = { readonly value: unknown } | { readonly problem: string };

interface Mapping {
  readonly setting: ClusterSetting;
  readonly parse: (raw: unknown) => Parsed;
}

interface Fixed {
  readonly value: unknown;
  readonly parse: (raw: unknown) => Parsed;
  readonly why: string;
}

// --- value parsers (lenient in case and form, as Felix reads its datastore) -----------

function oneOf<T extends string>(
  values: readonly T[],
  map: Readonly<Record<string, T>> = {},
): (raw: unknown) => Parsed {
  return (raw) => {
    if (typeof raw !== 'string') return { problem: `not a string` };
    const lower = raw.toLowerCase();
    const v = map[lower] ?? values.find((x) => x.toLowerCase() === lower);
    return v === undefined ? { problem: `not one of ${values.join(', ')}` } : { value: v };
  };
}

function bool(raw: unknown): Parsed {
  if (typeof raw === 'boolean') return { value: raw };
  if (typeof raw === 'string' && /^(true|false)$/i.test(raw))
    return { value: raw.toLowerCase() === 'true' };
  return { problem: 'not true or false' };
}

function intIn(min: number, max: number): (raw: unknown) => Parsed {
  return (raw) => {
    const n = typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : raw;
    return typeof n === 'number' && Number.isInteger(n) && n >= min && n <= max
      ? { value: n }
      : { problem: `not an integer in ${min}..${max}` };
  };
}

/** A Go/Kubernetes duration ("30s", "1m30s", "1.5h", "0s") or a number of seconds. */
export function durationSeconds(raw: unknown): number | undefined {
  if (typeof raw === 'number') return Number.isFinite(raw) && raw >= 0 ? raw : undefined;
  return typeof raw === 'string' ? goDurationSeconds(raw) : undefined;
}

/** Whole seconds in min..max (rounded up: tortie's intervals are whole seconds). */
function seconds(min: number, max: number, zero: string): (raw: unknown) => Parsed {
  return (raw) => {
    const s = durationSeconds(raw);
    if (s === undefined) return { problem: 'not a duration such as 30s or 1m30s' };
    if (s === 0) return { problem: zero };
    const whole = Math.ceil(s);
    return whole >= min && whole <= max
      ? { value: whole }
      : { problem: `not between ${min} s and ${max} s` };
  };
}

const logLevel = oneOf<LogLevel>(['trace', 'debug', 'info', 'warn', 'error', 'fatal'], {
  warning: 'warn',
  panic: 'fatal',
});

const endpointToHost = oneOf(ENDPOINT_TO_HOST_ACTIONS);

const traceVerdicts = (raw: unknown): Parsed => {
  const p = oneOf(['Off', 'Info', 'Debug'])(raw);
  return 'value' in p ? { value: p.value === 'Debug' } : p;
};

function ipv4(raw: unknown): Parsed {
  if (typeof raw !== 'string') return { problem: 'not an IPv4 address' };
  const parts = raw.split('.');
  return parts.length === 4 && parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) <= 255)
    ? { value: raw }
    : { problem: raw.includes(':') ? 'IPv6: tortie runs IPv4 only' : 'not an IPv4 address' };
}

/** Calico's numorstring.Port: a port, or `min:max` (also `min-max`); as `min-max`. */
function portRange(raw: unknown): Parsed {
  const m =
    typeof raw === 'number'
      ? [String(raw), String(raw)]
      : typeof raw === 'string'
        ? /^(\d+)(?:[:-](\d+))?$/.exec(raw)?.slice(1)
        : undefined;
  const lo = Number(m?.[0]);
  const hi = Number(m?.[1] ?? m?.[0]);
  return m !== undefined &&
    Number.isInteger(lo) &&
    Number.isInteger(hi) &&
    lo >= 1 &&
    lo <= hi &&
    hi <= 65535
    ? { value: `${lo}-${hi}` }
    : { problem: 'not a port range such as 32768:65535' };
}

// --- the field tables ------------------------------------------------------------------

/** Felix fields with a tortie setting. */
export const FELIX_MAPPINGS: Readonly<Record<string, Mapping>> = {
  logSeverityScreen: { setting: 'logLevel', parse: logLevel },
  reportingInterval: {
    setting: 'reportIntervalSeconds',
    parse: seconds(1, 86400, 'tortie always reports (0, off, is not supported)'),
  },
  reportingTTL: {
    setting: 'heartbeatTtlSeconds',
    parse: seconds(2, 3600, 'tortie needs a heartbeat TTL (0 is not supported)'),
  },
  bpfEnabled: {
    setting: 'dataplane',
    parse: (raw) => {
      const p = bool(raw);
      return 'value' in p ? { value: p.value === true ? 'bpf' : 'iptables' } : p;
    },
  },
  healthHost: {
    setting: 'healthHost',
    parse: (raw) =>
      typeof raw === 'string' && raw !== '' ? { value: raw } : { problem: 'not a host' },
  },
  healthPort: { setting: 'healthPort', parse: intIn(0, 65535) },
  defaultEndpointToHostAction: { setting: 'defaultEndpointToHostAction', parse: endpointToHost },
  allowIPIPPacketsFromWorkloads: { setting: 'allowIPIPPacketsFromWorkloads', parse: bool },
  allowVXLANPacketsFromWorkloads: { setting: 'allowVXLANPacketsFromWorkloads', parse: bool },
  bpfLogLevel: { setting: 'traceVerdicts', parse: traceVerdicts },
  natOutgoingAddress: { setting: 'natOutgoingAddress', parse: ipv4 },
  natPortRange: { setting: 'natPortRange', parse: portRange },
  ipipMTU: { setting: 'ipipMtu', parse: intIn(576, 65515) },
  vxlanMTU: { setting: 'vxlanMtu', parse: intIn(576, 65485) },
  xdpEnabled: { setting: 'xdpEnabled', parse: bool },
  genericXDPEnabled: { setting: 'genericXdpEnabled', parse: bool },
};

/**
 * Felix fields a manager reads from the model itself, live (BPF mode): the failsafe
 * ports (./managers/host-endpoints.ts, which reports a bad list in the status).
 */
export const READ_BY_MANAGERS: ReadonlySet<string> = new Set([
  'failsafeInboundHostPorts',
  'failsafeOutboundHostPorts',
]);

/** Felix fields where tortie has one value. */
export const FELIX_FIXED: Readonly<Record<string, Fixed>> = {
  vxlanPort: {
    value: VXLAN_PORT,
    parse: intIn(1, 65535),
    why: `tortie's VXLAN port is ${VXLAN_PORT}`,
  },
  vxlanVNI: {
    value: VXLAN_VNI,
    parse: intIn(1, 16777215),
    why: `tortie's VXLAN VNI is ${VXLAN_VNI}`,
  },
  ipv6Support: { value: false, parse: bool, why: 'tortie runs IPv4 only' },
};

/** AgentConfiguration fields (tortie's own kind) with a setting; the others are listed. */
export const AGENT_CONFIGURATION_MAPPINGS: Readonly<Record<string, Mapping>> = {
  logLevel: { setting: 'logLevel', parse: logLevel },
  reportingIntervalSeconds: { setting: 'reportIntervalSeconds', parse: intIn(1, 86400) },
  dataplane: { setting: 'dataplane', parse: oneOf(['bpf', 'iptables']) },
  healthPort: { setting: 'healthPort', parse: intIn(0, 65535) },
  defaultEndpointToHostAction: { setting: 'defaultEndpointToHostAction', parse: endpointToHost },
  bpfLogLevel: { setting: 'traceVerdicts', parse: traceVerdicts },
};

export type FieldGroup = 'live' | 'restart' | 'fixed' | 'not implemented';

/** The group of a FelixConfiguration field (unknown names: not implemented). */
export function felixFieldGroup(field: string): FieldGroup {
  const m = FELIX_MAPPINGS[field];
  if (m !== undefined) return LIVE_SETTINGS.has(m.setting) ? 'live' : 'restart';
  if (FELIX_FIXED[field] !== undefined) return 'fixed';
  if (READ_BY_MANAGERS.has(field)) return 'live';
  return 'not implemented';
}

/** Every Felix field by group (docs and the report's counts). */
export function felixFieldsByGroup(): Record<FieldGroup, string[]> {
  const out: Record<FieldGroup, string[]> = {
    live: [],
    restart: [],
    fixed: [],
    'not implemented': [],
  };
  for (const f of FELIX_FIELDS) out[felixFieldGroup(f)].push(f);
  return out;
}

// --- merging ---------------------------------------------------------------------------

/** One stored configuration object. */
export interface ConfigLayer {
  readonly kind: 'FelixConfiguration' | 'AgentConfiguration';
  /** `default` or `node.<name>`. */
  readonly name: string;
  readonly spec: Readonly<Record<string, unknown>>;
}

/** The four objects a node's agent reads, highest precedence first. */
export function configLayerNames(node: string): { kind: ConfigLayer['kind']; name: string }[] {
  return [
    { kind: 'AgentConfiguration', name: `node.${node}` },
    { kind: 'FelixConfiguration', name: `node.${node}` },
    { kind: 'AgentConfiguration', name: 'default' },
    { kind: 'FelixConfiguration', name: 'default' },
  ];
}

/** Orders stored objects as configLayerNames does, dropping other nodes' and absent ones. */
export function orderLayers(node: string, layers: readonly ConfigLayer[]): ConfigLayer[] {
  return configLayerNames(node).flatMap(
    (n) => layers.find((l) => l.kind === n.kind && l.name === n.name) ?? [],
  );
}

export interface StoreSettings {
  /** The datastore's value of each setting it gives (the highest layer with a usable value). */
  readonly values: ClusterValues;
  /** Where each value came from: `FelixConfiguration node.n1: logSeverityScreen`. */
  readonly from: Readonly<Partial<Record<ClusterSetting, string>>>;
  /** Fixed fields set to tortie's value. */
  readonly fixed: readonly { readonly field: string; readonly value: unknown }[];
  /** Fields set but not implemented (`AgentConfiguration` ones prefixed so), sorted. */
  readonly notImplemented: readonly string[];
  /** Values tortie cannot use: the setting keeps its local or default value. */
  readonly invalid: readonly {
    readonly field: string;
    readonly value: unknown;
    readonly problem: string;
  }[];
  /** The objects read: `FelixConfiguration default`, ... */
  readonly sources: readonly string[];
}

function describe(l: ConfigLayer): string {
  return `${l.kind} ${l.name}`;
}

/** The datastore's settings from its layers, highest precedence first (orderLayers). */
export function storeSettings(layers: readonly ConfigLayer[]): StoreSettings {
  const values: ClusterValues = {};
  const from: Partial<Record<ClusterSetting, string>> = {};
  const fixed: { field: string; value: unknown }[] = [];
  const notImplemented = new Set<string>();
  const invalid: { field: string; value: unknown; problem: string }[] = [];
  const seenFixed = new Set<string>();
  for (const layer of layers) {
    const felix = layer.kind === 'FelixConfiguration';
    const mappings = felix ? FELIX_MAPPINGS : AGENT_CONFIGURATION_MAPPINGS;
    for (const [field, raw] of Object.entries(layer.spec)) {
      // Felix's omitempty: an empty string or null is not set.
      if (raw === undefined || raw === null || raw === '') continue;
      const where = `${describe(layer)}: ${field}`;
      const mapping = mappings[field];
      const fix = felix ? FELIX_FIXED[field] : undefined;
      if (mapping !== undefined) {
        if (from[mapping.setting] !== undefined) continue; // a higher layer gave it
        const p = mapping.parse(raw);
        if ('problem' in p) {
          invalid.push({ field: where, value: raw, problem: p.problem });
          continue;
        }
        (values as Record<string, unknown>)[mapping.setting] = p.value;
        from[mapping.setting] = where;
      } else if (fix !== undefined) {
        if (seenFixed.has(field)) continue;
        seenFixed.add(field);
        const p = fix.parse(raw);
        if ('value' in p && p.value === fix.value) fixed.push({ field, value: p.value });
        else
          invalid.push({
            field: where,
            value: raw,
            problem: 'problem' in p ? p.problem : `not applicable: ${fix.why}`,
          });
      } else if (!(felix && READ_BY_MANAGERS.has(field))) {
        notImplemented.add(felix ? field : `AgentConfiguration.${field}`);
      }
    }
  }
  return {
    values,
    from,
    fixed,
    notImplemented: [...notImplemented].sort(),
    invalid,
    sources: layers.map(describe),
  };
}

// --- against the local settings and the running agent ----------------------------------

export interface ConfigReport {
  /** The configuration objects read, highest precedence first. */
  readonly sources: readonly string[];
  /** Settings in effect from the datastore: setting → value and where from. */
  readonly applied: Readonly<Partial<Record<ClusterSetting, { value: unknown; from: string }>>>;
  /** Fixed fields set to tortie's own value. */
  readonly fixed: readonly string[];
  /** Configured in the datastore, different from what runs: taken at the next start. */
  readonly restartNeeded: readonly {
    readonly setting: ClusterSetting;
    readonly from: string;
    readonly running: unknown;
    readonly configured: unknown;
  }[];
  /** Set in the datastore, but given locally too (the local value wins). */
  readonly overridden: readonly {
    readonly setting: ClusterSetting;
    readonly from: string;
    readonly by: string;
  }[];
  readonly notImplemented: readonly string[];
  readonly invalid: StoreSettings['invalid'];
}

/**
 * The settings an agent starts with: its local configuration, every cluster setting it
 * was not given locally taken from the datastore.
 */
export function startingConfig(local: AgentConfig, store: StoreSettings): AgentConfig {
  const out: Record<string, unknown> = { ...local };
  for (const s of CLUSTER_SETTINGS) {
    const v = store.values[s];
    if (v !== undefined && local.localSettings[s] === undefined) out[s] = v;
  }
  return out as unknown as AgentConfig;
}

/**
 * What the running agent should do about the datastore's settings now: `live` holds the
 * value of every live setting (the datastore's, else the local or default one in
 * `baseline`); the report says what is applied, what waits for a restart and what is
 * ignored. `running` is what the agent started with (startingConfig).
 */
export function liveSettings(
  baseline: AgentConfig,
  running: AgentConfig,
  store: StoreSettings,
): { live: ClusterValues; report: ConfigReport } {
  const live: ClusterValues = {};
  const applied: Partial<Record<ClusterSetting, { value: unknown; from: string }>> = {};
  const restartNeeded: ConfigReport['restartNeeded'][number][] = [];
  const overridden: ConfigReport['overridden'][number][] = [];
  for (const s of CLUSTER_SETTINGS) {
    const v = store.values[s];
    const from = store.from[s];
    const by = baseline.localSettings[s];
    if (v !== undefined && from !== undefined && by !== undefined)
      overridden.push({ setting: s, from, by });
    const fromStore = v !== undefined && from !== undefined && by === undefined;
    const wanted = fromStore ? v : baseline[s];
    if (LIVE_SETTINGS.has(s)) {
      (live as Record<string, unknown>)[s] = wanted;
      if (fromStore) applied[s] = { value: v, from };
    } else if (wanted !== running[s]) {
      // Configured now, or no longer configured (back to the local or default value).
      restartNeeded.push({
        setting: s,
        from: fromStore ? from : (by ?? 'the default (no longer in the datastore)'),
        running: running[s],
        configured: wanted,
      });
    } else if (fromStore) {
      applied[s] = { value: v, from };
    }
  }
  return {
    live,
    report: {
      sources: store.sources,
      applied,
      fixed: store.fixed.map((f) => f.field),
      restartNeeded,
      overridden,
      notImplemented: store.notImplemented,
      invalid: store.invalid,
    },
  };
}

/** Reads the node's configuration objects (any store with `get`). */
export async function readConfigLayers(
  store: {
    get(kind: ConfigLayer['kind'], name: string): Promise<{ spec?: unknown } | undefined>;
  },
  node: string,
): Promise<ConfigLayer[]> {
  const names = configLayerNames(node);
  const found = await Promise.all(names.map((n) => store.get(n.kind, n.name)));
  return names.flatMap((n, i) => {
    const r = found[i];
    return r === undefined ? [] : [{ ...n, spec: (r.spec ?? {}) as Record<string, unknown> }];
  });
}
