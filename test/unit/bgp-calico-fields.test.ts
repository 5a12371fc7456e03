/**
 * The Calico BGP fields as BIRD configuration (issue 13): BGPFilter functions and the
 * peers that call them, secretKeyRef passwords (read from files), the BGPPeer session
 * options, BGPConfiguration communities / listenPort / bindMode / mesh password and
 * restart time / ignoredInterfaces, IPPool disableBGPExport. Every rendered text is also
 * parsed by BIRD itself (`bird -p`, package bird2).
 *
 * The BGPFilter and BGPConfiguration documents are Calico's own samples
 * (test/fixtures/calico-corpus/docs, each file names its source), read through the schema
 * as a user's `apply` would.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { readFileSync } from 'node:fs';
import { filterFunctionName } from '../../src/bgp/filters.js';
import {
  durationSeconds,
  renderBird,
  secretId,
  type BirdInputs,
  type SecretValue,
} from '../../src/bgp/render.js';
import { readSecret, readSecrets } from '../../src/bgp/secrets.js';
import { AgentConfigError, resolveAgentConfig } from '../../src/agent/config.js';
import type { BGPConfigurationSpec, BGPPeerSpec } from '../../src/datastore/index.js';
import type { BGPFilterSpec } from '../../src/datastore/schema/bgp.js';
import { validateObject } from '../../src/datastore/schema/index.js';
import { birdParses } from '../helpers/bird-config.js';

const DOCS = join(import.meta.dirname, '..', 'fixtures', 'calico-corpus', 'docs');

/** A Calico sample document, validated as `apply` would: its spec as stored. */
function calicoSpec<T>(file: string): T {
  const v = validateObject(parse(readFileSync(join(DOCS, file), 'utf8')));
  if (!v.ok) throw new Error(`${file}: ${JSON.stringify(v.detail)}`);
  return v.object.spec as T;
}

function validate(doc: Record<string, unknown>) {
  return validateObject({ apiVersion: 'projectcalico.org/v3', ...doc });
}

const base: BirdInputs = {
  self: 'n0',
  nodes: [
    { name: 'n0', address: '192.168.231.1/24' },
    { name: 'n1', address: '192.168.231.2/24' },
  ],
  peers: [],
  pools: [{ cidr: '10.231.0.0/16', ipipMode: 'Never', vxlanMode: 'Never' }],
  blocks: [{ cidr: '10.231.0.0/26', affinity: 'n0', allocations: [] }],
  uplink: 'ul',
};

const tor: { name: string; spec: BGPPeerSpec } = {
  name: 'tor',
  spec: { peerIP: '10.0.0.1', asNumber: 65001, filters: ['my-filter'] },
};

