/**
 * A real etcd for the IPAM tests: started once per test file, a fresh key prefix per
 * test, every client closed and the server stopped in afterAll (also after failures).
 */
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll } from 'vitest';
import { type EtcdCluster, startEtcd } from '../../src/lab/etcd.js';
import { newRunId } from '../helpers/netns.js';

export interface IpamEtcd {
  /** A new client (as a separate process would have); closed in afterAll. */
  client(): Etcd3;
  /** A key prefix no other test uses. */
  prefix(): string;
}

export function useEtcd(name: string): IpamEtcd {
  const run = newRunId();
  const clients: Etcd3[] = [];
  let cluster: EtcdCluster | undefined;
  let n = 0;
  beforeAll(async () => {
    cluster = await startEtcd(`${name}${run}`, 1);
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await cluster?.stop();
  });
  return {
    client() {
      if (!cluster) throw new Error('etcd is not up yet: call client() inside a test or hook');
      const c = new Etcd3({ hosts: cluster.endpoints });
      clients.push(c);
      return c;
    },
    prefix: () => `/tortie-test-${run}/t${++n}`,
  };
}
