/**
 * The subset of kubectl's JSONPath templates that `-o jsonpath=` and
 * `-o custom-columns=` take (the same subset calicoctl scripts use):
 *
 *   text {.metadata.name} text        a path, printed in place; several results space-separated
 *   {.items[*].spec.cidr}             [*] every element, [N] one (negative from the end)
 *   {.metadata.labels['app.io/x']}    a quoted member name (for names with dots or slashes)
 *   {range .items[*]}…{end}           the body once per element, `.` being that element
 *   {"\n"} {"\t"}                     a literal (JSON string escapes)
 *   {$.kind} {@.name}                 `$` the document, `@` the current element (as `.`)
 *
 * Missing members print nothing (kubectl's -o jsonpath allows missing keys). Strings print
 * as they are, other values as JSON. Anything else (filters, slices, `..`) is refused with
 * where it is, when the template is parsed.
 *
 * No npm JSONPath library speaks kubectl's template form ({range}/{end}, literals, text
 * between expressions), so this small evaluator is the project's own.
 */
import { InvalidArgumentError } from 'commander';

type Step =
  | { readonly kind: 'member'; readonly name: string }
  | { readonly kind: 'index'; readonly index: number }
  | { readonly kind: 'all' };

export interface Path {
  readonly fromRoot: boolean;
  readonly steps: readonly Step[];
}

type Part =
  | { readonly kind: 'text'; readonly text: string }
  | { readonly kind: 'path'; readonly path: Path }
  | { readonly kind: 'range'; readonly path: Path; readonly body: readonly Part[] };

export interface Template {
  readonly source: string;
  readonly parts: readonly Part[];
}

export class JsonPathError extends InvalidArgumentError {
  constructor(template: string, position: number, reason: string) {
    super(`jsonpath ${JSON.stringify(template)}: ${reason} at position ${position}`);
  }
}

const NAME = /[A-Za-z0-9_-]/;

/** One path (`.a.b[*]`, `$.kind`, `@.x`, `['k']`) starting at `start` of `text`. */
export function parsePath(text: string, template = text, start = 0): Path {
  let i = 0;
  const fail = (reason: string): never => {
    throw new JsonPathError(template, start + i, reason);
  };
  let fromRoot = false;
  if (text[0] === '$') {
    fromRoot = true;
    i = 1;
  } else if (text[0] === '@') {
    i = 1;
  }
  const steps: Step[] = [];
  while (i < text.length) {
    const c = text[i]!;
    if (c === '.') {
      i++;
      if (text[i] === '.') fail('recursive descent (..) is not supported');
      if (text[i] === '*') {
        steps.push({ kind: 'all' });
        i++;
        continue;
      }
      const from = i;
      while (i < text.length && NAME.test(text[i]!)) i++;
      if (i === from) {
        // A lone '.' is the current element.
        if (i === text.length || text[i] === '[') continue;
        fail(`unexpected ${JSON.stringify(text[i])}`);
      }
      steps.push({ kind: 'member', name: text.slice(from, i) });
    } else if (c === '[') {
      const close = text.indexOf(']', i);
      if (close < 0) fail('unclosed [');
      const inner = text.slice(i + 1, close).trim();
      if (inner === '*') steps.push({ kind: 'all' });
      else if (/^-?\d+$/.test(inner)) steps.push({ kind: 'index', index: Number(inner) });
      else if (/^'[^']*'$/.test(inner) || /^"[^"]*"$/.test(inner))
        steps.push({ kind: 'member', name: inner.slice(1, -1) });
      else fail(`[${inner}] is not supported (use [*], [N] or ['name'])`);
      i = close + 1;
    } else if (c === ' ' && text.slice(i).trim() === '') {
      break;
    } else {
      fail(`unexpected ${JSON.stringify(c)} (a path is .name, [N], [*] or ['name'])`);
    }
  }
  return { fromRoot, steps };
}

