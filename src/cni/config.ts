/**
 * The network configuration a runtime writes to the plugin's stdin (type "tortie"),
 * validated at the edge: bad JSON is code 6, a missing or unknown cniVersion code 7 or 1,
 * anything else malformed code 7 naming the field. Unknown top-level fields pass through
 * (runtimes add their own), as the spec asks of plugins that chain.
 *
 *   {
 *     "cniVersion": "1.1.0", "name": "tortie", "type": "tortie",
 *     "etcd_endpoints": "http://127.0.0.1:2379",        // or "datastore": {"endpoints": [...], "prefix": "/calico"}
 *     "etcd_ca_cert_file": "/etc/tortie/pki/etcd-ca.pem", // TLS (Calico's names): https:// endpoints only;
 *     "etcd_cert_file": "/etc/tortie/pki/cni.pem",       //   certificate and key together, files the
 *     "etcd_key_file": "/etc/tortie/pki/cni-key.pem",    //   plugin can read
 *     "nodename": "node-1",                             // default: this machine's hostname
 *     "ipam": {"type": "tortie-ipam", "pools": ["default-pool", "10.65.0.0/16"]},
 *     "mtu": 1450,
 *     "host_netns": "/run/netns/node-1",                // the node's namespace (labs); default: the agent's own
 *     "agent_socket": "/var/run/tortie/cni.sock",       // where the node agent serves the plugin
 *     "dns": {"nameservers": ["10.96.0.10"]},
 *     "agent_wait_ms": 10000,                           // wait for the agent to program the pod; 0: don't
 *     "args": {"tortie": {"namespace": "web", "name": "frontend", "labels": {"app": "web"},
 *                         "serviceAccount": "frontend"},
 *              "cni": {"labels": [{"key": "app", "value": "web"}]}},
 *     "runtimeConfig": {"tortie": {...as args.tortie}}
 *   }
 *
 * On the Kubernetes datastore (Calico's names, as its plugin reads them):
 *
 *   {
 *     "datastore_type": "kubernetes",                   // default "etcdv3"
 *     "kubernetes": {"kubeconfig": "/etc/cni/net.d/tortie-kubeconfig"},  // default: in-cluster
 *     "policy": {"type": "k8s"},                        // accepted; the only policy type
 *     "ipam": {"type": "tortie-ipam", "assign_ipv4": "true", "ipv4_pools": ["default-pool"]}
 *   }
 */
