/**
 * NetworkPolicy conformance case files (the format of ../shared/netpol-case-format.md):
 * validated at the edge, turned into plain objects the runner trusts. Fields the format
 * does not know are ignored; anything malformed is refused with the JSON path of the
 * offending value (`cases[3].steps[1].expect.deny[0][1]: ...`).
 *
 * Two passes: zod checks the shape, then a semantic pass checks what needs the whole
 * file (pod references, podOrder, matrix sizes, default/deny/allow/matrix agreement,
 * placeholders, and that every policy is one tortie accepts).
 */
import { z } from 'zod';
import { labels as labelsField } from '../../policy/fields.js';
import { parseResource, ResourceError } from '../../policy/resources.js';
import type { Labels } from '../../policy/model.js';
import { expandExpectation, type RawExpectation } from './expect.js';
import { placeholderProblem, substitutePlaceholders } from './placeholders.js';
import { CaseFileError, formatJsonPath, type JsonPath } from './errors.js';

export { CaseFileError, formatJsonPath, type JsonPath } from './errors.js';

export const PROTOCOL_NAMES = ['TCP', 'UDP', 'SCTP'] as const;
export type Protocol = (typeof PROTOCOL_NAMES)[number];

// --- the parsed file -------------------------------------------------------------------

export interface ContainerPort {
  readonly name?: string;
  readonly containerPort: number;
  readonly protocol: Protocol;
}

export interface ModelPod {
  readonly namespace: string;
  readonly name: string;
  /** `namespace/name` */
  readonly key: string;
  readonly labels: Labels;
  /** Every container's ports, in order: what named ports resolve to on this pod. */
  readonly ports: readonly ContainerPort[];
}

export interface Model {
  readonly namespaces: ReadonlyMap<string, Labels>;
  /** In podOrder: row and column order of every matrix. */
  readonly pods: readonly ModelPod[];
  readonly ports: readonly number[];
  readonly protocols: readonly Protocol[];
}

export type ActionKind =
  | 'create-policy'
  | 'update-policy'
  | 'delete-policy'
  | 'set-pod-labels'
  | 'set-namespace-labels'
  | 'none';

export interface Action {
  readonly kind: ActionKind;
  /** The policy an action on a policy names, when it does (informational). */
  readonly policy?: string;
  readonly pod?: string;
  readonly namespace?: string;
  readonly labels?: Labels;
}

export interface Probe {
  readonly port: number;
  readonly protocol: Protocol;
}

export interface Step {
  /** JSON path of the step (`cases[4].steps[1]`, or `cases[4]` for a single-step case). */
  readonly path: string;
  readonly description?: string;
  readonly actions: readonly Action[];
  /** The complete set in force, placeholders not yet substituted. */
  readonly policies: readonly unknown[];
  /** Every model pod's labels in force during this step. */
  readonly podLabels: ReadonlyMap<string, Labels>;
  /** Every model namespace's labels in force during this step. */
  readonly namespaceLabels: ReadonlyMap<string, Labels>;
  readonly probe: Probe;
  /** expected[from][to], indices in podOrder. */
  readonly expected: readonly (readonly boolean[])[];
  /** Marked `requiresSCTP` (with the case requirement "SCTP(some-steps)"). */
  readonly requiresSCTP: boolean;
}

export interface Case {
  readonly id: string;
  readonly path: string;
  readonly description?: string;
  readonly requires: readonly string[];
  readonly steps: readonly Step[];
}

export interface CaseFile {
  readonly source?: string;
  readonly schemaVersion: 1;
  /** `ignore`: the diagonal (a pod reaching its own address) is not judged. */
  readonly selfConnections: 'ignore' | 'judge';
  readonly model: Model;
  readonly cases: readonly Case[];
}

/** Requirements this runner knows; anything else skips the case. */
export const KNOWN_REQUIREMENTS = ['SCTP', 'SCTP(some-steps)', 'IPv4', 'pod-ip-substitution'];

// --- shape (zod) --------------------------------------------------------------------------