describe('BGPFilter', () => {
  const myFilter = calicoSpec<BGPFilterSpec>('bgpfilter-my-filter.yaml');

  it("renders Calico's sample filter as functions, rules in order", () => {
    const r = renderBird({
      ...base,
      peers: [tor],
      filters: [{ name: 'my-filter', spec: myFilter }],
    });
    expect(r.text).toContain(
      [
        "function 'tortie_my-filter_import'(bool same_as) {",
        '  if (net !~ 44.0.0.0/16) then { reject; }',
        '}',
      ].join('\n'),
    );
    expect(r.text).toContain(
      [
        "function 'tortie_my-filter_export'(bool same_as) {",
        '  if (net ~ [ 77.0.0.0/16{24,30} ]) then { accept; }',
        '  if ((defined(ifname) && ifname ~ "*.calico")) then { reject; }',
        '}',
      ].join('\n'),
    );
    expect(r.problems).toEqual([]);
    birdParses(r.text);
  });

  it("the peer's import and export call its filters in its order, then the defaults", () => {
    const r = renderBird({
      ...base,
      peers: [{ name: 'tor', spec: { ...tor.spec, filters: ['b', 'a', 'gone'] } }],
      filters: [
        { name: 'a', spec: { importV4: [{ action: 'Accept' }], exportV4: [{ action: 'Reject' }] } },
        { name: 'b', spec: { exportV4: [{ action: 'Accept', source: 'RemotePeers' }] } },
      ],
    });
    expect(r.text).toContain(
      "    import filter { 'tortie_a_import'(false); accept; };\n" +
        "    export filter { 'tortie_b_export'(false); 'tortie_a_export'(false); tortie_export_to_peers(); reject; };",
    );
    expect(r.text).toContain('if (source = RTS_BGP) then { accept; }');
    // As Calico: a filter that does not exist is skipped; tortie says so.
    expect(r.problems).toEqual([
      'BGPPeer tor: BGPFilter gone does not exist (ignored, as Calico does)',
    ]);
    // The mesh never takes filters.
    expect(r.text).toMatch(/protocol bgp Mesh_192_168_231_2 from tortie_bgp \{[^}]*direct;\n\}/);
    birdParses(r.text);
  });

  it('every match operator, prefix lengths, peer type, communities, AS path and operations', () => {
    const spec: BGPFilterSpec = {
      importV4: [
        { action: 'Accept', matchOperator: 'Equal', cidr: '10.1.0.0/16' },
        { action: 'Reject', matchOperator: 'NotEqual', cidr: '10.2.0.0/16' },
        { action: 'Accept', matchOperator: 'In', cidr: '10.3.0.0/16', prefixLength: { min: 20 } },
        {
          action: 'Reject',
          matchOperator: 'NotIn',
          cidr: '10.4.0.0/16',
          prefixLength: { max: 24 },
        },
        {
          action: 'Accept',
          peerType: 'iBGP',
          communities: { values: ['65000:100'] },
          asPathPrefix: [65000, '1.10'],
          operations: [
            { addCommunity: { value: '65000:1:2' } },
            { prependASPath: { prefix: [65001, 65002] } },
          ],
        },
        { action: 'Reject', peerType: 'eBGP', priority: 512 },
      ],
    };
    const r = renderBird({
      ...base,
      peers: [{ name: 'ibgp', spec: { peerIP: '10.0.0.2', asNumber: 64512, filters: ['f'] } }],
      filters: [{ name: 'f', spec }],
    });
    const body = r.text.slice(r.text.indexOf("function 'tortie_f_import'"));
    expect(body.split('\n').slice(1, 8)).toEqual([
      '  if (net = 10.1.0.0/16) then { accept; }',
      '  if (net != 10.2.0.0/16) then { reject; }',
      '  if (net ~ [ 10.3.0.0/16{20,32} ]) then { accept; }',
      '  if (net !~ [ 10.4.0.0/16{16,24} ]) then { reject; }',
      '  if (same_as) then { if ((65000, 100) ~ bgp_community) && (bgp_path ~ [= 65000 65546 * =]) then { bgp_large_community.add((65000, 1, 2)); bgp_path.prepend(65002); bgp_path.prepend(65001); accept; } }',
      '  # importV4[5] left out: matches priority, which tortie does not keep: rule left out',
      '}',
    ]);
    // The peer is in the node's AS: same_as is true.
    expect(r.text).toContain("import filter { 'tortie_f_import'(true); accept; };");
    expect(r.problems).toEqual([
      'BGPFilter f importV4[5]: matches priority, which tortie does not keep: rule left out',
    ]);
    birdParses(r.text);
  });

  it('long names stay within BIRD symbols and distinct', () => {
    const long = 'a'.repeat(60);
    const a = filterFunctionName(`${long}-x`, 'import');
    const b = filterFunctionName(`${long}-y`, 'import');
    expect(a.length).toBeLessThanOrEqual(66);
    expect(a).not.toBe(b);
    const r = renderBird({
      ...base,
      peers: [{ name: 'p', spec: { peerIP: '10.0.0.1', asNumber: 65001, filters: [`${long}-x`] } }],
      filters: [{ name: `${long}-x`, spec: { importV4: [{ action: 'Reject' }] } }],
    });
    birdParses(r.text);
  });

  it('the schema takes interface patterns as Calico does and refuses others', () => {
    const f = (iface: string) =>
      validate({
        kind: 'BGPFilter',
        metadata: { name: 'f' },
        spec: { importV4: [{ action: 'Reject', interface: iface }] },
      });
    expect(f('eth*').ok).toBe(true);
    expect(f('*.calico').ok).toBe(true);
    const bad = f('eth0"; accept');
    expect(bad.ok).toBe(false);
  });
});

