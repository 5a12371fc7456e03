/**
 * The system check's verdict and how it is shown: one item per program and per kernel
 * feature, each `ok`, `missing` (something a required part needs), `warn` (missing, but
 * only parts not asked for need it) or `skipped` (could not be checked; the reason is
 * itself reported as missing). Pure: the checks are in ./commands.ts and ./kernel.ts.
 */
import type { CommandFound } from './commands.js';
import type { KernelResult } from './kernel.js';
import { PARTS, type Part } from './requirements.js';

export type ItemStatus = 'ok' | 'missing' | 'warn' | 'skipped';

export interface CheckItem {
  readonly kind: 'command' | 'kernel';
  /** The program as tortie runs it, or the feature's id. */
  readonly name: string;
  /** What a reader calls it: "ip (command)", "veth links". */
  readonly title: string;
  readonly parts: readonly Part[];
  readonly status: ItemStatus;
  /** Command: the Debian package. */
  readonly package?: string;
  /** Command: where it was found. */
  readonly path?: string;
  /** Kernel feature: the config option(s). */
  readonly config?: string;
  /** Who uses it (commands). */
  readonly usedBy?: string;
  /** What is wrong, in one line: "not on PATH", "kernel lacks veth links (CONFIG_VETH)". */
  readonly problem?: string;
  /** What the kernel or the tool said; for a skipped item, why it was not checked. */
  readonly detail?: string;
  /** What to do about it: "apt-get install -y iproute2", "a kernel built with CONFIG_VETH=y". */
  readonly fix?: string;
}

export interface SystemReport {
  /** false when an item a required part needs is missing (the command exits 1). */
  readonly ok: boolean;
  /** The parts whose needs are errors; core always. */
  readonly required: readonly Part[];
  readonly items: readonly CheckItem[];
  /** Debian packages of every missing program, for one apt-get line. */
  readonly missingPackages: readonly string[];
  readonly durationMs: number;
}

/** `--for` values: a comma-separated list of parts, or `all`; core is always included. */
export function parseParts(text: string): Part[] | Error {
  const words = text
    .split(',')
    .map((w) => w.trim())
    .filter((w) => w !== '');
  if (words.includes('all')) return [...PARTS];
  const bad = words.filter((w) => !(PARTS as readonly string[]).includes(w));
  if (bad.length > 0)
    return new Error(`unknown part ${bad.join(', ')}: use ${PARTS.join(', ')} or all`);
  return PARTS.filter((p) => p === 'core' || words.includes(p));
}

function statusOf(
  ok: boolean | undefined,
  parts: readonly Part[],
  required: readonly Part[],
): ItemStatus {
  if (ok === true) return 'ok';
  if (ok === undefined) return 'skipped';
  return parts.some((p) => required.includes(p)) ? 'missing' : 'warn';
}

export function buildReport(
  commands: readonly CommandFound[],
  kernel: readonly KernelResult[],
  required: readonly Part[],
  durationMs: number,
): SystemReport {
  const items: CheckItem[] = [];
  for (const c of commands) {
    const r = c.requirement;
    const found = c.path !== undefined;
    items.push({
      kind: 'command',
      name: r.command,
      title: `${r.command} (command)`,
      parts: r.parts,
      status: statusOf(found, r.parts, required),
      package: r.package,
      usedBy: r.usedBy,
      ...(found
        ? { path: c.path }
        : {
            problem: r.command.startsWith('/') ? `${r.command} is missing` : 'not on PATH',
            fix: `apt-get install -y ${r.package}`,
          }),
    });
  }
  for (const k of kernel) {
    const f = k.feature;
    items.push({
      kind: 'kernel',
      name: f.id,
      title: f.title,
      parts: f.parts,
      status: statusOf(k.ok, f.parts, required),
      config: f.config,
      ...(k.problem === undefined ? {} : { problem: k.problem }),
      ...(k.detail === undefined || k.detail === '' ? {} : { detail: k.detail }),
      ...(k.fix === undefined ? {} : { fix: k.fix }),
    });
  }
  const missingPackages = [
    ...new Set(
      items.filter((i) => i.kind === 'command' && i.status !== 'ok').map((i) => i.package!),
    ),
  ].sort();
  return {
    ok: !items.some((i) => i.status === 'missing'),
    required: [...required],
    items,
    missingPackages,
    durationMs: Math.round(durationMs),
  };
}

const STATUS_TEXT: Record<ItemStatus, string> = {
  ok: 'ok',
  missing: 'MISSING',
  warn: 'warn',
  skipped: 'skipped',
};

/** Longest a WHAT TO DO cell gets in the table (--json has the whole text). */
const CELL_MAX = 160;

function cell(text: string): string {
  const one = text.replace(/\s+/g, ' ').trim();
  return one.length <= CELL_MAX ? one : `${one.slice(0, CELL_MAX - 1)}…`;
}

/**
 * One line for an item that is not ok: a program names its package; a kernel feature
 * names its config option in the problem, then what the kernel said.
 */
export function whatToDo(i: CheckItem): string {
  if (i.status === 'ok') return '';
  if (i.status === 'skipped') return i.detail ?? 'not checked';
  const fix = i.kind === 'command' || !i.problem?.startsWith('kernel lacks') ? i.fix : undefined;
  return [i.problem, fix].filter((x) => x).join(': ') + (i.detail ? `: ${i.detail}` : '');
}

/** The table: ITEM / NEEDED BY / STATUS / WHAT TO DO, then a summary line or two. */
export function formatReport(report: SystemReport): string {
  const rows = report.items.map((i) => [
    i.title,
    i.parts.join(','),
    STATUS_TEXT[i.status],
    cell(whatToDo(i)),
  ]);
  const headers = ['ITEM', 'NEEDED BY', 'STATUS', 'WHAT TO DO'];
  const widths = headers.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('   ')
      .trimEnd();
  const out = [line(headers), ...rows.map(line), ''];
  const missing = report.items.filter((i) => i.status === 'missing').length;
  const warned = report.items.filter((i) => i.status === 'warn').length;
  const skipped = report.items.filter((i) => i.status === 'skipped').length;
  const needed = report.required.join(', ');
  out.push(
    missing === 0
      ? `everything ${needed} needs is here` +
          (warned > 0 ? ` (${warned} warning(s) for parts not asked for: see --for)` : '')
      : `${missing} item(s) that ${needed} need are missing` +
          (warned > 0 ? `, ${warned} warning(s)` : ''),
  );
  if (skipped > 0) out.push(`${skipped} item(s) could not be checked (see why above)`);
  if (report.missingPackages.length > 0)
    out.push(`install: apt-get install -y ${report.missingPackages.join(' ')}`);
  out.push(`checked in ${report.durationMs} ms`);
  return out.join('\n');
}

/** The lab's refusal: every missing item, one line each. */
export function formatRefusal(what: string, report: SystemReport): string {
  const lines = report.items.filter((i) => i.status === 'missing').map((i) => `  ${whatToDo(i)}`);
  return [
    `${what}: this machine lacks what it needs:`,
    ...lines,
    'run `tortie node checksystem` for the whole check',
  ].join('\n');
}
