/**
 * `tortie cni …`: install the CNI plugin, list its error codes.
 */
import { InvalidArgumentError, type Command } from 'commander';

function mtu(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 68 || n > 65535) {
    throw new InvalidArgumentError(`"${value}" is not an MTU (an integer from 68 to 65535)`);
  }
  return n;
}

function waitMs(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 600_000) {
    throw new InvalidArgumentError(
      `"${value}" is not a wait in milliseconds (an integer from 0 to 600000; 0 = do not wait)`,
    );
  }
  return n;
}

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
    .option('--cni-version <version>', 'cniVersion of the conflist', '1.0.0')
    .option('--mtu <n>', 'pod interface MTU in the conflist', mtu)
    .option(
      '--agent-wait-ms <ms>',
      "agent_wait_ms in the conflist: how long ADD waits for the node's agent to program the pod (fails closed after it; 0 = no agent, do not wait)",
      waitMs,
    )
    .action(
      async (o: {
        binDir: string;
        confDir?: string;
        network: string;
        node?: string;
        etcdEndpoints?: string;
        cniVersion: string;
        mtu?: number;
        agentWaitMs?: number;
      }) => {
        const { installCni } = await import('../cni/install.js');
        const installed = await installCni({
          binDir: o.binDir,
          network: o.network,
          cniVersion: o.cniVersion,
          ...(o.confDir === undefined ? {} : { confDir: o.confDir }),
          ...(o.node === undefined ? {} : { node: o.node }),
          ...(o.etcdEndpoints === undefined ? {} : { etcdEndpoints: o.etcdEndpoints }),
          ...(o.mtu === undefined ? {} : { mtu: o.mtu }),
          ...(o.agentWaitMs === undefined ? {} : { agentWaitMs: o.agentWaitMs }),
        });
        console.log(`installed ${installed.shim}`);
        if (installed.conflist) console.log(`wrote ${installed.conflist}`);
      },
    );

  cni
    .command('codes')
    .description("the plugin's error codes (spec codes 1-99, tortie's own from 100)")
    .action(async () => {
      const { TORTIE_ERROR_CODES } = await import('../cni/errors.js');
      for (const { code, meaning } of TORTIE_ERROR_CODES)
        console.log(`${String(code).padEnd(5)}${meaning}`);
    });
}
