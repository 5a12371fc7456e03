import { describe, expect, it } from 'vitest';
import type { StoredResource, WatchEvent } from '../../src/datastore/index.js';
import { newPass } from '../../src/agent/manager.js';
import {
  failsafeFor,
  HOST_ENDPOINT_ID_BASE,
  HostEndpointsManager,
} from '../../src/agent/managers/host-endpoints.js';
import { ClusterModel } from '../../src/agent/model.js';
import { storeSettings } from '../../src/agent/felix-config.js';
import { DEFAULT_FAILSAFE } from '../../src/policy/failsafe.js';
import { captureLogger, SoftNetns, softContext, softSnapshot } from '../helpers/softdataplane.js';

let rev = 10;
function put(
  kind: 'HostEndpoint' | 'FelixConfiguration',
  name: string,
  spec: object,
  labels = {},
): WatchEvent {
  const resource = {
    apiVersion: 'projectcalico.org/v3',
    kind,
    metadata: { name, labels, resourceVersion: String(++rev) },
    spec,
  } as unknown as StoredResource;
  return { type: 'put', kind, resource, revision: String(rev), synthetic: false };
}

function setup() {
  const n = new SoftNetns();
  n.links.set('lo', 1);
  n.links.set('eth0', 2);
  n.addresses.set(2, ['192.0.2.1']);
  const model = new ClusterModel();
  const m = new HostEndpointsManager(softContext(captureLogger().log), n);
  const pass = () =>
    newPass(softSnapshot({ model, address: '192.0.2.1/24', links: new Map(n.links) }));
  return { model, m, pass };
}

describe('host-endpoints manager (in memory)', () => {
  it("hands no host endpoint on while this node has none (another node's is ignored)", async () => {
    const { model, m, pass } = setup();
    model.apply(put('HostEndpoint', 'b-eth0', { node: 'node-b', interfaceName: '*' }));
    const p = pass();
    await m.reconcile(p);
    expect(p.hostEndpoints).toEqual([]);
    expect(m.status().hostEndpoint).toMatchObject({ failsafe: DEFAULT_FAILSAFE, problems: [] });
  });

  it('a wildcard host endpoint of this node judges the uplink: compiled under its ifindex with the failsafe ports', async () => {
    const { model, m, pass } = setup();
    model.apply(
      put('HostEndpoint', 'all', { node: 'node-a', interfaceName: '*' }, { role: 'node' }),
    );
    const p = pass();
    await m.reconcile(p);
    expect(p.hostEndpoints).toEqual([
      {
        endpoint: expect.objectContaining({
          key: 'hostendpoint:all',
          ip: '192.0.2.1',
          labels: { role: 'node' },
          kind: 'host',
        }),
        ifindex: 2,
        id: HOST_ENDPOINT_ID_BASE + 2,
        host: { failsafe: DEFAULT_FAILSAFE },
      },
    ]);
    expect(m.status().hostEndpoint).toMatchObject({
      name: 'all',
      interfaceName: 'eth0',
      ifindex: 2,
    });
  });

  it("a named one wins over the wildcard; one for another interface is not the uplink's", async () => {
    const { model, m, pass } = setup();
    model.apply(put('HostEndpoint', 'all', { node: 'node-a', interfaceName: '*' }));
    model.apply(put('HostEndpoint', 'named', { node: 'node-a', interfaceName: 'eth0' }));
    let p = pass();
    await m.reconcile(p);
    expect(p.hostEndpoints.map((h) => h.endpoint.name)).toEqual(['named']);
    const only = setup();
    only.model.apply(put('HostEndpoint', 'eth9', { node: 'node-a', interfaceName: 'eth9' }));
    p = only.pass();
    await only.m.reconcile(p);
    expect(p.hostEndpoints).toEqual([]);
  });

  it('failsafe ports: node.<name> over default, field by field; a bad list keeps the defaults and says why', () => {
    const model = new ClusterModel();
    model.apply(
      put('FelixConfiguration', 'default', {
        failsafeInboundHostPorts: [{ protocol: 'TCP', port: 22 }],
        failsafeOutboundHostPorts: [],
      }),
    );
    model.apply(
      put('FelixConfiguration', 'node.node-a', {
        failsafeInboundHostPorts: [{ protocol: 'UDP', port: 1 }],
      }),
    );
    expect(failsafeFor(model, 'node-a')).toEqual({
      failsafe: { inbound: [{ protocol: 17, port: 1 }], outbound: [] },
      problems: [],
    });
    expect(failsafeFor(model, 'node-b').failsafe.inbound).toEqual([{ protocol: 6, port: 22 }]);
    model.apply(
      put('FelixConfiguration', 'node.node-a', {
        failsafeInboundHostPorts: [{ protocol: 'TCP', port: 0 }],
      }),
    );
    const bad = failsafeFor(model, 'node-a');
    expect(bad.failsafe.inbound).toBe(DEFAULT_FAILSAFE.inbound);
    expect(bad.problems).toEqual([
      "failsafeInboundHostPorts[0]: port 0 is not in 1..65535 (Calico's defaults kept)",
    ]);
  });

  it('the failsafe fields are no longer listed as not implemented', () => {
    const s = storeSettings([
      { kind: 'FelixConfiguration', name: 'default', spec: { failsafeInboundHostPorts: [] } },
    ]);
    expect(s.notImplemented).toEqual([]);
  });
});