import { accessSync, constants as fsConstants, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { z } from 'zod';
import { CniCode, CniError } from './errors.js';
import { labelKeyProblem, labelValueProblem } from './labels.js';
import { assertVersionFor, type CniCommand, type CniVersion } from './versions.js';

export const PLUGIN_TYPE = 'tortie';
export const IPAM_TYPE = 'tortie-ipam';
/**
 * Calico's IPAM type, accepted as the same built-in IPAM: tortie's IPAM keeps Calico's
 * blocks, affinities and handles, so a conflist written for Calico works unchanged.
 */
export const CALICO_IPAM_TYPE = 'calico-ipam';
const DATASTORE_TYPES = ['etcdv3', 'kubernetes'] as const;

export interface DnsConfig {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

/** Identity a runtime passes in the config: namespace, pod name, labels, service account. */
export interface IdentityOverrides {
  namespace?: string;
  name?: string;
  labels: Record<string, string>;
  /** The pod's service account (Kubernetes' serviceAccountName), in its namespace. */
  serviceAccount?: string;
}

export interface ValidAttachment {
  containerID: string;
  ifname: string;
}

/** TLS files for etcd (absolute paths, checked readable): what src/datastore's `tls` takes. */
export interface EtcdTlsFiles {
  /** etcd_ca_cert_file: the CA that signed etcd's server certificate (default: system roots). */
  ca?: string;
  /** etcd_cert_file and etcd_key_file: the plugin's client certificate and its key. */
  cert?: string;
  key?: string;
}

/** Which datastore the plugin talks to (Calico's `datastore_type`). */
export type DatastoreType = 'etcdv3' | 'kubernetes';

/** `kubernetes` of the config: where the plugin finds the API server. */
export interface KubernetesSettings {
  /** kubernetes.kubeconfig (absolute, checked readable); undefined: in-cluster service account. */
  kubeconfig?: string;
}

export interface NetworkConfig {
  cniVersion: CniVersion;
  name: string;
  datastoreType: DatastoreType;
  /** etcd's endpoints (empty on Kubernetes), the key prefix, TLS files. */
  datastore: { endpoints: string[]; prefix?: string; tls?: EtcdTlsFiles };
  /** Only with datastoreType "kubernetes". */
  kubernetes?: KubernetesSettings;
  nodename: string;
  /** ipam.pools: IPPool names or CIDRs the pod may take an address from, in order. */
  pools?: string[];
  mtu?: number;
  /** The node's network namespace path; undefined: the agent's own namespace. */
  hostNetns?: string;
  /**
   * The node agent's CNI socket, where the compiled plugin hands the request over
   * (default DEFAULT_AGENT_SOCKET); read by the plugin (cni/plugin/tortie.c), kept here so
   * that a bad path is refused like any other field.
   */
  agentSocket: string;
  dns: DnsConfig;
  /**
   * ADD waits this long for the node's agent to report the new endpoint programmed, and
   * fails (code 11) if it does not; 0: return without waiting (no agent on the node).
   */
  agentWaitMs: number;
  /** From args (lower precedence) then runtimeConfig (higher), merged. */
  identity: IdentityOverrides;
  prevResult?: unknown;
  /** GC only: `cni.dev/valid-attachments`. */
  validAttachments?: ValidAttachment[];
}

/** Default of `agent_socket`: where `tortie node run` serves CNI requests. */
export const DEFAULT_AGENT_SOCKET = '/var/run/tortie/cni.sock';

/** Default of `agent_wait_ms`. */
export const DEFAULT_AGENT_WAIT_MS = 10_000;

const NETWORK_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const NODE_NAME = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;
/** A Kubernetes service account name: a DNS subdomain. */
const SERVICE_ACCOUNT = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

const labelsMap = z.record(z.string(), z.string());
const identity = z
  .object({
    namespace: z.string().min(1).optional(),
    name: z.string().min(1).optional(),
    labels: labelsMap.optional(),
    serviceAccount: z.string().min(1).optional(),
  })
  .passthrough();

const absolutePath = z
  .string()
  .regex(/^\/[^\s"'#\\]*$/, 'must be an absolute path without spaces or quotes');

/** A file the plugin reads: absolute, since the runtime runs it from a directory of its own. */
const absoluteFile = z
  .string()
  .regex(
    /^\/./,
    'must be an absolute path (the runtime runs the plugin from a directory of its own)',
  );

/** Calico's IPAM flags are strings ("true"/"false"); a JSON boolean is taken too. */
const calicoBool = z
  .union([z.boolean(), z.enum(['true', 'false'])], {
    errorMap: () => ({ message: 'must be "true" or "false"' }),
  })
  .transform((v) => v === true || v === 'true');

const endpointUrl = z.string().refine((value) => {
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}, 'must be an http:// or https:// URL of an etcd client endpoint');

const schema = z
  .object({
    cniVersion: z.string(),
    name: z
      .string({ required_error: 'is required (the network name)' })
      .regex(
        NETWORK_NAME,
        "must start with a letter or digit, then letters, digits, '_', '.' or '-'",
      ),
    type: z.literal(PLUGIN_TYPE, {
      errorMap: () => ({ message: `must be "${PLUGIN_TYPE}"` }),
    }),
    datastore_type: z
      .string()
      .refine((v) => (DATASTORE_TYPES as readonly string[]).includes(v), {
        message: `must be "etcdv3" (the default) or "kubernetes"`,
      })
      .optional(),
    kubernetes: z
      .object({
        kubeconfig: absoluteFile.optional(),
      })
      .passthrough()
      .optional(),
    policy: z
      .object({
        type: z
          .string()
          .refine((v) => v === 'k8s', {
            message:
              'must be "k8s" (Kubernetes policy, the only kind tortie enforces), or leave policy out',
          })
          .optional(),
      })
      .passthrough()
      .optional(),
    etcd_endpoints: z.string().optional(),
    etcd_ca_cert_file: absoluteFile.optional(),
    etcd_cert_file: absoluteFile.optional(),
    etcd_key_file: absoluteFile.optional(),
    datastore: z
      .object({
        endpoints: z.union([z.array(endpointUrl).min(1), z.string()]).optional(),
        prefix: z
          .string()
          .regex(/^\/[^\s]*$/, 'must start with "/"')
          .optional(),
      })
      .strict()
      .optional(),
    nodename: z
      .string()
      .regex(
        NODE_NAME,
        "must be a lower-case DNS name: letters, digits, '-' and '.', at most 253 characters",
      )
      .optional(),
    ipam: z
      .object({
        type: z.string(),
        pools: z
          .array(z.string().min(1))
          .min(1, 'is empty: name at least one pool (by name or CIDR), or leave it out')
          .optional(),
        ipv4_pools: z
          .array(z.string().min(1))
          .min(1, 'is empty: name at least one pool (by name or CIDR), or leave it out')
          .optional(),
        assign_ipv4: calicoBool.optional(),
        assign_ipv6: calicoBool.optional(),
      })
      .passthrough()
      .optional(),
    mtu: z.number().int().min(68).max(65535).optional(),
    host_netns: absolutePath.optional(),
    agent_socket: absolutePath
      .max(107, 'must be at most 107 bytes (a unix socket path)')
      .optional(),
    ipMasq: z.boolean().optional(),
    agent_wait_ms: z
      .number()
      .int()
      .min(0, 'must be 0 (do not wait for the agent) or a number of milliseconds')
      .max(600_000, 'must be at most 600000 (10 minutes)')
      .optional(),
    dns: z
      .object({
        nameservers: z.array(z.string()).optional(),
        domain: z.string().optional(),
        search: z.array(z.string()).optional(),
        options: z.array(z.string()).optional(),
      })
      .passthrough()
      .optional(),
    args: z
      .object({
        tortie: identity.optional(),
        cni: z
          .object({
            labels: z
              .array(z.object({ key: z.string(), value: z.string() }).passthrough())
              .optional(),
          })
          .passthrough()
          .optional(),
      })
      .passthrough()
      .optional(),
    runtimeConfig: z.object({ tortie: identity.optional() }).passthrough().optional(),
    prevResult: z.unknown().optional(),
    'cni.dev/valid-attachments': z
      .array(z.object({ containerID: z.string(), ifname: z.string() }).passthrough())
      .optional(),
  })
  .passthrough();

/** Parses stdin as JSON: a document that is not a JSON object is a decode failure (6). */
export function decodeConfig(stdin: string): Record<string, unknown> {
  if (stdin.trim() === '') {
    throw new CniError(CniCode.DecodeFailure, 'no network configuration on stdin');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdin);
  } catch (err) {
    throw new CniError(
      CniCode.DecodeFailure,
      `network configuration on stdin is not JSON: ${(err as Error).message}`,
    );
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new CniError(
      CniCode.DecodeFailure,
      `network configuration on stdin must be a JSON object, got ${Array.isArray(parsed) ? 'an array' : typeof parsed}`,
    );
  }
  return parsed as Record<string, unknown>;
}

/** Validates a decoded configuration for `command`. */
export function parseNetworkConfig(
  raw: Record<string, unknown>,
  command: CniCommand,
): NetworkConfig {
  const cniVersion = assertVersionFor(command, raw.cniVersion);
  const result = schema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const field = issue.path.length === 0 ? '(top level)' : issue.path.join('.');
      return `${field}: ${issue.message}`;
    });
    throw new CniError(CniCode.InvalidConfig, `network config: ${problems.join('; ')}`);
  }
  const c = result.data;
  if (c.ipMasq === true) {
    throw new CniError(
      CniCode.UnsupportedField,
      'network config: ipMasq=true is not supported: tortie masquerades per IP pool (set natOutgoing: true on the IPPool)',
    );
  }
  const ipamType = c.ipam?.type ?? IPAM_TYPE;
  if (ipamType !== IPAM_TYPE && ipamType !== CALICO_IPAM_TYPE) {
    throw new CniError(
      CniCode.UnsupportedField,
      `network config: ipam.type=${JSON.stringify(ipamType)} is not supported: tortie allocates from its pools with "${IPAM_TYPE}" (built in; "${CALICO_IPAM_TYPE}" names the same)`,
    );
  }
  if (c.ipam?.assign_ipv4 === false) {
    throw new CniError(
      CniCode.UnsupportedField,
      'network config: ipam.assign_ipv4="false" is not supported: tortie gives every pod one IPv4 address (leave it out or set "true")',
    );
  }
  if (c.ipam?.assign_ipv6 === true) {
    throw new CniError(
      CniCode.UnsupportedField,
      'network config: ipam.assign_ipv6="true" is not supported: tortie pods are IPv4 only (leave it out or set "false")',
    );
  }
  if (c.ipam?.pools !== undefined && c.ipam.ipv4_pools !== undefined) {
    invalid("give either ipam.pools or ipam.ipv4_pools (Calico's name), not both");
  }
  const datastoreType: DatastoreType = (c.datastore_type as DatastoreType | undefined) ?? 'etcdv3';
  const config: NetworkConfig = {
    cniVersion,
    name: c.name,
    datastoreType,
    datastore:
      datastoreType === 'kubernetes'
        ? kubernetesPrefixOf(c)
        : datastoreOf(c.etcd_endpoints, c.datastore, {
            ca: c.etcd_ca_cert_file,
            cert: c.etcd_cert_file,
            key: c.etcd_key_file,
          }),
    nodename: c.nodename ?? defaultNodeName(),
    dns: dnsOf(c.dns),
    agentSocket: c.agent_socket ?? DEFAULT_AGENT_SOCKET,
    agentWaitMs: c.agent_wait_ms ?? DEFAULT_AGENT_WAIT_MS,
    identity: identityOf(c.args, c.runtimeConfig),
  };
  if (datastoreType === 'kubernetes') config.kubernetes = kubernetesOf(c.kubernetes);
  else if (c.kubernetes?.kubeconfig !== undefined) {
    invalid(
      'kubernetes.kubeconfig is given but datastore_type is "etcdv3": set datastore_type "kubernetes" to use the Kubernetes datastore, or leave kubernetes out',
    );
  }
  const pools = c.ipam?.pools ?? c.ipam?.ipv4_pools;
  if (pools !== undefined) config.pools = pools;
  if (c.mtu !== undefined) config.mtu = c.mtu;
  if (c.host_netns !== undefined) config.hostNetns = c.host_netns;
  if (c.prevResult !== undefined) config.prevResult = c.prevResult;
  const attachments = c['cni.dev/valid-attachments'];
  if (attachments !== undefined) {
    config.validAttachments = attachments.map((a) => ({
      containerID: a.containerID,
      ifname: a.ifname,
    }));
  }
  return config;
}

