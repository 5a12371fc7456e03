/**
 * One CNI invocation, from environment and stdin to stdout and exit status, without
 * touching the process: the agent's CNI server (./server.ts) runs it for each request the
 * compiled plugin hands over, tests call it directly. Each command and the store are
 * imported when first needed.
 */
import type { CniBackend } from './backend.js';
import type { NetworkConfig } from './config.js';
import type { EtcdClientKind } from './etcd-backend.js';
import { parseCniEnv, type AttachmentEnv } from './env.js';
import { CniCode, CniError, asCniError, errorResult } from './errors.js';
import {
  LATEST_VERSION,
  SUPPORTED_VERSIONS,
  isSupportedVersion,
  type CniVersion,
} from './versions.js';

export interface CniInvocation {
  env: NodeJS.ProcessEnv;
  stdin: string;
}

export interface CniOutcome {
  /** What goes to stdout: a result, an error result, or nothing. */
  stdout: string;
  exitCode: 0 | 1;
  /** Which command ran (undefined when CNI_COMMAND itself was bad). */
  command?: string;
}

export interface CniDeps {
  openBackend(config: NetworkConfig): Promise<CniBackend>;
}

/**
 * The real store (src/datastore and src/ipam), loaded when a command needs it: on etcd
 * over the JSON-gateway client, or the `etcd3` package's gRPC one with `grpc` (~260 ms
 * more CPU per call, to load it); with `datastore_type: "kubernetes"` over the Kubernetes
 * API (./kube-backend.ts).
 */
export function etcdDeps(client: EtcdClientKind = 'gateway'): CniDeps {
  return {
    async openBackend(config) {
      if (config.datastoreType === 'kubernetes') {
        const { openKubeBackend } = await import('./kube-backend.js');
        return openKubeBackend(config);
      }
      const { openEtcdBackend } = await import('./etcd-backend.js');
      return openEtcdBackend(config.datastore, client);
    },
  };
}

/** Where the datastore is, for the message when it cannot be opened. */
function datastoreWhere(config: NetworkConfig): string {
  if (config.datastoreType === 'kubernetes') {
    const kubeconfig = config.kubernetes?.kubeconfig;
    return `the Kubernetes datastore (${kubeconfig === undefined ? 'in-cluster service account' : `kubeconfig ${kubeconfig}`})`;
  }
  return `the datastore at ${config.datastore.endpoints.join(',')}`;
}

/** TORTIE_CNI_ETCD_CLIENT=grpc picks the `etcd3` package's client; anything else the gateway one. */
export function etcdClientKind(env: NodeJS.ProcessEnv): EtcdClientKind {
  return env.TORTIE_CNI_ETCD_CLIENT === 'grpc' ? 'grpc' : 'gateway';
}

export async function runCni(
  invocation: CniInvocation,
  deps: CniDeps = etcdDeps(etcdClientKind(invocation.env)),
): Promise<CniOutcome> {
  const errorVersion = sniffVersion(invocation.stdin);
  let backend: CniBackend | undefined;
  let command: string | undefined;
  try {
    const env = parseCniEnv(invocation.env);
    command = env.command;
    if (env.command === 'VERSION') return success(versionResult(invocation.stdin), command);

    const { decodeConfig, parseNetworkConfig } = await import('./config.js');
    const config = parseNetworkConfig(decodeConfig(invocation.stdin), env.command);
    const open = async (): Promise<CniBackend> => {
      try {
        backend ??= await deps.openBackend(config);
      } catch (err) {
        const { backendError } = await import('./failures.js');
        throw backendError(err, `open ${datastoreWhere(config)}`);
      }
      return backend;
    };
    switch (env.command) {
      case 'ADD': {
        const { cmdAdd } = await import('./commands/add.js');
        return success(await cmdAdd(env as AttachmentEnv, config, open), command);
      }
      case 'DEL': {
        const { cmdDel } = await import('./commands/del.js');
        await cmdDel(env as AttachmentEnv, config, open);
        return { stdout: '', exitCode: 0, command };
      }
      case 'CHECK': {
        const { cmdCheck } = await import('./commands/check.js');
        await cmdCheck(env as AttachmentEnv, config, open);
        return { stdout: '', exitCode: 0, command };
      }
      case 'STATUS': {
        const { cmdStatus } = await import('./commands/status.js');
        await cmdStatus(config, open);
        return { stdout: '', exitCode: 0, command };
      }
      case 'GC': {
        const { cmdGc } = await import('./commands/gc.js');
        await cmdGc(config, open);
        return { stdout: '', exitCode: 0, command };
      }
    }
    throw new CniError(CniCode.Internal, `no handler for CNI_COMMAND=${String(command)}`);
  } catch (err) {
    const error = asCniError(err);
    return {
      stdout: JSON.stringify(errorResult(error, errorVersion)) + '\n',
      exitCode: 1,
      ...(command === undefined ? {} : { command }),
    };
  } finally {
    await backend?.close().catch(() => undefined);
  }
}

function success(result: unknown, command: string): CniOutcome {
  return { stdout: JSON.stringify(result) + '\n', exitCode: 0, command };
}

/**
 * VERSION answers in the version the caller asked about (any we support), else the latest.
 * It needs no config; but if one is given it must at least be JSON.
 */
function versionResult(stdin: string): { cniVersion: string; supportedVersions: string[] } {
  let cniVersion: CniVersion = LATEST_VERSION;
  if (stdin.trim() !== '') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(stdin);
    } catch (err) {
      throw new CniError(
        CniCode.DecodeFailure,
        `VERSION input is not JSON: ${(err as Error).message}`,
      );
    }
    const asked = (parsed as { cniVersion?: unknown } | null)?.cniVersion;
    if (isSupportedVersion(asked)) cniVersion = asked;
  }
  return { cniVersion, supportedVersions: [...SUPPORTED_VERSIONS] };
}

/** The version to put in an error result: the request's if we speak it, else the latest. */
function sniffVersion(stdin: string): CniVersion {
  try {
    const version = (JSON.parse(stdin) as { cniVersion?: unknown } | null)?.cniVersion;
    return isSupportedVersion(version) ? version : LATEST_VERSION;
  } catch {
    return LATEST_VERSION;
  }
}
