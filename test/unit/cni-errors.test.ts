/**
 * Malformed CNI requests, each answered with the spec's error code and a message that
 * names the problem — and refused before the datastore is even opened. Requests that are
 * well formed but that the datastore refuses (no pool, pool exhausted, etcd down) are in
 * test/e2e/cni.test.ts, where a real etcd and real namespaces exist.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCni, type CniDeps } from '../../src/cni/run.js';

const dir = mkdtempSync(join(tmpdir(), 'tortie-cni-errors-'));
/** An existing path for CNI_NETNS: these requests must fail before it is used. */
const existingPath = join(dir, 'netns');
writeFileSync(existingPath, '');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const neverConnect: CniDeps = {
  openBackend: () =>
    Promise.reject(new Error('the datastore must not be opened for a malformed request')),
};

const goodEnv = {
  CNI_COMMAND: 'ADD',
  CNI_CONTAINERID: 'c0ffee',
  CNI_NETNS: existingPath,
  CNI_IFNAME: 'eth0',
  CNI_PATH: '/opt/cni/bin',
};
const goodConfig = {
  cniVersion: '1.0.0',
  name: 'tortie-net',
  type: 'tortie',
  etcd_endpoints: 'http://127.0.0.1:2379',
  nodename: 'node-1',
  ipam: { type: 'tortie-ipam' },
};

interface Case {
  name: string;
  env?: Record<string, string | undefined>;
  config?: Record<string, unknown>;
  stdin?: string;
  code: number;
  message: RegExp;
}

const without = (key: string) => ({ [key]: undefined });
const prevResult = {
  cniVersion: '1.0.0',
  interfaces: [{ name: 'eth0', sandbox: existingPath }],
  ips: [{ address: '10.0.0.1/32', interface: 0 }],
};

