/**
 * The update benchmark's probe, run inside the client pod's namespace:
 *   node probe.js <host> <port> <periodMs>
 * Prints "ready", then on every line "go" on stdin starts a round: a new TCP connect to
 * host:port every periodMs (each abandoned after 1 s) until one succeeds; prints
 * {"startNs": <process.hrtime of the successful attempt's start>, "attempts": n} and
 * waits for the next "go". hrtime is CLOCK_MONOTONIC, the clock the parent reads too.
 */
import { connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';

const [host, portText, periodText] = process.argv.slice(2);
const port = Number(portText);
const period = Number(periodText ?? 1);

function round(): void {
  let done = false;
  let attempts = 0;
  const open = new Set<Socket>();
  const attempt = (): void => {
    if (done) return;
    attempts++;
    const start = process.hrtime.bigint();
    const s = connect({ host: host!, port });
    open.add(s);
    const timer = setTimeout(() => s.destroy(), 1000);
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      open.delete(s);
    });
    s.on('connect', () => {
      s.destroy();
      if (done) return;
      done = true;
      clearInterval(tick);
      for (const o of open) o.destroy();
      process.stdout.write(JSON.stringify({ startNs: start.toString(), attempts }) + '\n');
    });
  };
  const tick = setInterval(attempt, period);
  attempt();
}

createInterface({ input: process.stdin }).on('line', (l) => {
  if (l.trim() === 'go') round();
});
process.stdin.on('end', () => process.exit(0));
process.stdout.write('ready\n');
