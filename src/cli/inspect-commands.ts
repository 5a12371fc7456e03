/**
 * `tortie bpf counters` and `tortie monitor`: a running dataplane read from its pins
 * (the work is in inspect.ts, loaded only when one of them runs: it opens the native
 * binding).
 */
import type { Command } from 'commander';
import { datastoreFrom, type GlobalOptions } from './context.js';
import { UsageError } from './usage.js';
import { formatTable } from './table.js';

export function registerInspectCommands(program: Command): void {
  const bpf = program.command('bpf').description('inspect the pinned BPF maps');
  bpf
    .command('counters')
    .description('packets and bytes by endpoint, reason and direction')
    .option('--pin-root <dir>', 'bpffs root of the maps', '/sys/fs/bpf/tortie')
    .option('--json', 'print JSON', false)
    .action(async (o: { pinRoot: string; json: boolean }) => {
      const { readCounters } = await import('./inspect.js');
      const rows = readCounters(o.pinRoot);
      if (o.json) {
        console.log(
          JSON.stringify(
            rows.map((r) => ({ ...r, packets: Number(r.packets), bytes: Number(r.bytes) })),
          ),
        );
        return;
      }
      console.log(
        formatTable(
          ['endpoint', 'direction', 'reason', 'packets', 'bytes'],
          rows.map((r) => [String(r.epId), r.dir, r.reason, String(r.packets), String(r.bytes)]),
          { align: ['left', 'left', 'left', 'right', 'right'] },
        ),
      );
    });

  program
    .command('monitor')
    .description(
      'stream drop events live: reason, direction, endpoint, source and destination named as ns/pod (from the store), the deciding rule (from the agent)',
    )
    .option('--pin-root <dir>', 'bpffs root of the maps (default /sys/fs/bpf/tortie)')
    .option(
      '--node <name>',
      "the node whose drops to stream: its pin root from its agent's heartbeat",
    )
    .option('--json', 'one JSON object per event', false)
    .option('--agent-url <url>', "the node agent's ops server (default: found in its heartbeat)")
    .option('--no-store', 'do not connect to etcd: print addresses and rule ids only')
    .action(
      async (
        o: { pinRoot?: string; node?: string; json: boolean; agentUrl?: string; store: boolean },
        cmd: Command,
      ) => {
        const globals = cmd.optsWithGlobals<GlobalOptions>();
        let pinRoot = o.pinRoot ?? '/sys/fs/bpf/tortie';
        if (o.node !== undefined) {
          if (o.pinRoot !== undefined) throw new UsageError('give --node or --pin-root, not both');
          const { readNodeStatus } = await import('../agent/status.js');
          const ds = await datastoreFrom(globals, 3000);
          try {
            const hb = await readNodeStatus(ds, o.node);
            if (hb?.pinRoot === undefined)
              throw new UsageError(
                `node ${o.node}: no heartbeat with a pin root (is its agent running?); give --pin-root instead`,
              );
            pinRoot = hb.pinRoot;
          } finally {
            await ds.close();
          }
        }
        const { monitor } = await import('./inspect.js');
        await monitor({
          pinRoot,
          json: o.json,
          ...(o.agentUrl === undefined ? {} : { agentUrl: o.agentUrl }),
          ...(o.store ? { store: () => datastoreFrom(globals, 3000) } : {}),
        });
      },
    );
}