/**
 * On Kubernetes there are no etcd settings: naming some is a mistake to point out, not to
 * ignore (the plugin would otherwise write somewhere the user did not mean). The key
 * prefix (`datastore.prefix`) still applies: it is how the store's keys map to objects.
 */
function kubernetesPrefixOf(c: {
  etcd_endpoints?: string | undefined;
  etcd_ca_cert_file?: string | undefined;
  etcd_cert_file?: string | undefined;
  etcd_key_file?: string | undefined;
  datastore?:
    { endpoints?: string[] | string | undefined; prefix?: string | undefined } | undefined;
}): NetworkConfig['datastore'] {
  const etcdFields = [
    ['etcd_endpoints', c.etcd_endpoints],
    ['datastore.endpoints', c.datastore?.endpoints],
    ['etcd_ca_cert_file', c.etcd_ca_cert_file],
    ['etcd_cert_file', c.etcd_cert_file],
    ['etcd_key_file', c.etcd_key_file],
  ].filter(([, v]) => v !== undefined && !(Array.isArray(v) && v.length === 0));
  if (etcdFields.length > 0) {
    invalid(
      `${etcdFields.map(([f]) => f).join(', ')}: etcd settings, but datastore_type is "kubernetes" (the plugin talks to the API server named by kubernetes.kubeconfig): leave them out`,
    );
  }
  return {
    endpoints: [],
    ...(c.datastore?.prefix === undefined ? {} : { prefix: c.datastore.prefix }),
  };
}