/** The closing '}' of the expression opened at `open`, skipping quoted text. */
function closingBrace(template: string, open: number): number {
  let quote: string | undefined;
  for (let i = open + 1; i < template.length; i++) {
    const c = template[i]!;
    if (quote !== undefined) {
      if (c === '\\') i++;
      else if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '}') return i;
  }
  throw new JsonPathError(template, open, 'unclosed {');
}

/** Parses a template; errors say where. */
export function parseTemplate(source: string): Template {
  const stack: { path: Path; parts: Part[]; at: number }[] = [];
  const top: Part[] = [];
  const current = () => stack[stack.length - 1]?.parts ?? top;
  let i = 0;
  while (i < source.length) {
    const open = source.indexOf('{', i);
    if (open < 0) {
      current().push({ kind: 'text', text: source.slice(i) });
      break;
    }
    if (open > i) current().push({ kind: 'text', text: source.slice(i, open) });
    const close = closingBrace(source, open);
    const raw = source.slice(open + 1, close);
    const expr = raw.trim();
    const at = open + 1 + raw.indexOf(expr);
    if (expr === 'end') {
      const range = stack.pop();
      if (range === undefined) throw new JsonPathError(source, at, '{end} without {range}');
      current().push({ kind: 'range', path: range.path, body: range.parts });
    } else if (expr.startsWith('range ')) {
      const pathText = expr.slice('range '.length).trim();
      const pathAt = at + expr.indexOf(pathText, 'range '.length);
      stack.push({ path: parsePath(pathText, source, pathAt), parts: [], at });
    } else if (expr.startsWith('"') || expr.startsWith("'")) {
      let text: unknown;
      try {
        text = JSON.parse(expr.startsWith("'") ? `"${expr.slice(1, -1)}"` : expr);
      } catch {
        throw new JsonPathError(source, at, `${expr} is not a quoted string`);
      }
      current().push({ kind: 'text', text: String(text) });
    } else if (expr === '') {
      throw new JsonPathError(source, at, 'empty {}');
    } else {
      current().push({ kind: 'path', path: parsePath(expr, source, at) });
    }
    i = close + 1;
  }
  const unclosed = stack.pop();
  if (unclosed !== undefined) throw new JsonPathError(source, unclosed.at, '{range} without {end}');
  return { source, parts: top };
}

/** Every value the path reaches from `current` (the document is `root`). */
export function evaluatePath(path: Path, root: unknown, current: unknown): unknown[] {
  let values: unknown[] = [path.fromRoot ? root : current];
  for (const step of path.steps) {
    const next: unknown[] = [];
    for (const v of values) {
      if (step.kind === 'member') {
        if (typeof v === 'object' && v !== null && !Array.isArray(v) && step.name in v)
          next.push((v as Record<string, unknown>)[step.name]);
      } else if (step.kind === 'index') {
        if (Array.isArray(v)) {
          const at = step.index < 0 ? v.length + step.index : step.index;
          if (at >= 0 && at < v.length) next.push(v[at]);
        }
      } else if (Array.isArray(v)) {
        next.push(...(v as unknown[]));
      } else if (typeof v === 'object' && v !== null) {
        next.push(...Object.values(v));
      }
    }
    values = next;
  }
  return values.filter((v) => v !== undefined);
}

/** How kubectl prints one result: strings as they are, the rest as JSON. */
export function printValue(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v === null) return 'null';
  return JSON.stringify(v);
}

function render(parts: readonly Part[], root: unknown, current: unknown): string {
  let out = '';
  for (const part of parts) {
    if (part.kind === 'text') out += part.text;
    else if (part.kind === 'path')
      out += evaluatePath(part.path, root, current).map(printValue).join(' ');
    else {
      let items = evaluatePath(part.path, root, current);
      if (items.length === 1 && Array.isArray(items[0])) items = items[0] as unknown[];
      for (const item of items) out += render(part.body, root, item);
    }
  }
  return out;
}

/** The template applied to a document. */
export function executeTemplate(template: Template, document: unknown): string {
  return render(template.parts, document, document);
}
