/** Where the CLI finds etcd: flag > environment > config file > default. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addGlobalOptions, resolveConnection, type GlobalOptions } from '../../src/cli/context.js';
import { UsageError } from '../../src/cli/usage.js';

let dir: string;
let configPath: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tortie-context-'));
  configPath = join(dir, 'tortie.yaml');
  await writeFile(
    configPath,
    'etcdEndpoints: http://10.0.0.1:2379, http://10.0.0.2:2379\netcdPrefix: /fromfile\netcdCACert: /etc/ca.pem\n',
  );
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Parses global options the way the CLI does, with this environment. */
function parse(args: string[], env: Record<string, string> = {}): GlobalOptions {
  const saved = { ...process.env };
  for (const k of Object.keys(process.env)) if (k.startsWith('TORTIE_')) delete process.env[k];
  Object.assign(process.env, env);
  try {
    const program = addGlobalOptions(new Command().exitOverride()).allowExcessArguments(true);
    program.parse(args, { from: 'user' });
    return program.opts<GlobalOptions>();
  } finally {
    process.env = saved;
  }
}

describe('connection settings', () => {
  it('the flag wins over the environment, which wins over the file', async () => {
    const env = { TORTIE_ETCD_ENDPOINTS: 'http://env:2379' };
    expect(
      (
        await resolveConnection(
          parse(['--config', configPath, '--etcd-endpoints', 'http://flag:2379'], env),
        )
      ).endpoints,
    ).toEqual(['http://flag:2379']);
    expect((await resolveConnection(parse(['--config', configPath], env))).endpoints).toEqual([
      'http://env:2379',
    ]);
    expect((await resolveConnection(parse(['--config', configPath]))).endpoints).toEqual([
      'http://10.0.0.1:2379',
      'http://10.0.0.2:2379',
    ]);
  });

  it('settings are resolved one by one: a flag for endpoints, the file for prefix and CA', async () => {
    const c = await resolveConnection(
      parse(['--config', configPath, '--etcd-endpoints', 'a:1,b:2']),
    );
    expect(c).toEqual({
      endpoints: ['a:1', 'b:2'],
      prefix: '/fromfile',
      tls: { ca: '/etc/ca.pem' },
    });
  });

  it('without any setting, etcd is expected on localhost:2379', async () => {
    const empty = join(dir, 'empty.yaml');
    await writeFile(empty, '');
    expect(await resolveConnection({ config: empty })).toEqual({
      endpoints: ['http://127.0.0.1:2379'],
    });
  });

  it('a --config file that does not exist is a usage error', async () => {
    await expect(resolveConnection({ config: join(dir, 'missing.yaml') })).rejects.toThrow(
      UsageError,
    );
  });

  it('an unknown setting in the file is refused, naming it', async () => {
    const bad = join(dir, 'bad.yaml');
    await writeFile(bad, 'etcdEndpoint: http://x:2379\n');
    await expect(resolveConnection({ config: bad })).rejects.toThrow(
      `${bad}: etcdEndpoint: unknown setting`,
    );
  });

  it('a client certificate needs its key', async () => {
    const e = await resolveConnection({ config: configPath, etcdCert: '/c.pem' }).catch(
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(UsageError);
    expect((e as Error).message).toBe(
      '--etcd-cert and --etcd-key go together: give both or neither',
    );
  });

  it('a prefix must start with "/"', async () => {
    await expect(resolveConnection({ config: configPath, etcdPrefix: 'tortie' })).rejects.toThrow(
      'must start with "/"',
    );
  });

  it('TLS material from the environment', async () => {
    const c = await resolveConnection(
      parse(['--config', configPath], {
        TORTIE_ETCD_CERT: '/cert.pem',
        TORTIE_ETCD_KEY: '/key.pem',
        TORTIE_ETCD_CA_CERT: '/ca2.pem',
      }),
    );
    expect(c.tls).toEqual({ ca: '/ca2.pem', cert: '/cert.pem', key: '/key.pem' });
  });
});