/** kubernetes.kubeconfig must be a file the plugin can read now, named if not. */
function kubernetesOf(k: { kubeconfig?: string | undefined } | undefined): KubernetesSettings {
  if (k?.kubeconfig === undefined) return {};
  const problem = unreadable(k.kubeconfig);
  if (problem !== undefined) invalid(`kubernetes.kubeconfig: ${k.kubeconfig} ${problem}`);
  return { kubeconfig: k.kubeconfig };
}

function datastoreOf(
  etcdEndpoints: string | undefined,
  datastore: { endpoints?: string[] | string | undefined; prefix?: string | undefined } | undefined,
  tlsFiles: { ca: string | undefined; cert: string | undefined; key: string | undefined },
): NetworkConfig['datastore'] {
  if (etcdEndpoints !== undefined && datastore !== undefined) {
    invalid('give either etcd_endpoints or datastore.endpoints, not both');
  }
  const raw = etcdEndpoints ?? datastore?.endpoints;
  if (raw === undefined) {
    invalid(
      'etcd_endpoints is required (e.g. "http://127.0.0.1:2379"), or datastore.endpoints; or datastore_type "kubernetes" for the Kubernetes datastore',
    );
  }
  const field = etcdEndpoints !== undefined ? 'etcd_endpoints' : 'datastore.endpoints';
  const endpoints = (typeof raw === 'string' ? raw.split(',') : raw).map((e) => e.trim());
  if (endpoints.length === 0 || endpoints.some((e) => e === '')) {
    invalid(`${field} must list at least one endpoint, separated by commas, none empty`);
  }
  for (const endpoint of endpoints) {
    if (!endpointUrl.safeParse(endpoint).success) {
      invalid(`${field}: ${JSON.stringify(endpoint)} is not an http:// or https:// URL`);
    }
  }
  const tls = tlsOf(tlsFiles, field, endpoints);
  return {
    endpoints,
    ...(datastore?.prefix === undefined ? {} : { prefix: datastore.prefix }),
    ...(tls === undefined ? {} : { tls }),
  };
}

