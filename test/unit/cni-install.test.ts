/**
 * `tortie cni install`: the shim a runtime executes and the conflist, written into
 * temporary directories only (never /opt/cni/bin or /etc/cni/net.d).
 */
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  mkdirSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { registerCniCommands } from '../../src/cli/cni.js';
import { addGlobalOptions } from '../../src/cli/context.js';
import { builtPluginPath, installCni } from '../../src/cni/install.js';

const dir = mkdtempSync(join(tmpdir(), "tortie-cni-install-it's-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('cni install', () => {
  it('copies the plugin executable, atomically, mode 0755', async () => {
    const fake = join(dir, 'fake-plugin');
    writeFileSync(fake, '#!/bin/sh\necho "$CNI_COMMAND"; exit 3\n');
    const { plugin } = await installCni({ binDir: join(dir, 'bin'), pluginPath: fake });
    expect(plugin).toBe(join(dir, 'bin', 'tortie'));
    expect(statSync(plugin).mode & 0o777).toBe(0o755);
    const run = spawnSync(plugin, [], { env: { CNI_COMMAND: 'VERSION' }, encoding: 'utf8' });
    expect(run.status).toBe(3);
    expect(run.stdout).toBe('VERSION\n');
  });

  it('refuses to install a plugin that is not built, saying how to build it', async () => {
    await expect(
      installCni({ binDir: join(dir, 'bin2'), pluginPath: join(dir, 'missing') }),
    ).rejects.toThrow(/missing does not exist: build tortie first/);
    expect(existsSync(join(dir, 'bin2', 'tortie'))).toBe(false);
  });

  it('from the CLI, installs the built plugin and a conflist naming the node and etcd (needs `npm run build`)', async () => {
    // What gets installed is the build: without it this test fails, saying so.
    if (!existsSync(builtPluginPath())) {
      throw new Error(
        `${builtPluginPath()} does not exist: run \`npm run build\` before the unit tests`,
      );
    }
    const program = new Command().exitOverride();
    registerCniCommands(program);
    const [bin, conf] = [join(dir, 'cli-bin'), join(dir, 'net.d')];
    mkdirSync(conf);
    await program.parseAsync(
      [
        'cni',
        'install',
        '--bin-dir',
        bin,
        '--conf-dir',
        conf,
        '--node',
        'node-7',
        '--etcd-endpoints',
        'http://10.0.0.1:2379',
        '--mtu',
        '1400',
        '--agent-wait-ms',
        '2500',
      ],
      { from: 'user' },
    );
    expect(JSON.parse(readFileSync(join(conf, '10-tortie.conflist'), 'utf8'))).toEqual({
      cniVersion: '1.0.0',
      name: 'tortie',
      plugins: [
        {
          type: 'tortie',
          etcd_endpoints: 'http://10.0.0.1:2379',
          ipam: { type: 'tortie-ipam' },
          nodename: 'node-7',
          mtu: 1400,
          agent_wait_ms: 2500,
        },
      ],
    });
    const version = spawnSync(join(bin, 'tortie'), [], {
      input: '{"cniVersion":"1.0.0"}',
      env: { CNI_COMMAND: 'VERSION' },
      encoding: 'utf8',
    });
    expect(version.status).toBe(0);
    expect(JSON.parse(version.stdout)).toMatchObject({
      cniVersion: '1.0.0',
      supportedVersions: expect.arrayContaining(['1.1.0']),
    });
  });

  it("writes Calico's etcd TLS fields as absolute paths, from its own or tortie's global etcd options", async () => {
    const pki = join(dir, 'pki');
    mkdirSync(pki);
    for (const n of ['ca.pem', 'cni.pem', 'cni-key.pem']) writeFileSync(join(pki, n), 'pem\n');
    const program = new Command().exitOverride();
    // As in bin/tortie: the root command has --etcd-endpoints and the TLS options too.
    addGlobalOptions(program);
    registerCniCommands(program);
    const conf = join(dir, 'tls.d');
    await program.parseAsync(
      [
        'cni',
        'install',
        '--bin-dir',
        join(dir, 'tls-bin'),
        '--conf-dir',
        conf,
        '--node',
        'node-1',
        '--etcd-endpoints',
        'https://10.0.0.1:2379',
        '--etcd-ca-cert',
        join(pki, 'ca.pem'),
        '--etcd-cert',
        join(pki, 'cni.pem'),
        '--etcd-key',
        join(pki, 'cni-key.pem'),
      ],
      { from: 'user' },
    );
    expect(JSON.parse(readFileSync(join(conf, '10-tortie.conflist'), 'utf8')).plugins[0]).toEqual({
      type: 'tortie',
      etcd_endpoints: 'https://10.0.0.1:2379',
      etcd_ca_cert_file: join(pki, 'ca.pem'),
      etcd_cert_file: join(pki, 'cni.pem'),
      etcd_key_file: join(pki, 'cni-key.pem'),
      ipam: { type: 'tortie-ipam' },
      nodename: 'node-1',
    });
  });

  it('refuses to write a conflist the plugin would refuse: TLS files with an http:// endpoint', async () => {
    const conf = join(dir, 'bad.d');
    await expect(
      installCni({
        binDir: join(dir, 'bad-bin'),
        confDir: conf,
        node: 'node-1',
        etcdEndpoints: 'http://10.0.0.1:2379',
        etcdCaCertFile: join(dir, 'pki', 'ca.pem'),
      }),
    ).rejects.toThrow(
      'not writing the conflist: network config: etcd_ca_cert_file need https:// etcd endpoints, but etcd_endpoints has http://10.0.0.1:2379',
    );
    expect(existsSync(conf)).toBe(false);
    expect(existsSync(join(dir, 'bad-bin'))).toBe(false);
  });

  it('refuses an --agent-wait-ms that is not a whole number of milliseconds, naming it', async () => {
    const program = new Command().exitOverride().configureOutput({ writeErr: () => undefined });
    registerCniCommands(program);
    await expect(
      program.parseAsync(['cni', 'install', '--bin-dir', join(dir, 'x'), '--agent-wait-ms', '2s'], {
        from: 'user',
      }),
    ).rejects.toThrow(/"2s" is not a wait in milliseconds/);
    expect(existsSync(join(dir, 'x'))).toBe(false);
  });
});
