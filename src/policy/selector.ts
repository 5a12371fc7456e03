/**
 * Calico's label selector grammar: parse, canonicalise, match. The tokens are Calico's
 * (see ./selector/tokenize.ts: space and tab only, labels up to 512 characters, the
 * one-word `startswith`/`endswith`/`notin`); the grammar over them is:
 *
 *   expr    := and ('||' and)*
 *   and     := unary ('&&' unary)*
 *   unary   := '!'* primary                       (each '!' flips; `!!x` is x)
 *   primary := '(' expr ')' | 'all()' | 'global()' | 'has(' key ')' | key op
 *   op      := '==' string | '!=' string | 'contains' string
 *            | 'starts with' string | 'ends with' string
 *            | 'in' set | 'not in' set
 *   set     := '{' [string (',' string)* [',']] '}'   (a trailing comma is allowed)
 *
 * The empty selector means all(). `global()` matches every label set, as Calico's parser
 * does; its meaning in a rule's namespaceSelector (non-namespaced peers only) is not
 * implemented by tortie's policy, so policy fields refuse it (see `usesGlobal`).
 * A missing label never equals a value, so `k != "v"` and `k not in {...}` match
 * endpoints without the label, as in Calico and Kubernetes.
 */
import type { Labels } from './model.js';
import { describeAt, tokenize, TokenizeError, type Token } from './selector/tokenize.js';

export { MAX_LABEL_LENGTH } from './selector/tokenize.js';

export interface Selector {
  /** The text as given. */
  readonly source: string;
  /** A normalised spelling: equal for selectors that differ only in spelling. */
  readonly canonical: string;
  /** Calico's own canonical spelling (`String()` in libcalico-go), as calicoctl prints it. */
  readonly calicoForm: string;
  /** Whether `global()` appears: it has a meaning only in a rule's namespaceSelector. */
  readonly usesGlobal: boolean;
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

type ValueOp = '==' | '!=' | 'contains' | 'starts with' | 'ends with';
type SetOp = 'in' | 'not in';

type Node =
  | { readonly op: 'all' | 'global' }
  | { readonly op: 'has'; readonly key: string }
  | { readonly op: ValueOp; readonly key: string; readonly value: string }
  | { readonly op: SetOp; readonly key: string; readonly values: readonly string[] }
  | { readonly op: '!'; readonly operand: Node }
  | { readonly op: '&&' | '||'; readonly operands: readonly Node[] };

const VALUE_OPS: ReadonlySet<string> = new Set<ValueOp>([
  '==',
  '!=',
  'contains',
  'starts with',
  'ends with',
]);

class Parser {
  private readonly tokens: Token[];
  private at = 0;

  constructor(private readonly text: string) {
    try {
      this.tokens = tokenize(text);
    } catch (err) {
      if (err instanceof TokenizeError) throw new SelectorError(text, err.position, err.reason);
      throw err;
    }
  }

  parse(): Node {
    if (this.peek().kind === 'eof') return { op: 'all' };
    const node = this.parseOr();
    if (this.peek().kind !== 'eof') this.fail(`unexpected ${this.describeNext()}`);
    return node;
  }

  private peek(): Token {
    return this.tokens[this.at]!;
  }

  private next(): Token {
    const token = this.tokens[this.at]!;
    if (token.kind !== 'eof') this.at++;
    return token;
  }

