/**
 * `tortie node checksystem` (as `calicoctl node checksystem`): is every program tortie
 * runs installed, and does the kernel do what the agent, the CNI plugin and the lab ask
 * of it? The lists are in ./requirements.ts; the lab runs the kernel part before it
 * creates anything (preflightLab).
 */
import { performance } from 'node:perf_hooks';
import { findCommands } from './commands.js';
import { checkKernel } from './kernel.js';
import { buildReport, formatRefusal, type SystemReport } from './report.js';
import {
  COMMANDS,
  KERNEL_FEATURES,
  type CommandRequirement,
  type KernelFeatureId,
  type Part,
} from './requirements.js';

export {
  COMMANDS,
  KERNEL_FEATURES,
  PARTS,
  type CommandRequirement,
  type KernelFeature,
  type KernelFeatureId,
  type Part,
} from './requirements.js';
export {
  buildReport,
  formatRefusal,
  formatReport,
  parseParts,
  type CheckItem,
  type ItemStatus,
  type SystemReport,
  whatToDo,
} from './report.js';
export { whichCommand } from './commands.js';
export { checkKernel, type KernelResult } from './kernel.js';

export const DEFAULT_REQUIRED: readonly Part[] = ['core', 'lab'];

export interface CheckSystemOptions {
  /** Parts whose needs are errors (core is always one); default core and lab. */
  readonly required?: readonly Part[];
  /** The PATH programs are looked up on; default the process's. */
  readonly searchPath?: string;
  /** The programs to look for; default every one tortie runs (requirements.ts). */
  readonly commands?: readonly CommandRequirement[];
  /** The kernel features to check; default every one. */
  readonly kernelFeatures?: readonly KernelFeatureId[];
}

export async function checkSystem(opts: CheckSystemOptions = {}): Promise<SystemReport> {
  const started = performance.now();
  const required: Part[] = ['core', ...(opts.required ?? DEFAULT_REQUIRED)];
  const commands = findCommands(
    opts.commands ?? COMMANDS,
    opts.searchPath ?? process.env.PATH ?? '',
  );
  const kernel = await checkKernel(
    opts.kernelFeatures === undefined ? {} : { features: opts.kernelFeatures },
  );
  return buildReport(commands, kernel, [...new Set(required)], performance.now() - started);
}

/** A machine that cannot run what was asked; the message lists every missing item. */
export class PreflightError extends Error {
  override readonly name = 'PreflightError';
  constructor(
    message: string,
    readonly report: SystemReport,
  ) {
    super(message);
  }
}

/** The kernel features a lab needs: every one core or the lab needs. */
export const LAB_KERNEL_FEATURES: readonly KernelFeatureId[] = KERNEL_FEATURES.filter((f) =>
  f.parts.some((p) => p === 'core' || p === 'lab'),
).map((f) => f.id);

let labKernelChecked = false;

/**
 * Before a lab creates anything: the kernel part of the check, for what core and the lab
 * need. Throws a PreflightError naming every missing feature, instead of the lab finding
 * out deep inside as a timeout. Once it passed, later labs of this process skip it (the
 * kernel does not change under a running process).
 */
export async function preflightLab(what = 'lab'): Promise<SystemReport | undefined> {
  if (labKernelChecked) return undefined;
  const report = await checkSystem({
    commands: [],
    kernelFeatures: LAB_KERNEL_FEATURES,
    required: ['lab'],
  });
  if (!report.ok) throw new PreflightError(formatRefusal(what, report), report);
  labKernelChecked = true;
  return report;
}
