/**
 * `-o jsonpath=` and `-o custom-columns=`: the template subset kubectl's and calicoctl's
 * scripts use, on in-memory documents shaped as `get` prints them.
 */
import { InvalidArgumentError } from 'commander';
import { describe, expect, it } from 'vitest';
import { formatCustomColumns, parseCustomColumns } from '../../src/cli/custom-columns.js';
import { executeTemplate, parseTemplate } from '../../src/cli/jsonpath.js';
import { formatResources, outputFormat } from '../../src/cli/output.js';
import type { StoredResource } from '../../src/datastore/index.js';

const pool = (name: string, cidr: string, labels?: Record<string, string>): StoredResource => ({
  apiVersion: 'tortie.io/v1',
  kind: 'IPPool',
  metadata: {
    name,
    uid: 'u',
    creationTimestamp: '2026-01-01T00:00:00Z',
    ...(labels === undefined ? {} : { labels }),
    resourceVersion: '7',
  },
  spec: { cidr, blockSize: 26, natOutgoing: true },
});

const list = {
  kind: 'IPPoolList',
  items: [pool('a', '10.1.0.0/16', { 'app.io/tier': 'x' }), pool('b', '10.2.0.0/16')],
};

const run = (template: string, doc: unknown = list) =>
  executeTemplate(parseTemplate(template), doc);

describe('jsonpath templates', () => {
  it.each([
    ['{.kind}', 'IPPoolList'],
    ['{$.kind}', 'IPPoolList'],
    ['{.items[*].metadata.name}', 'a b'],
    ['{.items[0].spec.cidr}', '10.1.0.0/16'],
    ['{.items[-1].metadata.name}', 'b'],
    ['{.items[1].spec.blockSize}', '26'],
    ['{.items[0].spec.natOutgoing}', 'true'],
    ["{.items[0].metadata.labels['app.io/tier']}", 'x'],
    ['{.items[0].metadata.labels}', '{"app.io/tier":"x"}'],
    ['{.items[*].metadata.missing}', ''],
    ['name: {.items[0].metadata.name}!', 'name: a!'],
    [
      '{range .items[*]}{.metadata.name}{"\\t"}{.spec.cidr}{"\\n"}{end}',
      'a\t10.1.0.0/16\nb\t10.2.0.0/16\n',
    ],
    ['{range .items[*]}{@.metadata.name},{end}', 'a,b,'],
    ['{range .items}[{.metadata.name}]{end}', '[a][b]'],
    ['{range .items[*]}{$.kind}/{.metadata.name} {end}', 'IPPoolList/a IPPoolList/b '],
    ["{'x'}", 'x'],
  ])('%s prints %j', (template, expected) => {
    expect(run(template)).toBe(expected);
  });

  it('reads a single object as the document', () => {
    expect(run('{.metadata.name} {.spec.cidr}', pool('p', '10.9.0.0/16'))).toBe('p 10.9.0.0/16');
  });

  it.each([
    ['{.items', /unclosed \{ at position 0/],
    ['{range .items[*]}{.x}', /\{range\} without \{end\}/],
    ['{end}', /\{end\} without \{range\}/],
    ['{..name}', /recursive descent/],
    ['{.items[?(@.x)]}', /not supported/],
    ['{.items[1:2]}', /not supported/],
    ['{}', /empty \{\}/],
    ['{.a b}', /unexpected/],
  ])('refuses %s with where and why', (template, message) => {
    expect(() => parseTemplate(template)).toThrow(InvalidArgumentError);
    expect(() => parseTemplate(template)).toThrow(message);
  });
});

describe('custom-columns', () => {
  it('prints one row per object, <none> where a path reaches nothing', () => {
    const columns = parseCustomColumns(
      'NAME:.metadata.name,CIDR:{.spec.cidr},TIER:metadata.labels.tier',
    );
    expect(formatCustomColumns(columns, list.items)).toBe(
      [
        'NAME   CIDR          TIER',
        'a      10.1.0.0/16   <none>',
        'b      10.2.0.0/16   <none>',
        '',
      ].join('\n'),
    );
  });

  it('joins several values of one cell with commas', () => {
    const columns = parseCustomColumns('NAME:.metadata.name,ALL:.spec.*');
    expect(formatCustomColumns(columns, [pool('a', '10.1.0.0/16')])).toBe(
      'NAME   ALL\na      10.1.0.0/16,26,true\n',
    );
  });

  it.each(['', 'NAME', 'NAME:', ':.metadata.name', 'A:.x,B'])('refuses %j', (spec) => {
    expect(() => parseCustomColumns(spec)).toThrow(InvalidArgumentError);
  });
});

describe('-o', () => {
  it('takes the plain formats, jsonpath= and custom-columns=', () => {
    expect(outputFormat('wide')).toBe('wide');
    expect(outputFormat('jsonpath={.kind}')).toHaveProperty('jsonpath');
    expect(outputFormat('custom-columns=N:.metadata.name')).toHaveProperty('customColumns');
  });

  it.each(['xml', 'jsonpath', 'jsonpath=', 'custom-columns='])('refuses %j', (value) => {
    expect(() => outputFormat(value)).toThrow(InvalidArgumentError);
  });

  it('applies a template to the List get prints, and columns to its items', () => {
    const items = [pool('a', '10.1.0.0/16'), pool('b', '10.2.0.0/16')];
    expect(
      formatResources('IPPool', items, { format: outputFormat('jsonpath={.items[*].spec.cidr}') }),
    ).toBe('10.1.0.0/16 10.2.0.0/16');
    expect(
      formatResources('IPPool', items.slice(0, 1), {
        format: outputFormat('jsonpath={.metadata.name}'),
        single: true,
      }),
    ).toBe('a');
    expect(
      formatResources('IPPool', items, {
        format: outputFormat('custom-columns=NAME:.metadata.name'),
      }),
    ).toBe('NAME\na\nb\n');
  });
});
