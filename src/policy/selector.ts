/**
 * Calico's label selector grammar: parse, canonicalise, match.
 *
 *   expr    := and ('||' and)*
 *   and     := unary ('&&' unary)*
 *   unary   := '!' unary | primary
 *   primary := '(' expr ')' | 'all()' | 'has(' key ')' | key op
 *   op      := '==' value | '!=' value | 'in' set | 'not in' set
 *            | 'contains' value | 'starts with' value | 'ends with' value
 *   set     := '{' [value (',' value)*] '}'
 *   value   := '"' chars '"' | "'" chars "'"          (no escapes, as in Calico)
 *
 * The empty selector means all(). A missing label never equals a value, so `k != "v"`
 * and `k not in {...}` match endpoints without the label, as in Calico and Kubernetes.
 */
import type { Labels } from './model.js';

export interface Selector {
  /** The text as given. */
  readonly source: string;
  /** A normalised spelling: equal for selectors that differ only in spelling. */
  readonly canonical: string;
  matches(labels: Labels): boolean;
}

export class SelectorError extends Error {
  override readonly name = 'SelectorError';
  constructor(
    readonly selector: string,
    /** 0-based offset into the selector text. */
    readonly position: number,
    readonly reason: string,
  ) {
    super(`selector ${JSON.stringify(selector)}: ${reason} at position ${position}`);
  }
}

type Node =
  | { readonly op: 'all' }
  | { readonly op: 'has'; readonly key: string }
  | {
      readonly op: '==' | '!=' | 'contains' | 'starts with' | 'ends with';
      readonly key: string;
      readonly value: string;
    }
  | { readonly op: 'in' | 'not in'; readonly key: string; readonly values: readonly string[] }
  | { readonly op: '!'; readonly operand: Node }
  | { readonly op: '&&' | '||'; readonly operands: readonly Node[] };

const KEY_CHAR = /[A-Za-z0-9_./-]/;
const WORD_CHAR = /[A-Za-z0-9_./-]/;

class Parser {
  private pos = 0;

  constructor(private readonly text: string) {}

  parse(): Node {
    this.skipSpace();
    if (this.pos === this.text.length) return { op: 'all' };
    const node = this.parseOr();
    this.skipSpace();
    if (this.pos < this.text.length) this.fail(`unexpected ${this.describeHere()}`);
    return node;
  }

  private parseOr(): Node {
    const operands = [this.parseAnd()];
    while (this.eat('||')) operands.push(this.parseAnd());
    return operands.length === 1 ? operands[0]! : { op: '||', operands };
  }

  private parseAnd(): Node {
    const operands = [this.parseUnary()];
    while (this.eat('&&')) operands.push(this.parseUnary());
    return operands.length === 1 ? operands[0]! : { op: '&&', operands };
  }

  private parseUnary(): Node {
    this.skipSpace();
    if (this.text[this.pos] === '!' && this.text[this.pos + 1] !== '=') {
      this.pos++;
      return { op: '!', operand: this.parseUnary() };
    }
    return this.parsePrimary();
  }

  private parsePrimary(): Node {
    this.skipSpace();
    if (this.eat('(')) {
      const inner = this.parseOr();
      this.expect(')', 'expected ")"');
      return inner;
    }
    const start = this.pos;
    const word = this.readKey();
    if (word === '')
      this.fail(
        `expected a label key, "has(", "all()", "!" or "(" but found ${this.describeHere()}`,
      );
    this.skipSpace();
    if (this.text[this.pos] === '(') {
      if (word === 'all') {
        this.pos++;
        this.expect(')', 'expected ")" after "all("');
        return { op: 'all' };
      }
      if (word === 'has') {
        this.pos++;
        this.skipSpace();
        const key = this.readKey();
        if (key === '') this.fail('expected a label key inside has()');
        this.expect(')', 'expected ")" after the label key of has(');
        return { op: 'has', key };
      }
      this.pos = start;
      this.fail(`unknown function "${word}()"`);
    }
    return this.parseComparison(word);
  }