const TLS_FIELDS = {
  ca: 'etcd_ca_cert_file',
  cert: 'etcd_cert_file',
  key: 'etcd_key_file',
} as const;

/**
 * etcd_ca_cert_file / etcd_cert_file / etcd_key_file: certificate and key together, every
 * endpoint https:// (certificates are never sent, nor the server checked, over http://),
 * every file a readable regular file now — a typo must fail here, named, not as an
 * unreachable etcd.
 */
function tlsOf(
  files: { ca: string | undefined; cert: string | undefined; key: string | undefined },
  endpointsField: string,
  endpoints: string[],
): EtcdTlsFiles | undefined {
  const given = (Object.keys(TLS_FIELDS) as (keyof typeof TLS_FIELDS)[]).filter(
    (k) => files[k] !== undefined,
  );
  if (given.length === 0) return undefined;
  if ((files.cert === undefined) !== (files.key === undefined)) {
    invalid(
      files.cert === undefined
        ? 'etcd_key_file is given without etcd_cert_file: give the client certificate and its key together'
        : 'etcd_cert_file is given without etcd_key_file: give the client certificate and its key together',
    );
  }
  const plain = endpoints.filter((e) => !e.startsWith('https://'));
  if (plain.length > 0) {
    invalid(
      `${given.map((k) => TLS_FIELDS[k]).join(', ')} need https:// etcd endpoints, but ${endpointsField} has ${plain.join(', ')}: use https:// (etcd serving TLS) or leave the TLS files out`,
    );
  }
  const out: EtcdTlsFiles = {};
  for (const k of given) {
    const path = files[k]!;
    const problem = unreadable(path);
    if (problem !== undefined) invalid(`${TLS_FIELDS[k]}: ${path} ${problem}`);
    out[k] = path;
  }
  return out;
}

