/**
 * `-f DIR` reads every manifest under a directory in one stable order, all or nothing;
 * `label --remove` takes keys only.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { manifestFilesUnder, readManifests, type CliIo } from '../../src/cli/resource-common.js';
import { parseRemovedKeys } from '../../src/cli/resources.js';
import { UsageError } from '../../src/cli/usage.js';

let dir: string;
const io: CliIo = { out: () => {}, err: () => {}, readStdin: async () => '' };

const doc = (name: string) =>
  `apiVersion: tortie.io/v1\nkind: GlobalNetworkSet\nmetadata:\n  name: ${name}\nspec:\n  nets: [10.0.0.0/8]\n`;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tortie-verbs-files-'));
  await mkdir(join(dir, 'tree', 'b', 'deep'), { recursive: true });
  await mkdir(join(dir, 'tree', '.git'), { recursive: true });
  await writeFile(join(dir, 'tree', 'b', 'deep', 'z.yml'), doc('z'));
  await writeFile(
    join(dir, 'tree', 'b', 'a.json'),
    JSON.stringify({
      apiVersion: 'tortie.io/v1',
      kind: 'GlobalNetworkSet',
      metadata: { name: 'j' },
      spec: {},
    }),
  );
  await writeFile(join(dir, 'tree', 'a.yaml'), doc('a'));
  await writeFile(join(dir, 'tree', 'README.md'), '# not a manifest\n');
  await writeFile(join(dir, 'tree', '.git', 'x.yaml'), 'not: read\n');
  await mkdir(join(dir, 'bad'));
  await writeFile(join(dir, 'bad', '1.yaml'), doc('one'));
  await writeFile(join(dir, 'bad', '2.yaml'), 'kind: [unclosed\n');
  await mkdir(join(dir, 'empty'));
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('-f DIR', () => {
  it('lists .yaml, .yml and .json files at any depth, by path, skipping dot-directories', async () => {
    const files = await manifestFilesUnder(join(dir, 'tree'));
    expect(files.map((f) => f.slice(dir.length + 1))).toEqual([
      'tree/a.yaml',
      'tree/b/a.json',
      'tree/b/deep/z.yml',
    ]);
  });

  it('reads the objects of every file, each named by its file', async () => {
    const objects = await readManifests([join(dir, 'tree')], io);
    expect(objects.map((o) => (o.object as { metadata: { name: string } }).metadata.name)).toEqual([
      'a',
      'j',
      'z',
    ]);
    expect(objects[2]!.source).toContain('deep/z.yml');
  });

  it('refuses the whole directory when one file does not parse', async () => {
    await expect(readManifests([join(dir, 'bad')], io)).rejects.toThrow(
      /2\.yaml.*nothing was written/s,
    );
  });

  it('calls a directory without manifests a usage mistake', async () => {
    await expect(readManifests([join(dir, 'empty')], io)).rejects.toThrow(UsageError);
    await expect(readManifests([join(dir, 'missing')], io)).rejects.toThrow(/cannot read .*ENOENT/);
  });
});

describe('label --remove', () => {
  it('takes keys, with or without a trailing -', () => {
    expect(parseRemovedKeys(['app', 'tier-'])).toEqual({ app: null, tier: null });
  });

  it('refuses key=value', () => {
    expect(() => parseRemovedKeys(['app=web'])).toThrow(/with --remove give only label keys/);
  });
});
