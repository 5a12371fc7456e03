/**
 * Runs conformance cases against a ConformanceLab: builds the model once (namespaces,
 * pods serving every listed port on every listed protocol), then for each case and step
 * brings the lab to the step's state (labels, policies; only what differs from what is
 * in force), waits for the dataplane, probes every judged cell in parallel and compares.
 *
 * Cells that disagree are probed once more with a longer timeout before they count as
 * wrong (as upstream's suite does): a slow first packet must not fail a case, and a
 * real verdict repeats. Probes the lab cannot make (SCTP here) are skipped, never passed.
 */
import { hasPlaceholders, substitutePlaceholders } from './placeholders.js';
import type { ConformanceLab } from './lab.js';
import {
  KNOWN_REQUIREMENTS,
  type Case,
  type CaseFile,
  type Model,
  type Probe,
  type Protocol,
  type Step,
} from './schema.js';
import type { Labels } from '../../policy/model.js';

/** [from, to, expected, observed] */
export type WrongCell = [from: string, to: string, expected: boolean, observed: boolean];

export type Status = 'pass' | 'fail' | 'skip';

export interface StepResult {
  readonly path: string;
  readonly status: Status;
  /** Why the step was skipped. */
  readonly reason?: string;
  readonly probe: Probe;
  /** The step's actions as written ("create-policy allow-a", "set-pod-labels x/b"). */
  readonly actions: readonly string[];
  readonly wrong: readonly WrongCell[];
  /** Cells that disagreed at first and agreed when probed again. */
  readonly recovered: number;
  readonly probes: number;
  /** Of `probes`, those between pods on different nodes (only labs that know nodes). */
  readonly crossNode?: number;
  readonly ms: number;
}

export interface CaseResult {
  readonly id: string;
  readonly source?: string;
  readonly status: Status;
  /** Why the case was skipped. */
  readonly reason?: string;
  /** What went wrong when the case could not be run to the end (counts as a failure). */
  readonly error?: string;
  readonly steps: readonly StepResult[];
  /** podOrder: the rows and columns of a drawn matrix. */
  readonly pods: readonly string[];
  readonly selfIgnored: boolean;
  readonly ms: number;
}

export interface RunResult {
  readonly cases: CaseResult[];
  readonly passed: number;
  readonly failed: number;
  readonly skipped: number;
  readonly probes: number;
  /** Of `probes`, those between pods on different nodes (only labs that know nodes). */
  readonly crossNodeProbes?: number;
  readonly ms: number;
  readonly lab: string;
}

export interface RunOptions {
  /** First attempt of every probe (default 1000 ms). */
  timeoutMs?: number;
  /** Second attempt of a cell that disagreed (default 2000 ms; 0: no second attempt). */
  retryTimeoutMs?: number;
  /** Only cases whose id matches. */
  filter?: RegExp;
  /** Called as each case ends (streaming output). */
  onCase?: (result: CaseResult) => void;
  /** Stops the run between steps; the case under way is dropped from the results. */
  signal?: AbortSignal;
}

class Interrupted extends Error {}

const DEFAULT_TIMEOUT_MS = 1000;

/** A canonical text of what a lab built for a model: files with equal texts share a lab. */
export function modelFingerprint(model: Model): string {
  return JSON.stringify({
    namespaces: [...model.namespaces].map(([n, l]) => [n, sortedLabels(l)]),
    pods: model.pods.map((p) => [p.key, sortedLabels(p.labels), p.ports]),
    ports: model.ports,
    protocols: model.protocols,
  });
}

