/**
 * `tortie lab cluster …`: the multi-node lab (src/lab/cluster/).
 *
 *   tortie lab cluster up --id demo --nodes 2 --encap ipip [--pods 2]
 *       builds the lab (underlay, etcd, one agent per node in this process), optionally
 *       starts --pods pods per node (namespace "lab", labels app=<node>), prints the
 *       reachability matrix, then keeps running until SIGINT / SIGTERM and removes it all.
 *   tortie lab cluster down --id demo
 *       removes whatever a lab with that id left behind (after a crash), by name.
 *
 * Not registered yet: the lead adds `registerClusterCommands(lab)` in main.ts / lab.ts.
 */
import { Command, InvalidArgumentError } from 'commander';

function clusterId(value: string): string {
  if (!/^[a-z0-9]{1,8}$/.test(value))
    throw new InvalidArgumentError(`"${value}": use 1-8 lower-case letters or digits`);
  return value;
}

function count(max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0 || n > max)
      throw new InvalidArgumentError(`"${value}": give a whole number, 0-${max}`);
    return n;
  };
}

function encap(value: string): 'ipip' | 'none' {
  if (value !== 'ipip' && value !== 'none')
    throw new InvalidArgumentError(`"${value}": ipip or none`);
  return value;
}

export function registerClusterCommands(lab: Command): void {
  const cluster = lab.command('cluster').description('a multi-node lab on this machine (root)');

  cluster
    .command('up')
    .description('build a lab, print its reachability, run until SIGINT/SIGTERM, then remove it')
    .requiredOption(
      '--id <id>',
      'lab id: names every namespace, pin root and etcd member',
      clusterId,
    )
    .option('--nodes <n>', 'node count', count(50), 2)
    .option('--encap <mode>', 'ipip or none (ipipMode Always / Never)', encap, 'ipip')
    .option('--pods <n>', 'pods per node', count(20), 0)
    .action(async (o: { id: string; nodes: number; encap: 'ipip' | 'none'; pods: number }) => {
      const { ClusterLab } = await import('../lab/cluster/cluster-lab.js');
      const l = await ClusterLab.up({ id: o.id, nodes: o.nodes, encap: o.encap });
      let stopping = false;
      const stop = async () => {
        if (stopping) return;
        stopping = true;
        await l.down();
        process.exit(0);
      };
      process.once('SIGINT', () => void stop());
      process.once('SIGTERM', () => void stop());
      try {
        for (const [i, n] of l.nodes.entries()) {
          for (let p = 0; p < o.pods; p++) {
            const pod = await l.addPod({
              namespace: 'lab',
              name: `n${i}-p${p}`,
              labels: { app: n.name },
              node: i,
            });
            console.log(`pod ${pod.key} on ${pod.node}: ${pod.ip}`);
          }
        }
        if (o.pods > 0) {
          await l.waitForDataplane();
          for (const [pair, ok] of Object.entries(await l.matrix()))
            console.log(`${ok ? 'ok  ' : 'FAIL'} ${pair}`);
        }
        console.log(
          `lab ${o.id} is up (${l.description}); etcd ${l.etcd!.endpoints.join(',')} prefix /tortie-${o.id}; Ctrl-C removes it`,
        );
      } catch (e) {
        await l.down().catch(() => undefined);
        throw e;
      }
    });

  cluster
    .command('down')
    .description(
      'remove everything a lab with this id left behind (namespaces, pins, etcd, temp dirs)',
    )
    .requiredOption('--id <id>', 'lab id', clusterId)
    .action(async (o: { id: string }) => {
      const { destroyClusterLab } = await import('../lab/cluster/cluster-lab.js');
      await destroyClusterLab(o.id);
    });
}
