import { describe, expect, it } from 'vitest';
import { newPass } from '../../src/agent/manager.js';
import { UplinkManager } from '../../src/agent/managers/uplink.js';
import {
  captureLogger,
  SoftNetns,
  SoftRoutesMap,
  softContext,
  softSnapshot,
} from '../helpers/softdataplane.js';

function setup() {
  const n = new SoftNetns();
  n.links.set('eth0', 2);
  n.addresses.set(1, ['127.0.0.1']);
  n.addresses.set(2, ['192.0.2.1']);
  const map = new SoftRoutesMap();
  const m = new UplinkManager(softContext(captureLogger().log), map, n);
  const snap = () => softSnapshot({ address: '192.0.2.1/24', links: new Map(n.links) });
  return { n, map, m, snap };
}

describe('uplink manager (in memory)', () => {
  it('attaches the uplink programs to the interface holding the node address, once', async () => {
    const { map, m, snap } = setup();
    const pass = newPass(snap());
    await m.reconcile(pass);
    expect(map.uplinks).toEqual([2]);
    expect(map.nodeConfig).toEqual({ underlayIp: '192.0.2.1', uplinkIfindex: 2 });
    expect(pass.uplink).toEqual({ ip: '192.0.2.1', ifindex: 2 });
    expect(m.status().uplink).toEqual({ ip: '192.0.2.1', ifindex: 2 });
    await m.reconcile(newPass(snap()));
    expect(map.uplinks).toEqual([2]);
  });

  it('again when the interface changed', async () => {
    const { n, map, m, snap } = setup();
    await m.reconcile(newPass(snap()));
    n.links.delete('eth0');
    n.links.set('eth1', 3);
    n.addresses.delete(2);
    n.addresses.set(3, ['192.0.2.1']);
    await m.reconcile(newPass(snap()));
    expect(map.uplinks).toEqual([2, 3]);
  });

  it("the node's addresses become host routes, written when they change", async () => {
    const { n, map, m, snap } = setup();
    await m.reconcile(newPass(snap()));
    expect(map.hostAddresses).toEqual(['127.0.0.1', '192.0.2.1']);
    n.addresses.set(4, ['198.51.100.7']);
    await m.reconcile(newPass(snap()));
    expect(map.hostAddresses).toEqual(['127.0.0.1', '192.0.2.1', '198.51.100.7']);
  });

  it('no interface holds the address: the error is shown instead of the uplink', async () => {
    const { n, m, snap } = setup();
    n.addresses.delete(2);
    await m.reconcile(newPass(snap()));
    expect(m.status().uplink).toEqual({ error: 'no interface holds the node address 192.0.2.1' });
  });
});
