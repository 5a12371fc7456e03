/** Manifest text → objects, each with the place it came from. */
import { describe, expect, it } from 'vitest';
import { ManifestError, parseManifest } from '../../src/datastore/manifest.js';

const pool = (name: string) => ({
  apiVersion: 'tortie.io/v1',
  kind: 'IPPool',
  metadata: { name },
  spec: { cidr: '10.0.0.0/16' },
});

describe('manifests', () => {
  it('a single YAML document is named after the file', () => {
    expect(
      parseManifest('apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n', 'ns.yaml'),
    ).toEqual([
      {
        object: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'a' } },
        source: 'ns.yaml',
      },
    ]);
  });

  it('several YAML documents are numbered; empty documents are skipped', () => {
    const text =
      '---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n# nothing\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n';
    expect(parseManifest(text, 'f.yaml').map((m) => m.source)).toEqual([
      'f.yaml document 1',
      'f.yaml document 3',
    ]);
  });

  it('JSON: an object, or an array of objects', () => {
    expect(parseManifest(JSON.stringify(pool('a')), '-')).toEqual([
      { object: pool('a'), source: 'stdin' },
    ]);
    expect(
      parseManifest(JSON.stringify([pool('a'), pool('b')]), 'p.json').map((m) => m.source),
    ).toEqual(['p.json item 1', 'p.json item 2']);
  });

  it('a List (what get -o yaml prints) contributes its items', () => {
    const list = {
      apiVersion: 'tortie.io/v1',
      kind: 'IPPoolList',
      metadata: {},
      items: [pool('a'), pool('b')],
    };
    expect(parseManifest(JSON.stringify(list), 'l.json')).toEqual([
      { object: pool('a'), source: 'l.json item 1' },
      { object: pool('b'), source: 'l.json item 2' },
    ]);
  });

  it('a YAML syntax error names the document, line and column', () => {
    expect(() => parseManifest('a: 1\n---\nb: [1,\n', 'x.yaml')).toThrow(
      /^x\.yaml document 2: not valid YAML or JSON at line \d+, column \d+/,
    );
  });

  it('a duplicate key is an error, not a silent override', () => {
    expect(() => parseManifest('kind: IPPool\nkind: Tier\n', 'd.yaml')).toThrow(ManifestError);
  });

  it('a document that is not an object is refused', () => {
    expect(() => parseManifest('just text\n', 't.yaml')).toThrow(
      't.yaml: expected an object with apiVersion, kind, metadata and spec, got text',
    );
  });
});
