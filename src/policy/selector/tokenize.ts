/**
 * The selector tokenizer, with Calico's rules (libcalico-go lib/selector/tokenizer):
 *
 * - Only space and tab separate tokens; any other character outside a string is an error.
 * - A label is 1 to 512 of `A-Z a-z 0-9 _ . / -`.
 * - An operator is only read right after a label: `==` and `!=` anywhere, the words
 *   `contains`, `in`, and `starts with`, `ends with`, `not in`, whose two words may be
 *   written together (`startswith`, `endswith`, `notin`) or apart by spaces and tabs.
 *   A word operator must end at a non-label character (`a inside` is not `in`).
 * - `has(`, `all(` and `global(` are functions only when `(` follows the name directly;
 *   `has (a)` is the label `has` followed by `(`.
 * - A string runs from `"` or `'` to the next quote of the same kind; nothing is escaped.
 */

/** Labels longer than this are refused, as Calico does. */
export const MAX_LABEL_LENGTH = 512;

export type TokenKind =
  | 'label'
  | 'string'
  | '{'
  | '}'
  | ','
  | '=='
  | '!='
  | 'in'
  | '!'
  | 'not in'
  | 'contains'
  | 'starts with'
  | 'ends with'
  | 'all()'
  | 'has'
  | 'global()'
  | '('
  | ')'
  | '&&'
  | '||'
  | 'eof';

export interface Token {
  readonly kind: TokenKind;
  /** The label name, the string's contents or the has() key; absent for the others. */
  readonly value?: string;
  /** 0-based offset of the token's first character in the selector text. */
  readonly position: number;
}

export class TokenizeError extends Error {
  override readonly name = 'TokenizeError';
  constructor(
    readonly position: number,
    readonly reason: string,
  ) {
    super(`${reason} at position ${position}`);
  }
}

const PUNCTUATION: Readonly<Record<string, TokenKind>> = {
  '(': '(',
  ')': ')',
  '{': '{',
  '}': '}',
  ',': ',',
};

/** The operators read after a label, longest-first where one is a prefix of another. */
const WORD_OPERATORS: readonly (readonly [TokenKind, readonly string[]])[] = [
  ['contains', ['contains']],
  ['starts with', ['starts', 'with']],
  ['ends with', ['ends', 'with']],
  ['not in', ['not', 'in']],
  ['in', ['in']],
];

export function isLabelChar(c: string | undefined): boolean {
  return c !== undefined && /^[A-Za-z0-9_./-]$/.test(c);
}

function isSpace(c: string | undefined): boolean {
  return c === ' ' || c === '\t';
}

/** Splits selector text into tokens, ending with an `eof` token. Throws TokenizeError. */
export function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let pos = 0;

  const skipSpace = (): void => {
    while (isSpace(text[pos])) pos++;
  };
  const fail = (at: number, reason: string): never => {
    throw new TokenizeError(at, reason);
  };
  const readLabel = (what: string): string => {
    const start = pos;
    while (isLabelChar(text[pos])) pos++;
    const label = text.slice(start, pos);
    if (label === '') fail(start, `expected ${what} but found ${describeAt(text, start)}`);
    if (label.length > MAX_LABEL_LENGTH)
      fail(start, `label is ${label.length} characters long; the limit is ${MAX_LABEL_LENGTH}`);
    return label;
  };
  /** Reads `words` (spaces and tabs allowed between them) if they come next and end a word. */
  const readWords = (words: readonly string[]): boolean => {
    let at = pos;
    for (const word of words) {
      if (!text.startsWith(word, at)) return false;
      at += word.length;
      // As Calico: spaces after every word of a two-word operator (so `notin` and
      // `not  in` are both `not in`); the word-end check comes after them.
      if (words.length > 1) while (isSpace(text[at])) at++;
    }
    if (isLabelChar(text[at])) return false;
    pos = at;
    return true;
  };
  /** Reads `name(` + spaces + `)`, the argument-less functions. */
  const readCall = (name: string, kind: TokenKind, start: number): boolean => {
    if (!text.startsWith(`${name}(`, pos)) return false;
    pos += name.length + 1;
    skipSpace();
    if (text[pos] !== ')')
      fail(pos, `expected ")" after "${name}(" but found ${describeAt(text, pos)}`);
    pos++;
    tokens.push({ kind, position: start });
    return true;
  };

  for (;;) {
    skipSpace();
    const start = pos;
    const c = text[pos];
    if (c === undefined) {
      tokens.push({ kind: 'eof', position: start });
      return tokens;
    }
    const punctuation = PUNCTUATION[c];
    if (punctuation !== undefined) {
      pos++;
      tokens.push({ kind: punctuation, position: start });
      continue;
    }
    switch (c) {
      case '"':
      case "'": {
        const end = text.indexOf(c, pos + 1);
        if (end < 0) fail(start, `unterminated string (missing closing ${c})`);
        tokens.push({ kind: 'string', value: text.slice(pos + 1, end), position: start });
        pos = end + 1;
        continue;
      }
      case '=':
        if (text[pos + 1] !== '=') fail(start, 'expected "==" (a single "=" is not an operator)');
        pos += 2;
        tokens.push({ kind: '==', position: start });
        continue;
      case '!':
        if (text[pos + 1] === '=') {
          pos += 2;
          tokens.push({ kind: '!=', position: start });
        } else {
          pos++;
          tokens.push({ kind: '!', position: start });
        }
        continue;
      case '&':
      case '|':
        if (text[pos + 1] !== c) fail(start, `expected "${c}${c}"`);
        pos += 2;
        tokens.push({ kind: c === '&' ? '&&' : '||', position: start });
        continue;
    }
    if (tokens.at(-1)?.kind === 'label') {
      const op = WORD_OPERATORS.find(([, words]) => readWords(words));
      if (op === undefined)
        fail(
          start,
          `expected an operator (==, !=, in, not in, contains, starts with, ends with) after label "${tokens.at(-1)!.value!}" but found ${describeAt(text, start)}`,
        );
      tokens.push({ kind: op![0], position: start });
      continue;
    }
    if (text.startsWith('has(', pos)) {
      pos += 4;
      skipSpace();
      const key = readLabel('a label key inside has(');
      skipSpace();
      if (text[pos] !== ')')
        fail(pos, `expected ")" after the label key of has( but found ${describeAt(text, pos)}`);
      pos++;
      tokens.push({ kind: 'has', value: key, position: start });
      continue;
    }
    if (readCall('all', 'all()', start) || readCall('global', 'global()', start)) continue;
    const label = readLabel('a label key, "has(", "all()", "global()", "!" or "("');
    tokens.push({ kind: 'label', value: label, position: start });
  }
}

/** How an error names what it found at a position. */
export function describeAt(text: string, position: number): string {
  if (position >= text.length) return 'the end';
  return JSON.stringify(text[position]);
}