const name = z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, {
  message: 'expected a DNS label (lower-case letters, digits and "-")',
});
const podKey = z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, {
  message: 'expected a pod as "namespace/name"',
});
const port = z.number().int().min(1).max(65535);
const protocol = z.enum(PROTOCOL_NAMES);
const labels = labelsField;

const containerPortShape = z.object({
  name: z.string().optional(),
  containerPort: port,
  protocol: protocol.default('TCP'),
});

const podShape = z.object({
  namespace: name,
  name,
  labels: labels.default({}),
  containers: z
    .array(
      z.object({ name: z.string().optional(), ports: z.array(containerPortShape).default([]) }),
    )
    .default([]),
});

const modelShape = z.object({
  namespaces: z.record(name, z.object({ labels: labels.default({}) })),
  pods: z.array(podShape).min(1),
  podOrder: z.array(podKey).optional(),
  ports: z.array(port).default([]),
  protocols: z.array(protocol).default([]),
});

const pair = z.tuple([podKey, podKey]);

const expectShape = z.object({
  default: z.boolean().optional(),
  deny: z.array(pair).optional(),
  allow: z.array(pair).optional(),
  matrix: z.array(z.string()).optional(),
});

const ACTION_KINDS = [
  'create-policy',
  'update-policy',
  'delete-policy',
  'set-pod-labels',
  'set-namespace-labels',
  'none',
] as const;

// The case format names an action by `op`; files written by hand may say `action` or `type`.
const actionObject = z.object({
  op: z.enum(ACTION_KINDS).optional(),
  action: z.enum(ACTION_KINDS).optional(),
  type: z.enum(ACTION_KINDS).optional(),
  policy: z.string().optional(),
  name: z.string().optional(),
  pod: podKey.optional(),
  namespace: z.string().optional(),
  labels: labels.optional(),
});
const actionShape = z.union([z.enum(ACTION_KINDS), actionObject]);

const probeShape = z.object({ port, protocol: protocol.default('TCP') });

const stepShape = z.object({
  description: z.string().optional(),
  actions: z.array(actionShape).optional(),
  policies: z.array(z.unknown()).optional(),
  podLabels: z.record(podKey, labels).optional(),
  namespaceLabels: z.record(name, labels).optional(),
  probe: probeShape,
  expect: expectShape,
  requiresSCTP: z.boolean().optional(),
});

const caseShape = z.object({
  id: z.string().min(1),
  description: z.string().optional(),
  requires: z.array(z.string()).default([]),
  policies: z.array(z.unknown()).optional(),
  podLabels: z.record(podKey, labels).optional(),
  namespaceLabels: z.record(name, labels).optional(),
  probe: probeShape.optional(),
  expect: expectShape.optional(),
  steps: z.array(stepShape).min(1).optional(),
});

const fileShape = z.object({
  schemaVersion: z.literal(1),
  selfConnections: z.enum(['ignore', 'judge']).default('judge'),
  model: modelShape,
  cases: z.array(caseShape),
});

type FileShape = z.infer<typeof fileShape>;
type StepShape = z.infer<typeof stepShape>;
type CaseShape = z.infer<typeof caseShape>;

const errorMap: z.ZodErrorMap = (issue, ctx) => {
  if (issue.code === z.ZodIssueCode.invalid_type) {
    return {
      message:
        issue.received === 'undefined'
          ? 'required field is missing'
          : `expected ${issue.expected}, got ${issue.received}`,
    };
  }
  if (issue.code === z.ZodIssueCode.invalid_enum_value) {
    return {
      message: `${JSON.stringify(issue.received)} is not one of ${issue.options.join(', ')}`,
    };
  }
  if (issue.code === z.ZodIssueCode.invalid_literal) {
    return {
      message: `expected ${JSON.stringify(issue.expected)}, got ${JSON.stringify(issue.received)}`,
    };
  }
  return { message: ctx.defaultError };
};

/** The most useful issue of a failed parse: for a union, the deepest of its branches' issues. */
function firstIssue(issues: readonly z.ZodIssue[]): z.ZodIssue {
  const issue = issues[0]!;
  if (issue.code === z.ZodIssueCode.invalid_union) {
    const inner = issue.unionErrors.flatMap((e) => e.issues);
    const deepest = inner.reduce((a, b) => (b.path.length > a.path.length ? b : a), inner[0]!);
    return deepest ?? issue;
  }
  return issue;
}