  private eat(kind: Token['kind']): boolean {
    if (this.peek().kind !== kind) return false;
    this.at++;
    return true;
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

  /** As Calico: a run of `!` flips once per `!`, so an even run negates nothing. */
  private parseUnary(): Node {
    let negated = false;
    while (this.eat('!')) negated = !negated;
    const node = this.parsePrimary();
    return negated ? { op: '!', operand: node } : node;
  }

  private parsePrimary(): Node {
    const token = this.peek();
    this.next();
    switch (token.kind) {
      case '(': {
        const inner = this.parseOr();
        if (!this.eat(')')) this.fail(`expected ")" but found ${this.describeNext()}`);
        return inner;
      }
      case 'all()':
        return { op: 'all' };
      case 'global()':
        return { op: 'global' };
      case 'has':
        return { op: 'has', key: token.value! };
      case 'label':
        return this.parseComparison(token.value!);
      default:
        return this.failAt(token, 'expected a label key, "has(", "all()", "global()", "!" or "("');
    }
  }

  private parseComparison(key: string): Node {
    const op = this.peek();
    this.next();
    if (VALUE_OPS.has(op.kind)) {
      return { op: op.kind as ValueOp, key, value: this.readString(`after "${op.kind}"`) };
    }
    if (op.kind === 'in' || op.kind === 'not in') {
      return { op: op.kind, key, values: this.readSet(op.kind) };
    }
    return this.failAt(op, `expected an operator after label "${key}"`);
  }

  private readString(where: string): string {
    const token = this.peek();
    if (token.kind !== 'string')
      this.fail(`expected a quoted value ${where} but found ${this.describeNext()}`);
    this.at++;
    return token.value!;
  }

  private readSet(op: SetOp): string[] {
    if (!this.eat('{'))
      this.fail(`expected a set "{...}" after "${op}" but found ${this.describeNext()}`);
    const values: string[] = [];
    let afterValue = false;
    while (this.peek().kind === 'string') {
      values.push(this.next().value!);
      afterValue = !this.eat(',');
      if (afterValue) break;
    }
    if (!this.eat('}')) {
      const expected = afterValue ? '"," or "}"' : 'a quoted value or "}"';
      this.fail(`expected ${expected} but found ${this.describeNext()}`);
    }
    return values;
  }

  private describeNext(): string {
    const token = this.peek();
    return token.kind === 'eof' ? 'the end' : describeAt(this.text, token.position);
  }

  private fail(reason: string): never {
    throw new SelectorError(this.text, this.peek().position, reason);
  }

  /** Fails at `token`, naming what was found there. */
  private failAt(token: Token, reason: string): never {
    const found = token.kind === 'eof' ? 'the end' : describeAt(this.text, token.position);
    throw new SelectorError(this.text, token.position, `${reason} but found ${found}`);
  }
}

// --- canonical form -------------------------------------------------------------------

function quote(value: string): string {
  return value.includes('"') ? `'${value}'` : `"${value}"`;
}

/** Flattens nested &&/|| chains, sorts and de-duplicates their operands. */
function normalise(node: Node): Node {
  switch (node.op) {
    case '!': {
      // `!!x` is x: the printed form of a double negation would re-parse as x anyway.
      // Checked after the operand is normalised: `!(!a && !a)` becomes `!!a` only then.
      const operand = normalise(node.operand);
      return operand.op === '!' ? operand.operand : { op: '!', operand };
    }
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
    case 'global':
      return 'global()';
    case 'has':
      return `has(${node.key})`;
    case 'in':
    case 'not in':
      return `${node.key} ${node.op} {${node.values.map(quote).join(', ')}}`;
    case '!': {
      const inner = print(node.operand);
      const bare =
        node.operand.op === 'has' ||
        node.operand.op === 'all' ||
        node.operand.op === 'global' ||
        node.operand.op === '!';
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

/** Byte order of the UTF-8 encodings, as Go sorts strings. */
function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * Calico's spelling (libcalico-go's `Selector.String()`): every && and || group in
 * parentheses, `!` written straight before its operand, set members sorted and
 * de-duplicated, nothing else reordered.
 */
function printCalico(node: Node): string {
  switch (node.op) {
    case 'all':
      return 'all()';
    case 'global':
      return 'global()';
    case 'has':
      return `has(${node.key})`;
    case 'in':
    case 'not in': {
      const values = [...new Set(node.values)].sort(compareBytes);
      return `${node.key} ${node.op} {${values.map(quote).join(', ')}}`;
    }
    case '!':
      return `!${printCalico(node.operand)}`;
    case '&&':
    case '||':
      return `(${node.operands.map(printCalico).join(` ${node.op} `)})`;
    default:
      return `${node.key} ${node.op} ${quote(node.value)}`;
  }
}

function usesGlobal(node: Node): boolean {
  switch (node.op) {
    case 'global':
      return true;
    case '!':
      return usesGlobal(node.operand);
    case '&&':
    case '||':
      return node.operands.some(usesGlobal);
    default:
      return false;
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
    case 'global':
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

// --- rewriting ------------------------------------------------------------------------

function withPrefix(node: Node, prefix: string): Node {
  switch (node.op) {
    case 'all':
    case 'global':
      return node;
    case '!':
      return { op: '!', operand: withPrefix(node.operand, prefix) };
    case '&&':
    case '||':
      return { op: node.op, operands: node.operands.map((n) => withPrefix(n, prefix)) };
    default:
      return { ...node, key: `${prefix}${node.key}` };
  }
}

/**
 * The selector with every label key prefixed (`k == "v"` → `pcsa.k == "v"`), in Calico's
 * spelling: what libcalico-go's PrefixVisitor does to a service account selector.
 * Throws SelectorError as parseSelector does.
 */
export function prefixSelectorKeys(text: string, prefix: string): string {
  parseSelector(text); // the error, if any, names the text as written
  return printCalico(withPrefix(new Parser(text).parse(), prefix));
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
    calicoForm: printCalico(tree),
    usesGlobal: usesGlobal(tree),
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
