/**
 * startEtcd and a port taken between freePort() and etcd's bind: a run of the whole suite
 * failed once with etcd's "bind: address already in use" (an ephemeral source port of some
 * outgoing connection, most likely, is in the same range). Members start again on fresh
 * ports instead. Real etcd; the taken port is one this test listens on.
 */
import { createServer, type Server, type Socket } from 'node:net';

import { afterAll, describe, expect, it } from 'vitest';

import { freePort, startEtcd, type EtcdCluster } from '../../src/lab/etcd.js';
import { newRunId } from '../helpers/netns.js';

const run = newRunId();
let holder: Server | undefined;
const held: Socket[] = [];
let cluster: EtcdCluster | undefined;

afterAll(async () => {
  await cluster?.stop();
  // The first attempt's health checks connected to the held port: end them, or close()
  // waits for them forever.
  for (const s of held) s.destroy();
  await new Promise<void>((r) => (holder ? holder.close(() => r()) : r()));
});

function listenAnywhere(): Promise<{ server: Server; port: number }> {
  return new Promise((resolve, reject) => {
    const server = createServer((socket) => held.push(socket));
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const a = server.address();
      resolve({ server, port: typeof a === 'object' && a ? a.port : 0 });
    });
  });
}

describe('startEtcd', () => {
  it('starts again on fresh ports when a member finds its port taken', async () => {
    const taken = await listenAnywhere();
    holder = taken.server;
    const handedOut: number[] = [];
    // The first port handed out is the held one: the first attempt's member cannot bind it.
    const port = async (): Promise<number> => {
      const p = handedOut.length === 0 ? taken.port : await freePort();
      handedOut.push(p);
      return p;
    };
    cluster = await startEtcd(`es${run}`, 1, { port });
    expect(handedOut[0]).toBe(taken.port);
    // Two ports per attempt (client, peer): at least a second attempt happened.
    expect(handedOut.length).toBeGreaterThanOrEqual(4);
    expect(cluster.endpoints).toHaveLength(1);
    expect(cluster.endpoints[0]).not.toContain(`:${taken.port}`);
  });
});
