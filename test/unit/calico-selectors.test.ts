/**
 * Calico's own selector test tables (test/fixtures/calico-selectors/, where each came
 * from is in its README) run through tortie's parser and tokenizer. Every table row is
 * one test, so the run's count is the count of Calico's cases tortie passes.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseSelector, SelectorError } from '../../src/policy/selector.js';
import { tokenize, TokenizeError } from '../../src/policy/selector/tokenize.js';

type Labels = Record<string, string>;

interface MatchCase {
  readonly selector: string;
  readonly matches: readonly Labels[];
  readonly doesNotMatch: readonly Labels[];
}
interface RefusedCase {
  readonly selector: string;
  readonly refused: string;
}

const fixtures = join(dirname(fileURLToPath(import.meta.url)), '../fixtures/calico-selectors');
function load<T>(name: string): T {
  return JSON.parse(readFileSync(join(fixtures, name), 'utf8')) as T;
}

const parser = load<{ cases: MatchCase[] }>('parser.json').cases;
const refused = load<{ selectors: string[] }>('refused.json').selectors;
const accepted = load<{ selectors: string[] }>('accepted.json').selectors;
const canonical = load<{ cases: { selector: string; calicoForm: string }[] }>(
  'canonical.json',
).cases;
const tokens = load<{ cases: { selector: string; tokens: string[][] | null }[] }>(
  'tokenizer.json',
).cases;
const gaps = load<{ cases: (MatchCase | RefusedCase)[] }>('gaps.json').cases;

/** A short, unique-enough test name for a selector (some are 500+ characters). */
function shown(text: string): string {
  const json = JSON.stringify(text);
  return json.length > 60 ? `${json.slice(0, 40)}…(${text.length} chars)` : json;
}

function refusal(text: string): SelectorError | undefined {
  try {
    parseSelector(text);
    return undefined;
  } catch (err) {
    if (err instanceof SelectorError) return err;
    throw err;
  }
}

function expectMatching(c: MatchCase): void {
  const sel = parseSelector(c.selector);
  for (const labels of c.matches) expect(sel.matches(labels), JSON.stringify(labels)).toBe(true);
  for (const labels of c.doesNotMatch)
    expect(sel.matches(labels), JSON.stringify(labels)).toBe(false);
  // As Calico's table does: the canonical spellings select the same label sets.
  for (const form of [sel.canonical, sel.calicoForm]) {
    const again = parseSelector(form);
    for (const labels of c.matches) expect(again.matches(labels), form).toBe(true);
    for (const labels of c.doesNotMatch) expect(again.matches(labels), form).toBe(false);
  }
}

describe("Calico's parser table (selectorTests)", () => {
  it.each(parser.map((c, i) => [i, shown(c.selector), c] as const))(
    '#%i %s matches and does not match as in Calico',
    (_i, _name, c) => expectMatching(c),
  );
});

describe("Calico's refused selectors (badSelectors)", () => {
  it.each(refused.map((s) => [shown(s), s] as const))('refuses %s', (_name, text) => {
    expect(refusal(text)).toBeInstanceOf(SelectorError);
  });
});

describe("Calico's visitor table inputs", () => {
  it.each(accepted.map((s) => [shown(s), s] as const))('accepts %s', (_name, text) => {
    expect(refusal(text)).toBeUndefined();
  });
});

describe("Calico's canonical spelling (canonicalisationTests)", () => {
  it.each(canonical.map((c) => [shown(c.selector), c.calicoForm, c] as const))(
    '%s is written %j and re-parses to itself',
    (_name, _form, c) => {
      const sel = parseSelector(c.selector);
      expect(sel.calicoForm).toBe(c.calicoForm);
      expect(parseSelector(sel.calicoForm).calicoForm).toBe(c.calicoForm);
    },
  );
});

describe("Calico's tokenizer table (tokenTests)", () => {
  it.each(tokens.map((c, i) => [i, shown(c.selector), c] as const))('#%i %s', (_i, _name, c) => {
    if (c.tokens === null) {
      expect(() => tokenize(c.selector)).toThrow(TokenizeError);
      return;
    }
    const got = tokenize(c.selector).map((t) =>
      t.value === undefined ? [t.kind] : [t.kind, t.value],
    );
    expect(got).toEqual(c.tokens);
  });
});

describe('the gaps issue 13 names, as Calico behaves', () => {
  it.each(gaps.map((c, i) => [i, shown(c.selector), c] as const))('#%i %s', (_i, _name, c) => {
    if ('refused' in c) {
      expect(refusal(c.selector), c.refused).toBeInstanceOf(SelectorError);
      return;
    }
    expectMatching(c);
  });
});