// --- semantics --------------------------------------------------------------------------

/** Parses a case file's text (JSON); `source` (a file name) prefixes error messages. */
export function parseCaseFileText(text: string, source?: string): CaseFile {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new CaseFileError('(top level)', `not JSON: ${(e as Error).message}`, source);
  }
  return parseCaseFile(raw, source);
}

/** Validates a parsed case file; throws CaseFileError naming the JSON path. */
export function parseCaseFile(raw: unknown, source?: string): CaseFile {
  const result = fileShape.safeParse(raw, { errorMap });
  if (!result.success) {
    const issue = firstIssue(result.error.issues);
    throw new CaseFileError(formatJsonPath(issue.path), issue.message, source);
  }
  try {
    return check(result.data, source);
  } catch (e) {
    if (e instanceof CaseFileError && e.source === undefined && source !== undefined) {
      throw new CaseFileError(e.path, e.reason, source);
    }
    throw e;
  }
}

function refuse(path: JsonPath, reason: string): never {
  throw new CaseFileError(formatJsonPath(path), reason);
}

function check(file: FileShape, source: string | undefined): CaseFile {
  const model = checkModel(file);
  const selfIgnored = file.selfConnections === 'ignore';
  const ids = new Map<string, number>();
  const cases = file.cases.map((c, i) => {
    const seen = ids.get(c.id);
    if (seen !== undefined)
      refuse(['cases', i, 'id'], `duplicate id ${JSON.stringify(c.id)} (also cases[${seen}])`);
    ids.set(c.id, i);
    return checkCase(c, i, model, selfIgnored);
  });
  return {
    ...(source === undefined ? {} : { source }),
    schemaVersion: 1,
    selfConnections: file.selfConnections,
    model,
    cases,
  };
}

function checkModel(file: FileShape): Model {
  const m = file.model;
  const namespaces = new Map(Object.entries(m.namespaces).map(([n, v]) => [n, v.labels]));
  const byKey = new Map<string, ModelPod>();
  m.pods.forEach((p, i) => {
    const key = `${p.namespace}/${p.name}`;
    if (!namespaces.has(p.namespace)) {
      refuse(
        ['model', 'pods', i, 'namespace'],
        `namespace ${JSON.stringify(p.namespace)} is not in model.namespaces`,
      );
    }
    if (byKey.has(key)) refuse(['model', 'pods', i], `duplicate pod ${key}`);
    const names = new Map<string, string>();
    const ports: ContainerPort[] = [];
    p.containers.forEach((c, ci) =>
      c.ports.forEach((cp, pi) => {
        if (cp.name !== undefined) {
          const where = `containers[${ci}].ports[${pi}]`;
          if (names.has(cp.name)) {
            refuse(
              ['model', 'pods', i, 'containers', ci, 'ports', pi, 'name'],
              `port name ${JSON.stringify(cp.name)} is used twice in pod ${key} (also ${names.get(cp.name)})`,
            );
          }
          names.set(cp.name, where);
        }
        ports.push(
          cp.name === undefined ? { containerPort: cp.containerPort, protocol: cp.protocol } : cp,
        );
      }),
    );
    byKey.set(key, { namespace: p.namespace, name: p.name, key, labels: p.labels, ports });
  });
  let order = [...byKey.keys()];
  if (m.podOrder !== undefined) {
    const seen = new Set<string>();
    m.podOrder.forEach((k, i) => {
      if (!byKey.has(k)) refuse(['model', 'podOrder', i], `no pod ${k} in model.pods`);
      if (seen.has(k)) refuse(['model', 'podOrder', i], `${k} is listed twice`);
      seen.add(k);
    });
    const missing = order.filter((k) => !seen.has(k));
    if (missing.length > 0) refuse(['model', 'podOrder'], `does not list ${missing.join(', ')}`);
    order = [...m.podOrder];
  }
  return {
    namespaces,
    pods: order.map((k) => byKey.get(k)!),
    ports: [...new Set(m.ports)],
    protocols: [...new Set(m.protocols)],
  };
}

