/**
 * `tortie cni …`: install the CNI plugin, list its error codes.
 */
import type { Command } from 'commander';
import { mtu, waitMs } from './args.js';

export function registerCniCommands(program: Command): void {
  const cni = program
    .command('cni')
    .description('the CNI plugin: install it, list its error codes');

  cni
    .command('install')
    .description(
      'write <bin-dir>/tortie (a shim running the built plugin) and, with --conf-dir, a network config list',
    )
    .option('--bin-dir <dir>', 'where runtimes look for CNI plugins', '/opt/cni/bin')
    .option('--conf-dir <dir>', 'also write <conf-dir>/10-<network>.conflist')
    .option('--network <name>', 'network name in the conflist', 'tortie')
    .option(
      '--node <name>',
      'nodename in the conflist (default: the hostname when the plugin runs)',
    )
    .option('--etcd-endpoints <urls>', 'etcd endpoints for the conflist, comma-separated')
    .option(
      '--datastore <type>',
      'datastore_type in the conflist: etcdv3 (default) or kubernetes (then --kubeconfig, else the in-cluster service account)',
    )
    .option(
      '--kubeconfig <file>',
      'kubernetes.kubeconfig in the conflist (with --datastore kubernetes)',
    )
    .option(
      '--etcd-ca-cert <file>',
      "etcd_ca_cert_file in the conflist: the CA of etcd's server certificate (https:// endpoints)",
    )
    .option(
      '--etcd-cert <file>',
      "etcd_cert_file in the conflist: the plugin's etcd client certificate (with --etcd-key)",
    )
    .option('--etcd-key <file>', 'etcd_key_file in the conflist: the key of --etcd-cert')
    .option('--cni-version <version>', 'cniVersion of the conflist', '1.0.0')
    .option('--mtu <n>', 'pod interface MTU in the conflist', mtu)
    .option(
      '--agent-wait-ms <ms>',
      "agent_wait_ms in the conflist: how long ADD waits for the node's agent to program the pod (fails closed after it; 0 = no agent, do not wait)",
      waitMs,
    )
    .option(
      '--agent-socket <path>',
      "agent_socket in the conflist: where the node's agent serves the plugin (default /var/run/tortie/cni.sock, as `tortie node run --cni-socket`)",
    )
    .action(async (_: unknown, cmd: Command) => {
      // The etcd options share their names with tortie's global ones (same meaning), which
      // the root command parses wherever they stand: take them from either.
      const o = cmd.optsWithGlobals<{
        binDir: string;
        confDir?: string;
        network: string;
        node?: string;
        etcdEndpoints?: string;
        datastore?: string;
        kubeconfig?: string;
        etcdCaCert?: string;
        etcdCert?: string;
        etcdKey?: string;
        cniVersion: string;
        mtu?: number;
        agentWaitMs?: number;
        agentSocket?: string;
      }>();
      if (o.datastore !== undefined && o.datastore !== 'etcdv3' && o.datastore !== 'kubernetes')
        throw new Error(`--datastore ${o.datastore}: must be etcdv3 or kubernetes`);
      const { installCni } = await import('../cni/install.js');
      const installed = await installCni({
        binDir: o.binDir,
        network: o.network,
        cniVersion: o.cniVersion,
        ...(o.confDir === undefined ? {} : { confDir: o.confDir }),
        ...(o.node === undefined ? {} : { node: o.node }),
        ...(o.etcdEndpoints === undefined ? {} : { etcdEndpoints: o.etcdEndpoints }),
        ...(o.datastore === undefined ? {} : { datastoreType: o.datastore }),
        ...(o.kubeconfig === undefined ? {} : { kubeconfig: o.kubeconfig }),
        ...(o.etcdCaCert === undefined ? {} : { etcdCaCertFile: o.etcdCaCert }),
        ...(o.etcdCert === undefined ? {} : { etcdCertFile: o.etcdCert }),
        ...(o.etcdKey === undefined ? {} : { etcdKeyFile: o.etcdKey }),
        ...(o.mtu === undefined ? {} : { mtu: o.mtu }),
        ...(o.agentWaitMs === undefined ? {} : { agentWaitMs: o.agentWaitMs }),
        ...(o.agentSocket === undefined ? {} : { agentSocket: o.agentSocket }),
      });
      console.log(`installed ${installed.plugin}`);
      if (installed.conflist) console.log(`wrote ${installed.conflist}`);
    });

  cni
    .command('codes')
    .description("the plugin's error codes (spec codes 1-99, tortie's own from 100)")
    .action(async () => {
      const { TORTIE_ERROR_CODES } = await import('../cni/errors.js');
      for (const { code, meaning } of TORTIE_ERROR_CODES)
        console.log(`${String(code).padEnd(5)}${meaning}`);
    });
}
