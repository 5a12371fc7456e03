/**
 * The agent's operations endpoint: GET /healthz (live), /readyz (ready), /metrics
 * (Prometheus text), /status (JSON summary) and /rules (rule id → rule), on one port.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Probe {
  readonly ok: boolean;
  readonly detail: string;
}

export interface OpsHandlers {
  healthz(): Probe;
  readyz(): Probe;
  metrics(): string;
  status(): unknown;
  /** The rule table (`tortie monitor` names rule ids with it). */
  rules?(): unknown;
}

export interface OpsServer {
  /** http://host:port */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

export async function startOpsServer(
  host: string,
  port: number,
  h: OpsHandlers,
): Promise<OpsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    try {
      switch (path) {
        case '/healthz':
        case '/livez':
        case '/readyz': {
          const p = path === '/readyz' ? h.readyz() : h.healthz();
          res.writeHead(p.ok ? 200 : 503, { 'content-type': 'text/plain; charset=utf-8' });
          res.end(`${p.ok ? 'ok' : 'not ok'}: ${p.detail}\n`);
          return;
        }
        case '/metrics':
          res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
          res.end(h.metrics());
          return;
        case '/status':
        case '/rules': {
          const body = path === '/status' ? h.status() : h.rules?.();
          if (body === undefined) break;
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(
            JSON.stringify(body, (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v)),
          );
          return;
        }
      }
      res
        .writeHead(404, { 'content-type': 'text/plain' })
        .end('try /healthz, /readyz, /metrics, /status, /rules\n');
    } catch (e) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`${(e as Error).message}\n`);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shownHost}:${bound}`,
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
