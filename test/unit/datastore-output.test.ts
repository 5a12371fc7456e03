/** `tortie get` output: aligned tables per kind, and documents fit to apply again. */
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { age, formatResources, renderTable } from '../../src/cli/output.js';
import type { StoredResource } from '../../src/datastore/index.js';

const meta = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  uid: 'u',
  creationTimestamp: '2024-01-01T00:00:00Z',
  resourceVersion: '7',
  ...extra,
});
const pool = (name: string, cidr: string): StoredResource => ({
  apiVersion: 'tortie.io/v1',
  kind: 'IPPool',
  metadata: meta(name),
  spec: {
    cidr,
    blockSize: 26,
    ipipMode: 'Never',
    vxlanMode: 'Always',
    natOutgoing: true,
    disabled: false,
    nodeSelector: 'all()',
  },
});

describe('tables', () => {
  it('pads every column but the last to its widest cell, three spaces apart', () => {
    expect(
      renderTable(
        ['A', 'LONGER'],
        [
          ['xxxx', 'y'],
          ['z', ''],
        ],
      ),
    ).toBe('A      LONGER\nxxxx   y\nz\n');
  });

  it('IPPools: name, CIDR, selector; wide adds block size, NAT and encapsulation', () => {
    const items = [pool('default-ipv4-ippool', '192.168.0.0/16'), pool('b', '10.0.0.0/8')];
    expect(formatResources('IPPool', items, { format: 'table' })).toBe(
      'NAME                  CIDR             SELECTOR\n' +
        'default-ipv4-ippool   192.168.0.0/16   all()\n' +
        'b                     10.0.0.0/8       all()\n',
    );
    expect(formatResources('IPPool', items, { format: 'wide' }).split('\n')[0]).toBe(
      'NAME                  CIDR             BLOCKSIZE   NAT    IPIPMODE   VXLANMODE   DISABLED   SELECTOR',
    );
  });

  it('namespaced kinds get a NAMESPACE column across namespaces', () => {
    const wep: StoredResource = {
      apiVersion: 'tortie.io/v1',
      kind: 'WorkloadEndpoint',
      metadata: meta('n1-cni-abc-eth0', { namespace: 'prod' }),
      spec: {
        node: 'n1',
        workload: 'abc',
        interfaceName: 'tort1',
        ipNetworks: ['10.0.0.1/32', '10.0.0.2/32'],
      },
    };
    expect(
      formatResources('WorkloadEndpoint', [wep], { format: 'table', allNamespaces: true }),
    ).toBe(
      'NAMESPACE   WORKLOAD   NODE   NETWORKS                  INTERFACE\n' +
        'prod        abc        n1     10.0.0.1/32,10.0.0.2/32   tort1\n',
    );
  });

  it('ages read like kubectl', () => {
    const now = Date.parse('2024-01-10T00:00:00Z');
    expect(age('2024-01-09T23:59:30Z', now)).toBe('30s');
    expect(age('2024-01-09T23:30:00Z', now)).toBe('30m');
    expect(age('2024-01-09T12:00:00Z', now)).toBe('12h');
    expect(age('2024-01-01T00:00:00Z', now)).toBe('9d');
    expect(age(undefined, now)).toBe('');
  });
});

describe('documents', () => {
  it('one named object prints as itself; several as a <Kind>List with the list revision', () => {
    expect(
      parseYaml(
        formatResources('IPPool', [pool('a', '10.0.0.0/16')], { format: 'yaml', single: true }),
      ),
    ).toEqual(pool('a', '10.0.0.0/16'));
    const list = JSON.parse(
      formatResources('IPPool', [pool('a', '10.0.0.0/16')], { format: 'json', revision: '9' }),
    );
    expect(list).toEqual({
      apiVersion: 'projectcalico.org/v3',
      kind: 'IPPoolList',
      metadata: { resourceVersion: '9' },
      items: [pool('a', '10.0.0.0/16')],
    });
  });

  it('Kubernetes kinds list under their own apiVersion', () => {
    const ns: StoredResource = {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: meta('prod'),
      spec: {},
    };
    expect(JSON.parse(formatResources('Namespace', [ns], { format: 'json' }))).toMatchObject({
      apiVersion: 'v1',
      kind: 'NamespaceList',
    });
  });
});