  private parseComparison(key: string): Node {
    this.skipSpace();
    if (this.eat('==')) return { op: '==', key, value: this.readValue() };
    if (this.eat('!=')) return { op: '!=', key, value: this.readValue() };
    if (this.eatWord('in')) return { op: 'in', key, values: this.readSet() };
    if (this.eatWord('not')) {
      if (!this.eatWord('in')) this.fail('expected "in" after "not"');
      return { op: 'not in', key, values: this.readSet() };
    }
    if (this.eatWord('contains')) return { op: 'contains', key, value: this.readValue() };
    if (this.eatWord('starts')) {
      if (!this.eatWord('with')) this.fail('expected "with" after "starts"');
      return { op: 'starts with', key, value: this.readValue() };
    }
    if (this.eatWord('ends')) {
      if (!this.eatWord('with')) this.fail('expected "with" after "ends"');
      return { op: 'ends with', key, value: this.readValue() };
    }
    return this.fail(
      `expected an operator (==, !=, in, not in, contains, starts with, ends with) after label "${key}" but found ${this.describeHere()}`,
    );
  }

  private readSet(): string[] {
    this.expect('{', 'expected "{"');
    const values: string[] = [];
    this.skipSpace();
    if (this.eat('}')) return values;
    for (;;) {
      values.push(this.readValue());
      if (this.eat('}')) return values;
      this.expect(',', 'expected "," or "}"');
    }
  }

  private readValue(): string {
    this.skipSpace();
    const quote = this.text[this.pos];
    if (quote !== '"' && quote !== "'") return this.fail('expected a quoted value');
    const end = this.text.indexOf(quote, this.pos + 1);
    if (end < 0) return this.fail(`unterminated string (missing closing ${quote})`);
    const value = this.text.slice(this.pos + 1, end);
    this.pos = end + 1;
    return value;
  }

  private readKey(): string {
    const start = this.pos;
    while (this.pos < this.text.length && KEY_CHAR.test(this.text[this.pos]!)) this.pos++;
    return this.text.slice(start, this.pos);
  }

  private skipSpace(): void {
    while (this.pos < this.text.length && /\s/.test(this.text[this.pos]!)) this.pos++;
  }

  /** Consumes `token` (after optional space) if it comes next. */
  private eat(token: string): boolean {
    this.skipSpace();
    if (!this.text.startsWith(token, this.pos)) return false;
    this.pos += token.length;
    return true;
  }

  /** Like eat, but the word must not run on into a longer word ("inside" is not "in"). */
  private eatWord(word: string): boolean {
    this.skipSpace();
    if (!this.text.startsWith(word, this.pos)) return false;
    const next = this.text[this.pos + word.length];
    if (next !== undefined && WORD_CHAR.test(next)) return false;
    this.pos += word.length;
    return true;
  }

  private expect(token: string, reason: string): void {
    if (!this.eat(token)) this.fail(`${reason} but found ${this.describeHere()}`);
  }

  private describeHere(): string {
    if (this.pos >= this.text.length) return 'the end';
    return JSON.stringify(this.text[this.pos]);
  }

  private fail(reason: string): never {
    throw new SelectorError(this.text, this.pos, reason);
  }
}

// --- canonical form -------------------------------------------------------------------

function quote(value: string): string {
  return value.includes('"') ? `'${value}'` : `"${value}"`;
}

/** Flattens nested &&/|| chains, sorts and de-duplicates their operands. */
function normalise(node: Node): Node {
  switch (node.op) {
    case '!':
      return { op: '!', operand: normalise(node.operand) };
    case '&&':
    case '||': {
      const flat: Node[] = [];
      for (const child of node.operands.map(normalise)) {
        if (child.op === node.op) flat.push(...child.operands);
        else flat.push(child);
      }
      const byText = new Map(flat.map((n) => [print(n), n] as const));
      const sorted = [...byText.keys()].sort().map((k) => byText.get(k)!);
      return sorted.length === 1 ? sorted[0]! : { op: node.op, operands: sorted };
    }
    case 'in':
    case 'not in':
      return { ...node, values: [...new Set(node.values)].sort() };
    default:
      return node;
  }
}

function print(node: Node): string {
  switch (node.op) {
    case 'all':
      return 'all()';
    case 'has':
      return `has(${node.key})`;
    case 'in':
    case 'not in':
      return `${node.key} ${node.op} {${node.values.map(quote).join(', ')}}`;
    case '!': {
      const inner = print(node.operand);
      const bare =
        node.operand.op === 'has' || node.operand.op === 'all' || node.operand.op === '!';
      return bare ? `!${inner}` : `!(${inner})`;
    }
    case '&&':
      return node.operands.map((n) => (n.op === '||' ? `(${print(n)})` : print(n))).join(' && ');
    case '||':
      return node.operands.map(print).join(' || ');
    default:
      return `${node.key} ${node.op} ${quote(node.value)}`;
  }
}

