/**
 * Installing the plugin where a runtime finds it: `<bin dir>/tortie`, a copy of the
 * compiled plugin (cni/plugin/tortie.c, built by `npm run build`) that hands each call to
 * the node's agent, and optionally a network config list `<conf dir>/<NN>-<network>.conflist`.
 * Files are written to a temporary name and renamed, so a runtime never runs half a file.
 */
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, rename, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { packagePath } from '../util/package-root.js';

export interface InstallOptions {
  binDir: string;
  /** When given, a conflist for the network is written there too. */
  confDir?: string;
  /** Network name (default "tortie"). */
  network?: string;
  /** nodename in the conflist (default: the plugin's hostname at run time). */
  node?: string;
  /** etcd endpoints for the conflist (comma-separated). */
  etcdEndpoints?: string;
  /**
   * `kubernetes`: the conflist names the Kubernetes datastore as Calico's does
   * (`datastore_type`, `kubernetes.kubeconfig`, `policy: {type: k8s}`); default etcd.
   */
  datastoreType?: 'etcdv3' | 'kubernetes';
  /** kubernetes.kubeconfig in the conflist (default: the in-cluster service account). */
  kubeconfig?: string;
  /** The store's key prefix (`datastore.prefix`; default: the plugin's). */
  etcdPrefix?: string;
  /** etcd TLS files for the conflist (`etcd_ca_cert_file`, `etcd_cert_file`, `etcd_key_file`). */
  etcdCaCertFile?: string;
  etcdCertFile?: string;
  etcdKeyFile?: string;
  /** cniVersion of the conflist (default 1.0.0, which podman 4 and containerd 1.6+ speak). */
  cniVersion?: string;
  mtu?: number;
  /** agent_wait_ms in the conflist (default: the plugin's 10000; 0 = do not wait). */
  agentWaitMs?: number;
  /** The compiled plugin to copy; default <package>/cni/plugin/build/tortie. */
  pluginPath?: string;
  /** agent_socket in the conflist (default: the plugin's, /var/run/tortie/cni.sock). */
  agentSocket?: string;
}

export interface Installed {
  /** The installed plugin executable. */
  plugin: string;
  conflist?: string;
}

export const PLUGIN_BINARY = 'tortie';

export async function installCni(opts: InstallOptions): Promise<Installed> {
  const built = opts.pluginPath ?? builtPluginPath();
  if (!existsSync(built)) {
    throw new Error(`${built} does not exist: build tortie first (npm run build)`);
  }
  // A conflist the plugin would refuse stops the install before anything is written.
  const network = opts.network ?? 'tortie';
  let content: Record<string, unknown> | undefined;
  if (opts.confDir !== undefined) {
    if (!opts.etcdEndpoints) {
      throw new Error('a conflist needs the etcd endpoints: give --etcd-endpoints');
    }
    content = conflistFor({ ...opts, network });
    await checkWithPlugin(content);
  }
  await mkdir(opts.binDir, { recursive: true });
  const plugin = join(opts.binDir, PLUGIN_BINARY);
  const temporary = `${plugin}.tmp-${process.pid}`;
  await copyFile(built, temporary);
  await chmod(temporary, 0o755);
  await rename(temporary, plugin);
  const installed: Installed = { plugin };
  if (opts.confDir !== undefined && content !== undefined) {
    await mkdir(opts.confDir, { recursive: true });
    const conflist = join(opts.confDir, `10-${network}.conflist`);
    await writeAtomically(conflist, JSON.stringify(content, null, 2) + '\n', 0o644);
    installed.conflist = conflist;
  }
  return installed;
}

/** The compiled plugin as the build leaves it. */
export function builtPluginPath(): string {
  return packagePath('cni', 'plugin', 'build', PLUGIN_BINARY);
}

export function conflistFor(opts: InstallOptions & { network: string }): Record<string, unknown> {
  const kubernetes = opts.datastoreType === 'kubernetes';
  const plugin: Record<string, unknown> = {
    type: PLUGIN_BINARY,
    ...(kubernetes
      ? {
          datastore_type: 'kubernetes',
          ...(opts.kubeconfig === undefined
            ? {}
            : { kubernetes: { kubeconfig: absolute(opts.kubeconfig) } }),
          policy: { type: 'k8s' },
          ...(opts.etcdPrefix === undefined ? {} : { datastore: { prefix: opts.etcdPrefix } }),
        }
      : // A prefix needs the `datastore` form; endpoints alone keep Calico's field name.
        opts.etcdPrefix === undefined
        ? { etcd_endpoints: opts.etcdEndpoints }
        : {
            datastore: {
              endpoints: (opts.etcdEndpoints ?? '').split(',').filter((e) => e !== ''),
              prefix: opts.etcdPrefix,
            },
          }),
    ipam: { type: 'tortie-ipam' },
  };
  if (opts.etcdCaCertFile !== undefined) plugin.etcd_ca_cert_file = absolute(opts.etcdCaCertFile);
  if (opts.etcdCertFile !== undefined) plugin.etcd_cert_file = absolute(opts.etcdCertFile);
  if (opts.etcdKeyFile !== undefined) plugin.etcd_key_file = absolute(opts.etcdKeyFile);
  if (opts.node !== undefined) plugin.nodename = opts.node;
  if (opts.mtu !== undefined) plugin.mtu = opts.mtu;
  if (opts.agentWaitMs !== undefined) plugin.agent_wait_ms = opts.agentWaitMs;
  if (opts.agentSocket !== undefined) plugin.agent_socket = absolute(opts.agentSocket);
  return { cniVersion: opts.cniVersion ?? '1.0.0', name: opts.network, plugins: [plugin] };
}

/** The runtime runs the plugin from a directory of its own: paths in the conflist are absolute. */
function absolute(path: string): string {
  return resolve(path);
}

/**
 * The conflist goes through the plugin's own validation before it is written: a runtime
 * must never be handed a config every call of the plugin refuses (an http:// endpoint
 * with TLS files, a certificate without its key, a file that is not there).
 */
export async function checkWithPlugin(conflist: Record<string, unknown>): Promise<void> {
  const { parseNetworkConfig } = await import('./config.js');
  const [plugin] = conflist.plugins as Record<string, unknown>[];
  try {
    parseNetworkConfig({ cniVersion: conflist.cniVersion, name: conflist.name, ...plugin }, 'ADD');
  } catch (e) {
    throw new Error(`not writing the conflist: ${(e as Error).message}`);
  }
}

async function writeAtomically(path: string, content: string, mode: number): Promise<void> {
  const temporary = `${path}.tmp-${process.pid}`;
  await writeFile(temporary, content, { mode });
  await chmod(temporary, mode);
  await rename(temporary, path);
}
