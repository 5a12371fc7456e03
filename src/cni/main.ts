#!/usr/bin/env node
/**
 * The `tortie` CNI plugin executable (installed as <cni bin dir>/tortie by
 * `tortie cni install`): environment and stdin in, result or error JSON on stdout, exit 0
 * or 1. Logs, if any, go to stderr. With TORTIE_CNI_TIMING=1 it prints how long the call
 * took on stderr, from process start. TORTIE_CNI_ETCD_CLIENT=grpc makes it use the
 * `etcd3` package's gRPC client instead of its JSON-gateway one (see run.ts).
 */
import { performance } from 'node:perf_hooks';
import { runCni } from './run.js';
import { formatMarks, mark } from './trace.js';

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) return '';
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

mark('started');
const outcome = await runCni({ env: process.env, stdin: await readStdin() });
process.stdout.write(outcome.stdout);
if (process.env.TORTIE_CNI_TIMING === '1') {
  process.stderr.write(
    `tortie-cni: ${outcome.command ?? '?'} exit ${outcome.exitCode} after ${performance.now().toFixed(1)} ms (${formatMarks()})\n`,
  );
}
// Writes to pipes and files are synchronous on Linux, so nothing is lost by exiting now,
// and exiting now does not wait for the gRPC client's timers to wind down.
process.exit(outcome.exitCode);