/** A single-step case is a case with one step whose actions are unstated. */
function stepsOf(c: CaseShape, at: JsonPath): { step: StepShape; path: JsonPath }[] {
  const single = c.probe !== undefined || c.expect !== undefined;
  if (c.steps !== undefined) {
    if (single) {
      refuse(at, 'a case has either probe and expect (one step) or steps, not both');
    }
    return c.steps.map((step, i) => ({ step, path: [...at, 'steps', i] }));
  }
  if (c.probe === undefined) refuse([...at, 'probe'], 'required field is missing (or give steps)');
  if (c.expect === undefined)
    refuse([...at, 'expect'], 'required field is missing (or give steps)');
  return [{ step: { probe: c.probe, expect: c.expect }, path: at }];
}

function checkCase(c: CaseShape, index: number, model: Model, selfIgnored: boolean): Case {
  const at: JsonPath = ['cases', index];
  const modelPodLabels = new Map(model.pods.map((p) => [p.key, p.labels]));
  const somestepsSCTP = c.requires.includes('SCTP(some-steps)');

  // Inherited from step to step: policies, and labels changed by actions (podLabels /
  // namespaceLabels, when given, state the labels in force outright).
  let policies: readonly unknown[] = c.policies ?? [];
  let podLabels = overlay(modelPodLabels, c.podLabels, [...at, 'podLabels'], 'pod', modelPodLabels);
  let namespaceLabels = overlay(
    model.namespaces,
    c.namespaceLabels,
    [...at, 'namespaceLabels'],
    'namespace',
    model.namespaces,
  );
  checkPolicies(policies, [...at, 'policies'], model);

  const steps = stepsOf(c, at).map(({ step, path }): Step => {
    const actions = (step.actions ?? []).map((a, i) => toAction(a, [...path, 'actions', i], model));
    if (step.policies !== undefined) {
      policies = step.policies;
      checkPolicies(policies, [...path, 'policies'], model);
    }
    if (step.podLabels !== undefined) {
      podLabels = overlay(
        modelPodLabels,
        step.podLabels,
        [...path, 'podLabels'],
        'pod',
        modelPodLabels,
      );
    } else {
      const changed = new Map(podLabels);
      for (const a of actions) if (a.kind === 'set-pod-labels') changed.set(a.pod!, a.labels!);
      podLabels = changed;
    }
    if (step.namespaceLabels !== undefined) {
      namespaceLabels = overlay(
        model.namespaces,
        step.namespaceLabels,
        [...path, 'namespaceLabels'],
        'namespace',
        model.namespaces,
      );
    } else {
      const changed = new Map(namespaceLabels);
      for (const a of actions) {
        if (a.kind === 'set-namespace-labels') changed.set(a.namespace!, a.labels!);
      }
      namespaceLabels = changed;
    }
    if (step.requiresSCTP === true && !somestepsSCTP) {
      refuse([...path, 'requiresSCTP'], 'needs "SCTP(some-steps)" in the case\'s requires');
    }
    const expected = expandExpectation(
      step.expect as RawExpectation,
      model.pods.map((p) => p.key),
      selfIgnored,
      [...path, 'expect'],
    );
    return {
      path: formatJsonPath(path),
      ...(step.description === undefined ? {} : { description: step.description }),
      actions,
      policies,
      podLabels,
      namespaceLabels,
      probe: step.probe,
      expected,
      requiresSCTP: step.requiresSCTP === true,
    };
  });
  return {
    id: c.id,
    path: formatJsonPath(at),
    ...(c.description === undefined ? {} : { description: c.description }),
    requires: c.requires,
    steps,
  };
}

/** `base` with the maps in `given` replacing those of the keys it names. */
function overlay(
  base: ReadonlyMap<string, Labels>,
  given: Record<string, Labels> | undefined,
  at: JsonPath,
  what: 'pod' | 'namespace',
  known: ReadonlyMap<string, Labels>,
): ReadonlyMap<string, Labels> {
  const out = new Map(base);
  for (const [key, labels] of Object.entries(given ?? {})) {
    if (!known.has(key)) refuse([...at, key], `no ${what} ${key} in the model`);
    out.set(key, labels);
  }
  return out;
}