describe('IPPool disableBGPExport and BGPConfiguration', () => {
  it('a pool with disableBGPExport is rejected before any pool is accepted', () => {
    const r = renderBird({
      ...base,
      pools: [
        { cidr: '10.231.0.0/16', ipipMode: 'Never', vxlanMode: 'Never' },
        { cidr: '10.232.0.0/16', ipipMode: 'Never', vxlanMode: 'Never', disableBGPExport: true },
      ],
    });
    expect(r.text).toContain(
      [
        'function tortie_export_to_peers() {',
        '  if net ~ [ 10.232.0.0/16+ ] then reject; # IPPool disableBGPExport',
        '  if net ~ [ 10.231.0.0/16+ ] then accept;',
        '  reject;',
        '}',
      ].join('\n'),
    );
    birdParses(r.text);
  });

  it("Calico's sample configuration: communities, listen port, bind mode, mesh restart time", () => {
    const config = calicoSpec<BGPConfigurationSpec>('bgpconfiguration-default.yaml');
    const r = renderBird({
      ...base,
      nodes: base.nodes.map((n) => ({ ...n, listenPort: 178 })),
      config,
    });
    expect(r.text).toContain(
      '  if net ~ 172.218.4.0/26 then { bgp_large_community.add((63400, 300, 100)); bgp_community.add((63400, 120)); }',
    );
    expect(r.text).toContain('  local 192.168.231.1 port 178 as 63400;\n  strict bind on;');
    // The mesh reaches the other node on its listen port.
    expect(r.text).toContain('protocol bgp Mesh_192_168_231_2_178 from tortie_bgp {');
    expect(r.text).toContain('  neighbor 192.168.231.2 port 178 as 63400;');
    expect(r.text).toContain('  graceful restart time 120;');
    expect(r.notImplemented).toEqual([
      'BGPConfiguration default serviceClusterIPs: stored, tortie has no Services yet: not advertised',
      'BGPConfiguration default serviceExternalIPs: stored, tortie has no Services yet: not advertised',
    ]);
    birdParses(r.text);
  });

  it("a node's prefixAdvertisements replace the default's; ignoredInterfaces are never scanned", () => {
    const r = renderBird({
      ...base,
      config: {
        communities: [{ name: 'c', value: '65000:7' }],
        prefixAdvertisements: [{ cidr: '10.231.0.0/16', communities: ['c'] }],
        ignoredInterfaces: ['ul*', 'dummy0'],
      },
      nodeConfig: { prefixAdvertisements: [{ cidr: '10.231.0.0/26', communities: ['c', '1:2'] }] },
    });
    expect(r.text).toContain(
      '  if net ~ 10.231.0.0/26 then { bgp_community.add((65000, 7)); bgp_community.add((1, 2)); }',
    );
    expect(r.text).not.toContain('if net ~ 10.231.0.0/16 then {');
    expect(r.text).toContain('  interface -"ul*", -"dummy0", "ul";');
    birdParses(r.text);
  });

  it('an advertisement naming no community is refused; secretKeyRef passwords are accepted', () => {
    const v = validate({
      kind: 'BGPConfiguration',
      metadata: { name: 'default' },
      spec: { prefixAdvertisements: [{ cidr: '10.0.0.0/8', communities: ['nope'] }] },
    });
    expect(v.ok).toBe(false);
    if (!v.ok)
      expect(v.detail.message).toMatch(/prefixAdvertisements\[0\]\.communities\[0\].*nope/);
    const mesh = validate({
      kind: 'BGPConfiguration',
      metadata: { name: 'default' },
      spec: { nodeMeshPassword: { secretKeyRef: { name: 'bgp-secrets', key: 'mesh' } } },
    });
    expect(mesh.ok).toBe(true);
    const peer = validate({
      kind: 'BGPPeer',
      metadata: { name: 'p' },
      spec: {
        peerIP: '10.0.0.1',
        asNumber: 65001,
        password: { secretKeyRef: { name: 'bgp-secrets', key: 'rr-password' } },
      },
    });
    expect(peer.ok).toBe(true);
    if (peer.ok)
      expect(peer.object.spec).toMatchObject({
        password: { secretKeyRef: { name: 'bgp-secrets', key: 'rr-password' } },
      });
    const traversal = validate({
      kind: 'BGPPeer',
      metadata: { name: 'p' },
      spec: {
        peerIP: '10.0.0.1',
        asNumber: 65001,
        password: { secretKeyRef: { name: 's', key: '../x' } },
      },
    });
    expect(traversal.ok).toBe(false);
  });
});

describe('BGPPeer session options', () => {
  it('keepOriginalNextHop (eBGP only), restart time, allowed local AS, TTL security, source, reachableBy', () => {
    const r = renderBird({
      ...base,
      peers: [
        {
          name: 'ebgp',
          spec: {
            peerIP: '10.0.0.1',
            asNumber: 65001,
            keepOriginalNextHop: true,
            maxRestartTime: '2m',
            numAllowedLocalASNumbers: 2,
            ttlSecurity: 3,
            sourceAddress: '192.168.231.1',
            reachableBy: '192.168.231.254',
            keepaliveTime: '20s',
            localASNumber: 65100,
          },
        },
        { name: 'ibgp', spec: { peerIP: '10.0.0.2', asNumber: 64512, keepOriginalNextHop: true } },
      ],
    });
    const block = (name: string) =>
      r.text.slice(r.text.indexOf(`protocol bgp ${name} `)).split('\n}')[0]!;
    expect(block('Global_10_0_0_1').split('\n').slice(1)).toEqual([
      '  neighbor 10.0.0.1 as 65001;',
      '  local as 65100;',
      '  ttl security on;',
      '  multihop 3;',
      '  source address 192.168.231.1;',
      '  graceful restart time 120;',
      '  keepalive time 20;',
      '  allow local as 2;',
      '  ipv4 {',
      '    next hop keep;',
      '  };',
    ]);
    expect(block('Global_10_0_0_2')).not.toContain('next hop keep');
    // A keepalive beyond BIRD's default hold time takes the hold time along.
    const slow = renderBird({
      ...base,
      peers: [
        {
          name: 'slow',
          spec: { peerIP: '10.0.0.1', asNumber: 65001, keepaliveTime: '5m', maxRestartTime: '2h' },
        },
      ],
    });
    expect(slow.text).toContain(
      '  graceful restart time 4095;\n  hold time 900;\n  keepalive time 300;',
    );
    birdParses(slow.text);
    expect(r.text).toContain('  route 10.0.0.1/32 via 192.168.231.254;');
    birdParses(r.text);
  });

  it('durations as Calico writes them', () => {
    expect(durationSeconds('120s')).toBe(120);
    expect(durationSeconds('1h30m')).toBe(5400);
    expect(durationSeconds('1500ms')).toBe(2);
    expect(durationSeconds('0')).toBe(0);
  });
});