/** Why `path` is not a readable regular file, or undefined when it is. */
function unreadable(path: string): string | undefined {
  try {
    if (!statSync(path).isFile()) return 'is not a regular file';
    accessSync(path, fsConstants.R_OK);
    return undefined;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'does not exist';
    if (code === 'EACCES') return 'is not readable by the plugin';
    return `cannot be read (${code ?? (e as Error).message})`;
  }
}

function dnsOf(dns: DnsConfig | undefined): DnsConfig {
  const out: DnsConfig = {};
  if (dns?.nameservers) out.nameservers = dns.nameservers;
  if (dns?.domain) out.domain = dns.domain;
  if (dns?.search) out.search = dns.search;
  if (dns?.options) out.options = dns.options;
  return out;
}

type IdentityInput = z.infer<typeof identity> | undefined;

function identityOf(
  args:
    | {
        tortie?: IdentityInput;
        cni?: { labels?: Array<{ key: string; value: string }> | undefined };
      }
    | undefined,
  runtimeConfig: { tortie?: IdentityInput } | undefined,
): IdentityOverrides {
  const labels: Record<string, string> = {};
  for (const { key, value } of args?.cni?.labels ?? []) labels[key] = value;
  Object.assign(labels, args?.tortie?.labels ?? {}, runtimeConfig?.tortie?.labels ?? {});
  for (const [key, value] of Object.entries(labels)) {
    const problem = labelKeyProblem(key) ?? labelValueProblem(key, value);
    if (problem) invalid(problem);
  }
  const out: IdentityOverrides = { labels };
  const namespace = runtimeConfig?.tortie?.namespace ?? args?.tortie?.namespace;
  const name = runtimeConfig?.tortie?.name ?? args?.tortie?.name;
  if (namespace !== undefined) out.namespace = namespace;
  if (name !== undefined) out.name = name;
  const serviceAccount = runtimeConfig?.tortie?.serviceAccount ?? args?.tortie?.serviceAccount;
  if (serviceAccount !== undefined) {
    if (serviceAccount.length > 253 || !SERVICE_ACCOUNT.test(serviceAccount))
      invalid(
        `serviceAccount ${JSON.stringify(serviceAccount)} is not a service account name (DNS labels of lower-case letters, digits and "-", joined by ".")`,
      );
    out.serviceAccount = serviceAccount;
  }
  return out;
}

/** The machine's hostname, lower-cased, as Calico names nodes. */
export function defaultNodeName(): string {
  return hostname().toLowerCase();
}

function invalid(problem: string): never {
  throw new CniError(CniCode.InvalidConfig, `network config: ${problem}`);
}
