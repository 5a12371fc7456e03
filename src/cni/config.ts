/**
 * The network configuration a runtime writes to the plugin's stdin (type "tortie"),
 * validated at the edge: bad JSON is code 6, a missing or unknown cniVersion code 7 or 1,
 * anything else malformed code 7 naming the field. Unknown top-level fields pass through
 * (runtimes add their own), as the spec asks of plugins that chain.
 *
 *   {
 *     "cniVersion": "1.1.0", "name": "tortie", "type": "tortie",
 *     "etcd_endpoints": "http://127.0.0.1:2379",        // or "datastore": {"endpoints": [...], "prefix": "/tortie"}
 *     "etcd_ca_cert_file": "/etc/tortie/pki/etcd-ca.pem", // TLS (Calico's names): https:// endpoints only;
 *     "etcd_cert_file": "/etc/tortie/pki/cni.pem",       //   certificate and key together, files the
 *     "etcd_key_file": "/etc/tortie/pki/cni-key.pem",    //   plugin can read
 *     "nodename": "node-1",                             // default: this machine's hostname
 *     "ipam": {"type": "tortie-ipam", "pools": ["default-pool", "10.65.0.0/16"]},
 *     "mtu": 1450,
 *     "host_netns": "/run/netns/node-1",                // the node's namespace (labs); default: the plugin's own
 *     "dns": {"nameservers": ["10.96.0.10"]},
 *     "agent_wait_ms": 10000,                           // wait for the agent to program the pod; 0: don't
 *     "args": {"tortie": {"namespace": "web", "name": "frontend", "labels": {"app": "web"},
 *                         "serviceAccount": "frontend"},
 *              "cni": {"labels": [{"key": "app", "value": "web"}]}},
 *     "runtimeConfig": {"tortie": {...as args.tortie}}
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

export interface NetworkConfig {
  cniVersion: CniVersion;
  name: string;
  datastore: { endpoints: string[]; prefix?: string; tls?: EtcdTlsFiles };
  nodename: string;
  /** ipam.pools: IPPool names or CIDRs the pod may take an address from, in order. */
  pools?: string[];
  mtu?: number;
  /** The node's network namespace path; undefined: the plugin's own namespace. */
  hostNetns?: string;
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
    etcd_endpoints: z.string().optional(),
    etcd_ca_cert_file: absoluteFile.optional(),
    etcd_cert_file: absoluteFile.optional(),
    etcd_key_file: absoluteFile.optional(),
    datastore: z
      .object({
        endpoints: z.union([z.array(endpointUrl).min(1), z.string()]),
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
      })
      .passthrough()
      .optional(),
    mtu: z.number().int().min(68).max(65535).optional(),
    host_netns: absolutePath.optional(),
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
  if (ipamType !== IPAM_TYPE) {
    throw new CniError(
      CniCode.UnsupportedField,
      `network config: ipam.type=${JSON.stringify(ipamType)} is not supported: tortie allocates from its etcd pools with "${IPAM_TYPE}" (built in)`,
    );
  }
  const config: NetworkConfig = {
    cniVersion,
    name: c.name,
    datastore: datastoreOf(c.etcd_endpoints, c.datastore, {
      ca: c.etcd_ca_cert_file,
      cert: c.etcd_cert_file,
      key: c.etcd_key_file,
    }),
    nodename: c.nodename ?? defaultNodeName(),
    dns: dnsOf(c.dns),
    agentWaitMs: c.agent_wait_ms ?? DEFAULT_AGENT_WAIT_MS,
    identity: identityOf(c.args, c.runtimeConfig),
  };
  if (c.ipam?.pools !== undefined) config.pools = c.ipam.pools;
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

function datastoreOf(
  etcdEndpoints: string | undefined,
  datastore: { endpoints: string[] | string; prefix?: string | undefined } | undefined,
  tlsFiles: { ca: string | undefined; cert: string | undefined; key: string | undefined },
): NetworkConfig['datastore'] {
  if (etcdEndpoints !== undefined && datastore !== undefined) {
    invalid('give either etcd_endpoints or datastore.endpoints, not both');
  }
  const raw = etcdEndpoints ?? datastore?.endpoints;
  if (raw === undefined) {
    invalid('etcd_endpoints is required (e.g. "http://127.0.0.1:2379"), or datastore.endpoints');
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