describe('secretKeyRef passwords', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tortie-bgp-secrets-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const ref = { name: 'bgp-secrets', key: 'rr-password' };
  const write = (name: string, key: string, text: string, mode: number) => {
    mkdirSync(join(dir, name), { recursive: true });
    writeFileSync(join(dir, name, key), text);
    chmodSync(join(dir, name, key), mode);
  };

  it('are read from <dir>/<name>/<key>, owner-only, one trailing line break dropped', () => {
    write('bgp-secrets', 'rr-password', 'very-secret\n', 0o600);
    expect(readSecret(dir, ref)).toEqual({ value: 'very-secret' });
    write('open', 'k', 'x', 0o644);
    expect(readSecret(dir, { name: 'open', key: 'k' })).toEqual({
      problem: `${join(dir, 'open', 'k')} can be read by others (mode 0644): chmod 600 it`,
    });
    expect(readSecret(dir, { name: 'none', key: 'k' })).toEqual({
      problem: `${join(dir, 'none', 'k')} does not exist`,
      missing: true,
    });
  });

  it('render into the session; a missing one keeps the session out, with the reason', () => {
    const secrets = readSecrets(dir, [ref, { name: 'none', key: 'k' }]);
    const peers = [
      {
        name: 'good',
        spec: { peerIP: '10.0.0.1', asNumber: 65001, password: { secretKeyRef: ref } },
      },
      {
        name: 'missing',
        spec: {
          peerIP: '10.0.0.2',
          asNumber: 65001,
          password: { secretKeyRef: { name: 'none', key: 'k' } },
        },
      },
      {
        name: 'optional',
        spec: {
          peerIP: '10.0.0.3',
          asNumber: 65001,
          password: { secretKeyRef: { name: 'none', key: 'k', optional: true } },
        },
      },
    ];
    const r = renderBird({
      ...base,
      peers,
      secrets,
      config: { nodeMeshPassword: { secretKeyRef: ref } },
    });
    expect(r.peers.map((p) => p.name)).toEqual([
      'Mesh_192_168_231_2',
      'Global_10_0_0_1',
      'Global_10_0_0_3',
    ]);
    expect(r.text.match(/password "very-secret";/g)).toHaveLength(2);
    expect(r.problems).toEqual([
      `BGPPeer missing: password secret none key k: ${join(dir, 'none', 'k')} does not exist: session Global_10_0_0_2 not started`,
    ]);
    birdParses(r.text);
    const none = new Map<string, SecretValue>();
    expect(renderBird({ ...base, peers: [peers[0]!], secrets: none }).problems).toEqual([
      'BGPPeer good: password secret bgp-secrets key rr-password: not found: session Global_10_0_0_1 not started',
    ]);
    expect(secretId(ref)).toBe('bgp-secrets/rr-password');
  });

  it('the directory is the agent setting bgpSecretsDir (flag over env over file)', () => {
    expect(resolveAgentConfig({ hostname: 'h', env: {} }).bgpSecretsDir).toBe(
      '/etc/tortie/secrets',
    );
    expect(
      resolveAgentConfig({
        hostname: 'h',
        env: { TORTIE_BGP_SECRETS_DIR: '/srv/env' },
        file: { bgpSecretsDir: '/srv/file' },
      }).bgpSecretsDir,
    ).toBe('/srv/env');
    expect(
      resolveAgentConfig({
        hostname: 'h',
        flags: { bgpSecretsDir: '/srv/flag' },
        env: { TORTIE_BGP_SECRETS_DIR: '/srv/env' },
      }).bgpSecretsDir,
    ).toBe('/srv/flag');
    expect(() =>
      resolveAgentConfig({ hostname: 'h', env: {}, flags: { bgpSecretsDir: 'relative' } }),
    ).toThrow(AgentConfigError);
  });
});