const cases: Case[] = [
  {
    name: 'CNI_COMMAND missing',
    env: without('CNI_COMMAND'),
    code: 4,
    message: /CNI_COMMAND is not set/,
  },
  {
    name: 'CNI_COMMAND unknown',
    env: { CNI_COMMAND: 'ATTACH' },
    code: 4,
    message: /CNI_COMMAND="ATTACH" is not a CNI command/,
  },
  {
    name: 'CNI_CONTAINERID missing',
    env: without('CNI_CONTAINERID'),
    code: 4,
    message: /CNI_CONTAINERID is not set/,
  },
  {
    name: 'CNI_CONTAINERID malformed',
    env: { CNI_CONTAINERID: '-bad id' },
    code: 4,
    message: /CNI_CONTAINERID="-bad id" must start with a letter or digit/,
  },
  {
    name: 'CNI_NETNS missing on ADD',
    env: without('CNI_NETNS'),
    code: 4,
    message: /CNI_NETNS is not set/,
  },
  {
    name: 'CNI_NETNS relative',
    env: { CNI_NETNS: 'run/netns/x' },
    code: 4,
    message: /CNI_NETNS="run\/netns\/x" is not an absolute path/,
  },
  {
    name: 'CNI_NETNS does not exist',
    env: { CNI_NETNS: join(dir, 'gone') },
    code: 4,
    message: /CNI_NETNS=.*gone does not exist/,
  },
  {
    name: 'CNI_IFNAME missing',
    env: without('CNI_IFNAME'),
    code: 4,
    message: /CNI_IFNAME is not set/,
  },
  {
    name: 'CNI_IFNAME too long',
    env: { CNI_IFNAME: 'eth0123456789012' },
    code: 4,
    message: /CNI_IFNAME="eth0123456789012" is longer than 15/,
  },
  {
    name: 'CNI_IFNAME with a slash',
    env: { CNI_IFNAME: 'eth/0' },
    code: 4,
    message: /CNI_IFNAME="eth\/0" may not contain '\/'/,
  },
  {
    name: 'CNI_ARGS pair without =',
    env: { CNI_ARGS: 'K8S_POD_NAME' },
    code: 4,
    message: /CNI_ARGS: "K8S_POD_NAME" is not a KEY=VALUE pair/,
  },
  {
    name: 'CNI_ARGS unknown key',
    env: { CNI_ARGS: 'K8S_POD_NAME=a;COLOR=red' },
    code: 4,
    message: /CNI_ARGS: unknown key COLOR/,
  },
  {
    name: 'CNI_ARGS bad IgnoreUnknown',
    env: { CNI_ARGS: 'IgnoreUnknown=maybe' },
    code: 4,
    message: /IgnoreUnknown="maybe" is not a boolean/,
  },
  { name: 'no config on stdin', stdin: '', code: 6, message: /no network configuration on stdin/ },
  { name: 'config is not JSON', stdin: '{"cniVersion": "1.0.0",', code: 6, message: /not JSON/ },
  {
    name: 'config is a JSON array',
    stdin: '[]',
    code: 6,
    message: /must be a JSON object, got an array/,
  },
  {
    name: 'cniVersion missing',
    config: { cniVersion: undefined },
    code: 7,
    message: /no cniVersion/,
  },
  {
    name: 'cniVersion unknown',
    config: { cniVersion: '0.2.0' },
    code: 1,
    message:
      /cniVersion "0.2.0" is not supported: tortie supports 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0/,
  },
  {
    name: 'CHECK in 0.3.1',
    env: { CNI_COMMAND: 'CHECK' },
    config: { cniVersion: '0.3.1' },
    code: 1,
    message: /CHECK needs cniVersion 0.4.0 or later/,
  },
  {
    name: 'STATUS in 1.0.0',
    env: { CNI_COMMAND: 'STATUS' },
    code: 1,
    message: /STATUS needs cniVersion 1.1.0/,
  },
  {
    name: 'GC in 0.4.0',
    env: { CNI_COMMAND: 'GC' },
    config: { cniVersion: '0.4.0' },
    code: 1,
    message: /GC needs cniVersion 1.1.0/,
  },
  { name: 'name missing', config: { name: undefined }, code: 7, message: /name: is required/ },
  {
    name: 'name malformed',
    config: { name: '-net' },
    code: 7,
    message: /name: must start with a letter or digit/,
  },
  {
    name: 'wrong plugin type',
    config: { type: 'bridge' },
    code: 7,
    message: /type: must be "tortie"/,
  },
  {
    name: 'no etcd endpoints',
    config: { etcd_endpoints: undefined },
    code: 7,
    message: /etcd_endpoints is required/,
  },
  {
    name: 'etcd endpoint without scheme',
    config: { etcd_endpoints: '127.0.0.1:2379' },
    code: 7,
    message: /"127.0.0.1:2379" is not an http:\/\/ or https:\/\/ URL/,
  },
  {
    name: 'both endpoint spellings',
    config: { datastore: { endpoints: ['http://a:1'] } },
    code: 7,
    message: /either etcd_endpoints or datastore.endpoints, not both/,
  },
  {
    name: 'mtu out of range',
    config: { mtu: 20 },
    code: 7,
    message: /mtu: Number must be greater than or equal to 68/,
  },
  {
    name: 'another IPAM plugin',
    config: { ipam: { type: 'host-local' } },
    code: 2,
    message: /ipam.type="host-local" is not supported/,
  },
  {
    name: 'ipMasq asked for',
    config: { ipMasq: true },
    code: 2,
    message: /ipMasq=true is not supported/,
  },
  {
    name: 'ipam.pools not strings',
    config: { ipam: { type: 'tortie-ipam', pools: [1] } },
    code: 7,
    message: /ipam.pools.0: Expected string/,
  },
  {
    name: 'ipam.pools empty',
    config: { ipam: { type: 'tortie-ipam', pools: [] } },
    code: 7,
    message: /ipam.pools: is empty/,
  },
  {
    name: 'host_netns relative',
    config: { host_netns: 'netns/node' },
    code: 7,
    message: /host_netns: must be an absolute path/,
  },
  {
    name: 'host_netns does not exist',
    config: { host_netns: join(dir, 'no-node') },
    code: 7,
    message: /host_netns .*no-node does not exist/,
  },
  {
    name: 'nodename upper case',
    config: { nodename: 'Node_1' },
    code: 7,
    message: /nodename: must be a lower-case DNS name/,
  },
  {
    name: 'bad label key',
    config: { args: { tortie: { labels: { 'bad key': 'x' } } } },
    code: 7,
    message: /label key "bad key"/,
  },
  {
    name: 'bad label value',
    config: { runtimeConfig: { tortie: { labels: { app: 'x y' } } } },
    code: 7,
    message: /label app="x y"/,
  },
  {
    name: 'CHECK without prevResult',
    env: { CNI_COMMAND: 'CHECK' },
    code: 7,
    message: /CHECK needs prevResult/,
  },
  {
    name: 'CHECK with a malformed prevResult',
    env: { CNI_COMMAND: 'CHECK' },
    config: { prevResult: { ips: 'x' } },
    code: 7,
    message: /prevResult.ips: Expected array/,
  },
  {
    name: 'CHECK with two addresses in prevResult',
    env: { CNI_COMMAND: 'CHECK' },
    config: {
      prevResult: { ...prevResult, ips: [{ address: '10.0.0.1/32' }, { address: '10.0.0.2/32' }] },
    },
    code: 105,
    message: /2 IPv4 addresses/,
  },
  {
    name: 'GC without valid-attachments',
    env: { CNI_COMMAND: 'GC' },
    config: { cniVersion: '1.1.0' },
    code: 7,
    message: /GC needs cni.dev\/valid-attachments/,
  },
  {
    name: 'VERSION with bad JSON',
    env: { CNI_COMMAND: 'VERSION' },
    stdin: '{',
    code: 6,
    message: /VERSION input is not JSON/,
  },
];

