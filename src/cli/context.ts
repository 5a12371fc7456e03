/**
 * How a `tortie` command finds the datastore: global options, environment, config file,
 * in that order of precedence, setting by setting.
 *
 *   --datastore        DATASTORE_TYPE          datastoreType   (etcd | kubernetes; default etcd)
 *   --kubeconfig       KUBECONFIG              kubeconfig      (kubernetes; default: in-cluster)
 *   --etcd-endpoints   TORTIE_ETCD_ENDPOINTS   etcdEndpoints   (comma-separated URLs)
 *   --etcd-prefix      TORTIE_ETCD_PREFIX      etcdPrefix
 *   --etcd-ca-cert     TORTIE_ETCD_CA_CERT     etcdCACert      (file)
 *   --etcd-cert        TORTIE_ETCD_CERT        etcdCert        (file)
 *   --etcd-key         TORTIE_ETCD_KEY         etcdKey         (file)
 *
 * The file is /etc/tortie/tortie.yaml unless --config (or, without it, the environment
 * variable TORTIE_CONFIG) names another, which must then exist.
 */
import { readFile } from 'node:fs/promises';
import { Command, Option } from 'commander';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { connectDatastore, type AgentStore, type DatastoreSettings } from '../agent/datastore.js';
import { DATASTORE_TYPES, kubeconfigPath, type DatastoreType } from '../agent/config.js';
import { isDatastoreError, type ConnectOptions } from '../datastore/index.js';
import { UsageError } from './usage.js';

export const DEFAULT_CONFIG_FILE = '/etc/tortie/tortie.yaml';
/** Names the config file when --config is not given (e.g. a lab's, from `tortie lab up`). */
export const CONFIG_ENV = 'TORTIE_CONFIG';
export const DEFAULT_ENDPOINTS = ['http://127.0.0.1:2379'];

export interface GlobalOptions {
  etcdEndpoints?: string;
  etcdPrefix?: string;
  etcdCaCert?: string;
  etcdCert?: string;
  etcdKey?: string;
  datastore?: string;
  kubeconfig?: string;
  config?: string;
}

/** Adds the datastore options to the root command (subcommands see them via optsWithGlobals). */
export function addGlobalOptions(program: Command): Command {
  return program
    .addOption(
      new Option(
        '--etcd-endpoints <urls>',
        `etcd endpoints, comma-separated (default ${DEFAULT_ENDPOINTS[0]})`,
      ).env('TORTIE_ETCD_ENDPOINTS'),
    )
    .addOption(
      new Option(
        '--etcd-prefix <prefix>',
        'key prefix of the data in etcd (default /calico, as Calico)',
      ).env('TORTIE_ETCD_PREFIX'),
    )
    .addOption(
      new Option('--etcd-ca-cert <file>', 'CA certificate to verify etcd (TLS)').env(
        'TORTIE_ETCD_CA_CERT',
      ),
    )
    .addOption(
      new Option('--etcd-cert <file>', 'client certificate for etcd (TLS)').env('TORTIE_ETCD_CERT'),
    )
    .addOption(new Option('--etcd-key <file>', 'client key for etcd (TLS)').env('TORTIE_ETCD_KEY'))
    .addOption(
      new Option(
        '--datastore <type>',
        "etcd or kubernetes (the Kubernetes API as Calico's kubernetes datastore; default etcd)",
      ).env('DATASTORE_TYPE'),
    )
    .addOption(
      new Option(
        '--kubeconfig <file>',
        "the API server's kubeconfig (--datastore kubernetes; default: the in-cluster service account)",
      ).env('KUBECONFIG'),
    )
    .option(
      '--config <file>',
      `config file (env ${CONFIG_ENV}; default ${DEFAULT_CONFIG_FILE}, read if present)`,
    );
}

const configFile = z
  .object({
    etcdEndpoints: z.union([z.string(), z.array(z.string())]).optional(),
    etcdPrefix: z.string().optional(),
    etcdCACert: z.string().optional(),
    etcdCert: z.string().optional(),
    etcdKey: z.string().optional(),
    datastoreType: z.string().optional(),
    kubeconfig: z.string().optional(),
  })
  .strict();

