/**
 * JSON with 64-bit integers. Calico stores a block's sequence numbers as uint64 (a new
 * block starts at the time in nanoseconds, ~1.7e18), past the 2^53 a JavaScript number
 * holds exactly: JSON.parse would round them and a rewrite would change them. parseJson
 * reads every integer outside the safe range as a bigint (everything else as JSON.parse
 * does); the record encoders write bigints back digit for digit.
 */

export class JsonSyntaxError extends Error {
  override readonly name = 'JsonSyntaxError';
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const INTEGER = /^-?(?:0|[1-9]\d*)$/;

/** A run of 16 digits or more: a candidate for an integer past 2^53. */
const DIGITS = /-?\d{16,}/g;
const BOUNDARY = /[\w.+-]/;

/** True when the `"` at `q` ends or starts a string (it is not escaped). */
function unescapedQuote(text: string, q: number): boolean {
  let backslashes = 0;
  for (let i = q - 1; i >= 0 && text[i] === '\\'; i--) backslashes++;
  return backslashes % 2 === 0;
}

/**
 * Fast path (JSON.parse does the work): each integer literal past 2^53 is found (runs of
 * digits, outside strings by the count of quotes before them), quoted with the escape
 * \u0000 in front, the text given to JSON.parse, and the marked strings made bigints. A
 * text that already holds the escape \u0000 goes the slow way (a string of its own could
 * then look marked).
 */
export function parseJson(text: string): unknown {
  if (text.includes('\\u0000')) return parseJsonSlowly(text);
  let out = '';
  let copied = 0;
  let scanned = 0;
  let inString = false;
  for (const m of text.matchAll(DIGITS)) {
    const at = m.index;
    for (let q = text.indexOf('"', scanned); q !== -1 && q < at; q = text.indexOf('"', q + 1)) {
      if (unescapedQuote(text, q)) inString = !inString;
      scanned = q + 1;
    }
    const end = at + m[0].length;
    if (
      inString ||
      BOUNDARY.test(text[at - 1] ?? '') ||
      BOUNDARY.test(text[end] ?? '') ||
      Number.isSafeInteger(Number(m[0]))
    )
      continue;
    out += `${text.slice(copied, at)}"\\u0000${m[0]}"`;
    copied = end;
  }
  try {
    if (copied === 0) return JSON.parse(text);
    return JSON.parse(out + text.slice(copied), (_k, v: unknown) =>
      typeof v === 'string' && v.startsWith('\u0000') ? BigInt(v.slice(1)) : v,
    );
  } catch {
    return parseJsonSlowly(text); // for its error message, with the offset
  }
}

/** The reference parser, character by character: what parseJson's fast path must agree with. */
export function parseJsonSlowly(text: string): unknown {
  let at = 0;
  const fail = (what: string): never => {
    throw new JsonSyntaxError(`${what} at offset ${at}`);
  };
  const space = () => {
    while (at < text.length && ' \t\n\r'.includes(text[at]!)) at++;
  };
  const string = (): string => {
    // The token as JSON.parse reads it: escapes and all.
    const start = at;
    at++;
    while (at < text.length && text[at] !== '"') at += text[at] === '\\' ? 2 : 1;
    if (at >= text.length) fail('unterminated string');
    at++;
    try {
      return JSON.parse(text.slice(start, at)) as string;
    } catch {
      return fail('bad string');
    }
  };
  const value = (): unknown => {
    space();
    const c = text[at];
    if (c === '{') {
      at++;
      const out: Record<string, unknown> = {};
      space();
      if (text[at] === '}') {
        at++;
        return out;
      }
      for (;;) {
        space();
        if (text[at] !== '"') fail('expected a key');
        const key = string();
        space();
        if (text[at++] !== ':') fail('expected ":"');
        Object.defineProperty(out, key, {
          value: value(),
          enumerable: true,
          writable: true,
          configurable: true,
        });
        space();
        const next = text[at++];
        if (next === '}') return out;
        if (next !== ',') fail('expected "," or "}"');
      }
    }
    if (c === '[') {
      at++;
      const out: unknown[] = [];
      space();
      if (text[at] === ']') {
        at++;
        return out;
      }
      for (;;) {
        out.push(value());
        space();
        const next = text[at++];
        if (next === ']') return out;
        if (next !== ',') fail('expected "," or "]"');
      }
    }
    if (c === '"') return string();
    for (const [word, v] of [
      ['true', true],
      ['false', false],
      ['null', null],
    ] as const) {
      if (text.startsWith(word, at)) {
        at += word.length;
        return v;
      }
    }
    NUMBER.lastIndex = at;
    const m = NUMBER.exec(text);
    if (!m) return fail('unexpected character');
    at += m[0].length;
    const n = Number(m[0]);
    return INTEGER.test(m[0]) && !Number.isSafeInteger(n) ? BigInt(m[0]) : n;
  };
  const result = value();
  space();
  if (at !== text.length) fail('trailing text');
  return result;
}

/** JSON.stringify, with bigints written as integers. */
export function stringifyJson(value: unknown): string {
  if (typeof value === 'bigint') return value.toString();
  if (Array.isArray(value)) return `[${value.map((v) => stringifyJson(v ?? null)).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const parts = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${JSON.stringify(k)}:${stringifyJson(v)}`);
    return `{${parts.join(',')}}`;
  }
  return JSON.stringify(value);
}
