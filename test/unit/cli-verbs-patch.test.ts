/**
 * JSON merge patch: the examples of RFC 7396 appendix A, re-typed as data (facts, not
 * code; source: https://www.rfc-editor.org/rfc/rfc7396#appendix-A), and how `-p` is read.
 */
import { describe, expect, it } from 'vitest';
import { mergePatch, parseMergePatch } from '../../src/cli/merge-patch.js';
import { UsageError } from '../../src/cli/usage.js';

const RFC7396_EXAMPLES: [original: unknown, patch: unknown, result: unknown][] = [
  [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
  [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
  [{ a: 'b' }, { a: null }, {}],
  [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
  [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
  [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
  [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
  [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
  [
    ['a', 'b'],
    ['c', 'd'],
    ['c', 'd'],
  ],
  [{ a: 'b' }, ['c'], ['c']],
  [{ a: 'foo' }, null, null],
  [{ a: 'foo' }, 'bar', 'bar'],
  [{ e: null }, { a: 1 }, { e: null, a: 1 }],
  [[1, 2], { a: 'b', c: null }, { a: 'b' }],
  [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
];

describe('mergePatch', () => {
  it.each(RFC7396_EXAMPLES)('RFC 7396: %j patched with %j is %j', (original, patch, result) => {
    expect(mergePatch(original, patch)).toEqual(result);
  });

  it('leaves its arguments unchanged', () => {
    const original = { spec: { cidr: '10.0.0.0/16', natOutgoing: true } };
    const patch = { spec: { natOutgoing: null } };
    expect(mergePatch(original, patch)).toEqual({ spec: { cidr: '10.0.0.0/16' } });
    expect(original).toEqual({ spec: { cidr: '10.0.0.0/16', natOutgoing: true } });
    expect(patch).toEqual({ spec: { natOutgoing: null } });
  });
});

describe('parseMergePatch', () => {
  it('reads a JSON object', () => {
    expect(parseMergePatch('{"spec":{"disabled":true}}')).toEqual({ spec: { disabled: true } });
  });

  it.each([
    ['{spec:', /-p: not JSON/],
    ['[1]', /-p: a merge patch is a JSON object .* not an array/],
    ['"x"', /-p: a merge patch is a JSON object .* not "x"/],
    ['null', /not null/],
  ])('refuses %s as a usage mistake', (text, message) => {
    expect(() => parseMergePatch(text)).toThrow(UsageError);
    expect(() => parseMergePatch(text)).toThrow(message);
  });
});