type ConfigFile = z.infer<typeof configFile>;

async function loadConfigFile(path: string, explicit: boolean): Promise<ConfigFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (!explicit && code === 'ENOENT') return {};
    throw new UsageError(`cannot read the config file ${path}: ${code ?? (e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text) ?? {};
  } catch (e) {
    throw new UsageError(`${path} is not valid YAML: ${(e as Error).message}`);
  }
  const parsed = configFile.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const where =
      issue.code === 'unrecognized_keys'
        ? `${issue.keys[0]}: unknown setting (known: ${Object.keys(configFile.shape).join(', ')})`
        : `${issue.path.join('.') || 'file'}: ${issue.message}`;
    throw new UsageError(`${path}: ${where}`);
  }
  return parsed.data;
}

function splitList(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/**
 * The connection settings from parsed options (commander has already put environment
 * variables in them, below the flags) and the config file.
 */
export async function resolveConnection(opts: GlobalOptions): Promise<ConnectOptions> {
  const named = opts.config ?? (process.env[CONFIG_ENV] || undefined);
  const file = await loadConfigFile(named ?? DEFAULT_CONFIG_FILE, named !== undefined);
  const fileEndpoints =
    file.etcdEndpoints === undefined
      ? undefined
      : typeof file.etcdEndpoints === 'string'
        ? splitList(file.etcdEndpoints)
        : file.etcdEndpoints;
  const endpoints =
    opts.etcdEndpoints !== undefined
      ? splitList(opts.etcdEndpoints)
      : (fileEndpoints ?? DEFAULT_ENDPOINTS);
  if (endpoints.length === 0)
    throw new UsageError(
      '--etcd-endpoints is empty: give at least one URL such as http://127.0.0.1:2379',
    );
  const ca = opts.etcdCaCert ?? file.etcdCACert;
  const cert = opts.etcdCert ?? file.etcdCert;
  const key = opts.etcdKey ?? file.etcdKey;
  if ((cert === undefined) !== (key === undefined)) {
    throw new UsageError('--etcd-cert and --etcd-key go together: give both or neither');
  }
  const prefix = opts.etcdPrefix ?? file.etcdPrefix;
  if (prefix !== undefined && !prefix.startsWith('/')) {
    throw new UsageError(`--etcd-prefix ${JSON.stringify(prefix)} must start with "/"`);
  }
  const tls = ca !== undefined || cert !== undefined;
  return {
    endpoints,
    ...(prefix === undefined ? {} : { prefix }),
    ...(tls
      ? { tls: { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) } }
      : {}),
  };
}

/**
 * The datastore's settings: its type and kubeconfig (flags, then DATASTORE_TYPE and
 * KUBECONFIG, then the config file), and etcd's connection (whose prefix is the key
 * layout's on both).
 */
export async function resolveDatastore(opts: GlobalOptions): Promise<DatastoreSettings> {
  const named = opts.config ?? (process.env[CONFIG_ENV] || undefined);
  const file = await loadConfigFile(named ?? DEFAULT_CONFIG_FILE, named !== undefined);
  const etcd = await resolveConnection(opts);
  const typeText = (opts.datastore ?? file.datastoreType ?? 'etcd').toLowerCase();
  if (!(DATASTORE_TYPES as readonly string[]).includes(typeText))
    throw new UsageError(
      `--datastore ${JSON.stringify(typeText)}: use ${DATASTORE_TYPES.join(' or ')}`,
    );
  const datastoreType = typeText as DatastoreType;
  const kubeconfig = kubeconfigPath(opts.kubeconfig ?? file.kubeconfig);
  return {
    datastoreType,
    etcd,
    kubeconfig: datastoreType === 'kubernetes' ? kubeconfig : undefined,
  };
}

/** A connected store for these options; the caller closes it. */
export async function datastoreFrom(opts: GlobalOptions, timeoutMs?: number): Promise<AgentStore> {
  const settings = await resolveDatastore(opts);
  try {
    return await connectDatastore(settings, timeoutMs);
  } catch (e) {
    // Bad endpoint URLs, unreadable certificate files: the settings are wrong.
    if (isDatastoreError(e, 'invalid')) throw new UsageError(e.message);
    throw e;
  }
}