function sortedLabels(labels: Labels): [string, string][] {
  return Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

function sameLabels(a: Labels, b: Labels): boolean {
  return JSON.stringify(sortedLabels(a)) === JSON.stringify(sortedLabels(b));
}

/** What a pod serves: every listed port on every listed protocol, and its container ports. */
export function servedPorts(
  model: Model,
  pod: Model['pods'][number],
): { port: number; protocol: Protocol }[] {
  const out = new Map<string, { port: number; protocol: Protocol }>();
  for (const protocol of model.protocols) {
    for (const port of model.ports) out.set(`${protocol}/${port}`, { port, protocol });
  }
  for (const p of pod.ports) {
    out.set(`${p.protocol}/${p.containerPort}`, { port: p.containerPort, protocol: p.protocol });
  }
  return [...out.values()];
}

function describeAction(a: Step['actions'][number]): string {
  const what = a.policy ?? a.pod ?? a.namespace;
  return what === undefined ? a.kind : `${a.kind} ${what}`;
}

/**
 * A lab with a model built in it, and the state in force there (so a step changes only
 * what differs). Files whose models are equal can run one after another on one session.
 */
export class ConformanceSession {
  private readonly podLabels = new Map<string, Labels>();
  private readonly namespaceLabels = new Map<string, Labels>();
  private policies = '[]';
  private readonly fingerprint: string;

  private constructor(
    readonly lab: ConformanceLab,
    readonly model: Model,
    readonly podIps: ReadonlyMap<string, string>,
  ) {
    this.fingerprint = modelFingerprint(model);
    for (const p of model.pods) this.podLabels.set(p.key, p.labels);
    for (const [n, l] of model.namespaces) this.namespaceLabels.set(n, l);
  }

  /** Creates the model's namespaces and pods in `lab`, and waits until the dataplane has them. */
  static async prepare(lab: ConformanceLab, model: Model): Promise<ConformanceSession> {
    for (const [name, labels] of model.namespaces) await lab.createNamespace(name, labels);
    const ips = new Map<string, string>();
    for (const pod of model.pods) {
      const { ip } = await lab.createPod({
        namespace: pod.namespace,
        name: pod.name,
        labels: pod.labels,
        namedPorts: pod.ports.flatMap((p) =>
          p.name === undefined
            ? []
            : [{ name: p.name, port: p.containerPort, protocol: p.protocol }],
        ),
        serve: servedPorts(model, pod).filter((s) => lab.unsupported(s.protocol) === undefined),
      });
      ips.set(pod.key, ip);
    }
    await lab.waitForDataplane();
    return new ConformanceSession(lab, model, ips);
  }

  accepts(model: Model): boolean {
    return modelFingerprint(model) === this.fingerprint;
  }

  /** Runs the file's cases (those `filter` selects), one after another. */
  async run(file: CaseFile, opts: RunOptions = {}): Promise<RunResult> {
    if (!this.accepts(file.model)) {
      throw new Error(
        `${file.source ?? 'case file'}: its model differs from the one this lab was built for`,
      );
    }
    const t0 = performance.now();
    const results: CaseResult[] = [];
    for (const c of file.cases) {
      if (opts.filter !== undefined && !opts.filter.test(c.id)) continue;
      let r: CaseResult;
      try {
        r = await this.runCase(c, file, opts);
      } catch (e) {
        if (e instanceof Interrupted) break;
        throw e;
      }
      results.push(r);
      opts.onCase?.(r);
    }
    return summarize(results, performance.now() - t0, this.lab.description);
  }

  private async runCase(c: Case, file: CaseFile, opts: RunOptions): Promise<CaseResult> {
    const t0 = performance.now();
    const base = {
      id: c.id,
      ...(file.source === undefined ? {} : { source: file.source }),
      pods: this.model.pods.map((p) => p.key),
      selfIgnored: file.selfConnections === 'ignore',
    };
    const skip = this.skipReason(c);
    if (skip !== undefined) {
      return { ...base, status: 'skip', reason: skip, steps: [], ms: performance.now() - t0 };
    }
    const steps: StepResult[] = [];
    try {
      for (const step of c.steps) {
        if (opts.signal?.aborted) throw new Interrupted();
        steps.push(await this.runStep(step, base.selfIgnored, opts));
      }
      if (opts.signal?.aborted) throw new Interrupted();
    } catch (e) {
      if (e instanceof Interrupted) throw e;
      return {
        ...base,
        status: 'fail',
        error: `${c.steps[steps.length]?.path ?? c.path}: ${(e as Error).message}`,
        steps,
        ms: performance.now() - t0,
      };
    }
    const status: Status = steps.some((s) => s.status === 'fail')
      ? 'fail'
      : steps.every((s) => s.status === 'skip')
        ? 'skip'
        : 'pass';
    const reasons = [...new Set(steps.flatMap((s) => (s.reason === undefined ? [] : [s.reason])))];
    return {
      ...base,
      status,
      ...(status === 'skip' ? { reason: reasons.join('; ') } : {}),
      steps,
      ms: performance.now() - t0,
    };
  }

  /** Why the whole case cannot run here, or undefined. */
  private skipReason(c: Case): string | undefined {
    for (const r of c.requires) {
      if (!KNOWN_REQUIREMENTS.includes(r)) return `requires ${r}, which this runner does not know`;
      if (r === 'SCTP') {
        const why = this.lab.unsupported('SCTP');
        if (why !== undefined) return `requires SCTP: ${why}`;
      }
    }
    return undefined;
  }

  /** Brings the lab to the step's state: only what differs from what is in force. */
  private async apply(step: Step): Promise<void> {
    for (const [pod, labels] of step.podLabels) {
      if (!sameLabels(this.podLabels.get(pod) ?? {}, labels)) {
        await this.lab.setPodLabels(pod, labels);
        this.podLabels.set(pod, labels);
      }
    }
    for (const [ns, labels] of step.namespaceLabels) {
      if (!sameLabels(this.namespaceLabels.get(ns) ?? {}, labels)) {
        await this.lab.setNamespaceLabels(ns, labels);
        this.namespaceLabels.set(ns, labels);
      }
    }
    const policies = step.policies.map((p) =>
      hasPlaceholders(p)
        ? substitutePlaceholders(p, {
            podIp: (key) => {
              const ip = this.podIps.get(key);
              if (ip === undefined) throw new Error(`$POD_IP(${key}): no such pod`);
              return ip;
            },
            podCidr: this.lab.podCidr,
          })
        : p,
    );
    const text = JSON.stringify(policies);
    if (text !== this.policies) {
      // Forget what was in force first: a refused set leaves the lab's state unknown.
      this.policies = '';
      await this.lab.setPolicies(policies);
      this.policies = text;
    }
    await this.lab.waitForDataplane();
  }

  private async runStep(step: Step, selfIgnored: boolean, opts: RunOptions): Promise<StepResult> {
    const t0 = performance.now();
    const common = {
      path: step.path,
      probe: step.probe,
      actions: step.actions.map(describeAction),
    };
    // The state is applied even when the probes are skipped: later steps build on it.
    await this.apply(step);
    const why = this.lab.unsupported(step.probe.protocol);
    if (why !== undefined) {
      return {
        ...common,
        status: 'skip',
        reason: `${step.probe.protocol} probes: ${why}`,
        wrong: [],
        recovered: 0,
        probes: 0,
        ms: performance.now() - t0,
      };
    }
    const keys = this.model.pods.map((p) => p.key);
    const cells: [number, number][] = [];
    keys.forEach((_f, f) =>
      keys.forEach((_t, t) => {
        if (!(selfIgnored && f === t)) cells.push([f, t]);
      }),
    );
    const { port, protocol } = step.probe;
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const probeAll = (list: [number, number][], ms: number) =>
      Promise.all(
        list.map(async ([f, t]) => ({
          f,
          t,
          observed: await this.lab.probe(keys[f]!, keys[t]!, port, protocol, ms),
        })),
      );
    const nodeOf = this.lab.nodeOf?.bind(this.lab);
    const across = (list: readonly { f: number; t: number }[]) =>
      nodeOf === undefined
        ? 0
        : list.filter(({ f, t }) => nodeOf(keys[f]!) !== nodeOf(keys[t]!)).length;
    let probes = cells.length;
    let crossNode = across(cells.map(([f, t]) => ({ f, t })));
    let wrong = (await probeAll(cells, timeoutMs)).filter(
      (r) => r.observed !== step.expected[r.f]![r.t],
    );
    const firstWrong = wrong.length;
    const retryMs = opts.retryTimeoutMs ?? 2 * timeoutMs;
    if (wrong.length > 0 && retryMs > 0) {
      probes += wrong.length;
      crossNode += across(wrong);
      wrong = (
        await probeAll(
          wrong.map((w) => [w.f, w.t]),
          retryMs,
        )
      ).filter((r) => r.observed !== step.expected[r.f]![r.t]);
    }
    return {
      ...common,
      status: wrong.length === 0 ? 'pass' : 'fail',
      wrong: wrong.map((w): WrongCell => [
        keys[w.f]!,
        keys[w.t]!,
        step.expected[w.f]![w.t]!,
        w.observed,
      ]),
      recovered: firstWrong - wrong.length,
      probes,
      ...(nodeOf === undefined ? {} : { crossNode }),
      ms: performance.now() - t0,
    };
  }
}

export function summarize(cases: CaseResult[], ms: number, lab: string): RunResult {
  const steps = cases.flatMap((c) => c.steps);
  const counted = steps.filter((s) => s.crossNode !== undefined);
  return {
    cases,
    passed: cases.filter((c) => c.status === 'pass').length,
    failed: cases.filter((c) => c.status === 'fail').length,
    skipped: cases.filter((c) => c.status === 'skip').length,
    probes: steps.reduce((m, s) => m + s.probes, 0),
    ...(counted.length === 0
      ? {}
      : { crossNodeProbes: counted.reduce((m, s) => m + s.crossNode!, 0) }),
    ms,
    lab,
  };
}

/**
 * Runs several files: one lab per distinct model (files with equal models share it),
 * each lab closed when its files are done, also on failure.
 */
export async function runCaseFiles(
  files: readonly CaseFile[],
  createLab: () => Promise<ConformanceLab>,
  opts: RunOptions = {},
): Promise<RunResult> {
  const t0 = performance.now();
  const groups = new Map<string, CaseFile[]>();
  for (const f of files) {
    const key = modelFingerprint(f.model);
    groups.set(key, [...(groups.get(key) ?? []), f]);
  }
  const cases: CaseResult[] = [];
  let description = '';
  for (const group of groups.values()) {
    if (opts.signal?.aborted) break;
    const selected = group.filter((f) => f.cases.some((c) => opts.filter?.test(c.id) ?? true));
    if (selected.length === 0) continue;
    const lab = await createLab();
    description = lab.description;
    try {
      const session = await ConformanceSession.prepare(lab, selected[0]!.model);
      for (const f of selected) {
        if (opts.signal?.aborted) break;
        cases.push(...(await session.run(f, opts)).cases);
      }
    } finally {
      await lab.close();
    }
  }
  return summarize(cases, performance.now() - t0, description);
}