// --- matching -------------------------------------------------------------------------

type Matcher = (labels: Labels) => boolean;

/** The label's own value; inherited Object.prototype members are not labels. */
function label(labels: Labels, key: string): string | undefined {
  const v = labels[key];
  return typeof v === 'string' ? v : undefined;
}

function compile(node: Node): Matcher {
  switch (node.op) {
    case 'all':
      return () => true;
    case 'has': {
      const { key } = node;
      return (l) => label(l, key) !== undefined;
    }
    case '==': {
      const { key, value } = node;
      return (l) => label(l, key) === value;
    }
    case '!=': {
      const { key, value } = node;
      return (l) => label(l, key) !== value;
    }
    case 'in': {
      const { key } = node;
      const set = new Set(node.values);
      return (l) => {
        const v = label(l, key);
        return v !== undefined && set.has(v);
      };
    }
    case 'not in': {
      const { key } = node;
      const set = new Set(node.values);
      return (l) => {
        const v = label(l, key);
        return v === undefined || !set.has(v);
      };
    }
    case 'contains': {
      const { key, value } = node;
      return (l) => label(l, key)?.includes(value) ?? false;
    }
    case 'starts with': {
      const { key, value } = node;
      return (l) => label(l, key)?.startsWith(value) ?? false;
    }
    case 'ends with': {
      const { key, value } = node;
      return (l) => label(l, key)?.endsWith(value) ?? false;
    }
    case '!': {
      const inner = compile(node.operand);
      return (l) => !inner(l);
    }
    case '&&': {
      const parts = node.operands.map(compile);
      return (l) => parts.every((m) => m(l));
    }
    case '||': {
      const parts = node.operands.map(compile);
      return (l) => parts.some((m) => m(l));
    }
  }
}

// --- memoised entry point -------------------------------------------------------------

const CACHE_LIMIT = 50_000;
const cache = new Map<string, Selector | SelectorError>();

function build(text: string): Selector {
  const tree = new Parser(text).parse();
  const matcher = compile(tree);
  return Object.freeze({
    source: text,
    canonical: print(normalise(tree)),
    matches: matcher,
  });
}

/**
 * Parses a selector (memoised: the same text returns the same object).
 * Throws SelectorError naming the position and what was expected.
 */
export function parseSelector(text: string): Selector {
  let entry = cache.get(text);
  if (entry === undefined) {
    try {
      entry = build(text);
    } catch (err) {
      if (!(err instanceof SelectorError)) throw err;
      entry = err;
    }
    if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value!);
    cache.set(text, entry);
  }
  if (entry instanceof SelectorError) throw entry;
  return entry;
}

// --- Kubernetes label selectors -------------------------------------------------------

export interface LabelSelectorRequirement {
  readonly key: string;
  readonly operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  readonly values?: readonly string[];
}

export interface LabelSelector {
  readonly matchLabels?: Readonly<Record<string, string>>;
  readonly matchExpressions?: readonly LabelSelectorRequirement[];
}

/**
 * A Kubernetes LabelSelector as selector text: matchLabels AND matchExpressions;
 * `{}` selects everything. Throws when an expression's values do not fit its operator.
 */
export function labelSelectorToSelector(ls: LabelSelector): string {
  const terms: string[] = [];
  for (const [key, value] of Object.entries(ls.matchLabels ?? {})) {
    terms.push(`${key} == ${quote(value)}`);
  }
  (ls.matchExpressions ?? []).forEach((req, i) => {
    const values = req.values ?? [];
    const where = `matchExpressions[${i}] (key ${JSON.stringify(req.key)})`;
    switch (req.operator) {
      case 'In':
      case 'NotIn':
        if (values.length === 0)
          throw new Error(`${where}: operator ${req.operator} needs at least one value`);
        terms.push(
          `${req.key} ${req.operator === 'In' ? 'in' : 'not in'} {${values.map(quote).join(', ')}}`,
        );
        break;
      case 'Exists':
      case 'DoesNotExist':
        if (values.length > 0)
          throw new Error(`${where}: operator ${req.operator} takes no values`);
        terms.push(req.operator === 'Exists' ? `has(${req.key})` : `!has(${req.key})`);
        break;
      default:
        throw new Error(`${where}: unknown operator ${JSON.stringify(req.operator)}`);
    }
  });
  const text = terms.length === 0 ? 'all()' : terms.join(' && ');
  parseSelector(text); // a key or value the grammar cannot carry fails here, by name
  return text;
}