function invocation(c: Case): { env: NodeJS.ProcessEnv; stdin: string } {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries({ ...goodEnv, ...c.env })) {
    if (value !== undefined) env[key] = value;
  }
  const config: Record<string, unknown> = { ...goodConfig };
  for (const [key, value] of Object.entries(c.config ?? {})) {
    if (value === undefined) delete config[key];
    else config[key] = value;
  }
  return { env, stdin: c.stdin ?? JSON.stringify(config) };
}

describe('malformed CNI requests', () => {
  it('the table has at least 20 cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(20);
  });

  it.each(cases)('$name → code $code', async (c) => {
    const outcome = await runCni(invocation(c), neverConnect);
    expect(outcome.exitCode).toBe(1);
    const error = JSON.parse(outcome.stdout) as Record<string, unknown>;
    expect(Object.keys(error).sort()).toEqual(['cniVersion', 'code', 'details', 'msg']);
    expect(error.code).toBe(c.code);
    expect(error.details).toMatch(c.message);
    expect(typeof error.msg).toBe('string');
  });

  it('answers an error in the version of the request when tortie speaks it', async () => {
    const outcome = await runCni(
      invocation({ name: '', config: { cniVersion: '0.3.1', type: 'x' }, code: 7, message: /./ }),
      neverConnect,
    );
    expect(JSON.parse(outcome.stdout)).toMatchObject({ cniVersion: '0.3.1', code: 7 });
  });
});

describe('VERSION', () => {
  it('lists every supported version, answering in the version asked about', async () => {
    const outcome = await runCni(
      { env: { CNI_COMMAND: 'VERSION' }, stdin: '{"cniVersion":"0.4.0"}' },
      neverConnect,
    );
    expect(outcome.exitCode).toBe(0);
    expect(JSON.parse(outcome.stdout)).toEqual({
      cniVersion: '0.4.0',
      supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'],
    });
  });

  it('answers in the latest version when given no config', async () => {
    const outcome = await runCni({ env: { CNI_COMMAND: 'VERSION' }, stdin: '' }, neverConnect);
    expect(JSON.parse(outcome.stdout)).toMatchObject({ cniVersion: '1.1.0' });
  });
});