function toAction(a: z.infer<typeof actionShape>, at: JsonPath, model: Model): Action {
  if (typeof a === 'string') {
    if (a === 'set-pod-labels' || a === 'set-namespace-labels') {
      refuse(
        at,
        `${a} needs an object with ${a === 'set-pod-labels' ? 'pod' : 'namespace'} and labels`,
      );
    }
    return { kind: a };
  }
  const named = (['op', 'action', 'type'] as const).filter((k) => a[k] !== undefined);
  if (named.length === 0) refuse([...at, 'op'], 'required field is missing');
  const kind = a[named[0]!]!;
  for (const k of named.slice(1)) {
    if (a[k] !== kind) refuse([...at, k], `says ${a[k]} but ${named[0]} says ${kind}`);
  }
  const policy = a.policy ?? a.name;
  switch (kind) {
    case 'set-pod-labels':
      if (a.pod === undefined) refuse([...at, 'pod'], 'required field is missing');
      if (!model.pods.some((p) => p.key === a.pod))
        refuse([...at, 'pod'], `no pod ${a.pod} in the model`);
      if (a.labels === undefined) refuse([...at, 'labels'], 'required field is missing');
      return { kind, pod: a.pod, labels: a.labels };
    case 'set-namespace-labels':
      if (a.namespace === undefined) refuse([...at, 'namespace'], 'required field is missing');
      if (!model.namespaces.has(a.namespace)) {
        refuse([...at, 'namespace'], `no namespace ${a.namespace} in the model`);
      }
      if (a.labels === undefined) refuse([...at, 'labels'], 'required field is missing');
      return { kind, namespace: a.namespace, labels: a.labels };
    default:
      return policy === undefined ? { kind } : { kind, policy };
  }
}

/** Addresses that stand in for pod IPs when policies are checked before a lab exists. */
function stubAddresses(model: Model): {
  podIp: (key: string) => string | undefined;
  podCidr: string;
} {
  const index = new Map(model.pods.map((p, i) => [p.key, i]));
  return {
    podIp: (key) => {
      const i = index.get(key);
      return i === undefined ? undefined : `10.255.${(i >> 8) & 0xff}.${i & 0xff}`;
    },
    podCidr: '10.255.0.0/16',
  };
}

/**
 * Every policy must be an object tortie accepts (with placeholders standing for addresses),
 * in a namespace of the model, and no two may share an identity.
 */
function checkPolicies(policies: readonly unknown[], at: JsonPath, model: Model): void {
  const stub = stubAddresses(model);
  const identities = new Map<string, number>();
  policies.forEach((p, i) => {
    const problem = placeholderProblem(p, (k) => stub.podIp(k) !== undefined);
    if (problem !== undefined) refuse([...at, i, ...problem.path], problem.reason);
    const obj = substitutePlaceholders(p, { podIp: (k) => stub.podIp(k)!, podCidr: stub.podCidr });
    let parsed;
    try {
      parsed = parseResource(obj);
    } catch (e) {
      if (e instanceof ResourceError) {
        const inner = e.path === '' ? '' : e.path.startsWith('[') ? e.path : `.${e.path}`;
        throw new CaseFileError(`${formatJsonPath([...at, i])}${inner}`, e.reason);
      }
      throw e;
    }
    if (parsed.kind === 'Namespace') {
      refuse(
        [...at, i, 'kind'],
        'namespaces come from model.namespaces (and namespaceLabels), not from policies',
      );
    }
    const ns = parsed.metadata.namespace;
    if (ns !== undefined && !model.namespaces.has(ns)) {
      refuse(
        [...at, i, 'metadata', 'namespace'],
        `namespace ${JSON.stringify(ns)} is not in model.namespaces`,
      );
    }
    const identity = `${parsed.apiVersion}/${parsed.kind} ${ns ?? ''}/${parsed.metadata.name}`;
    const twin = identities.get(identity);
    if (twin !== undefined) {
      refuse(
        [...at, i, 'metadata', 'name'],
        `${identity} is also ${formatJsonPath([...at, twin])}`,
      );
    }
    identities.set(identity, i);
  });
}
