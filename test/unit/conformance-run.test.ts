/**
 * The runner against labs without packets (the reference evaluator behind a TestLab with
 * knobs): what it probes and sets, retries, skips, self connections, the output formats,
 * the CLI, and the whole project case set judged by the evaluator.
 */
import { Command } from 'commander';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { registerLabCommands, runConformanceCommand } from '../../src/cli/lab.js';
import {
  ConformanceSession,
  EvaluatorLab,
  formatCase,
  formatHuman,
  formatSummary,
  loadCaseFiles,
  parseCaseFile,
  runCaseFiles,
  toJsonReport,
  type ConformanceLab,
  type ConformancePodSpec,
  type Protocol,
  type RunOptions,
} from '../../src/lab/conformance/index.js';
import type { Labels } from '../../src/policy/model.js';

// --- a small model: namespaces x and y, pods a and b in each ---------------------------

const KEYS = ['x/a', 'x/b', 'y/a', 'y/b'];

function model(): Record<string, unknown> {
  return {
    namespaces: {
      x: { labels: { ns: 'x', 'kubernetes.io/metadata.name': 'x' } },
      y: { labels: { ns: 'y', 'kubernetes.io/metadata.name': 'y' } },
    },
    pods: KEYS.map((k) => {
      const [namespace, name] = k.split('/');
      return {
        namespace,
        name,
        labels: { pod: name },
        containers: [
          {
            name: 'cont-80-tcp',
            ports: [{ name: 'serve-80-tcp', containerPort: 80, protocol: 'TCP' }],
          },
          {
            name: 'cont-81-udp',
            ports: [{ name: 'serve-81-udp', containerPort: 81, protocol: 'UDP' }],
          },
        ],
      };
    }),
    podOrder: KEYS,
    ports: [80, 81],
    protocols: ['TCP', 'UDP', 'SCTP'],
  };
}

function np(namespace: string, name: string, spec: Record<string, unknown>) {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name, namespace },
    spec,
  };
}

const denyIngressX = np('x', 'deny-ingress', { podSelector: {}, policyTypes: ['Ingress'] });

/** x/a and x/b closed for ingress: with TCP 80 every row's x columns are 0. */
const DENY_X_MATRIX = ['0011', '0011', '0011', '0011'];

function file(cases: unknown[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { schemaVersion: 1, selfConnections: 'ignore', model: model(), cases, ...extra };
}

interface Call {
  op: string;
  args: unknown[];
}

/**
 * The evaluator lab with knobs: calls recorded, protocols refused, cells inverted (a
 * "dataplane bug"), and cells whose first probe lies (a slow first packet).
 */
class TestLab implements ConformanceLab {
  readonly inner = new EvaluatorLab();
  readonly calls: Call[] = [];
  readonly description = 'test lab';
  readonly podCidr = this.inner.podCidr;
  refuse = new Map<Protocol, string>();
  /** "from to" pairs (or "from to port") whose answer is inverted on every probe. */
  inverted = new Set<string>();
  /** "from to" pairs whose first answer is inverted. */
  flaky = new Set<string>();
  closed = false;

  unsupported(protocol: Protocol): string | undefined {
    return this.refuse.get(protocol);
  }
  async createNamespace(name: string, labels: Labels): Promise<void> {
    this.calls.push({ op: 'createNamespace', args: [name, labels] });
    await this.inner.createNamespace(name, labels);
  }
  async createPod(spec: ConformancePodSpec): Promise<{ ip: string }> {
    this.calls.push({ op: 'createPod', args: [spec] });
    return this.inner.createPod(spec);
  }
  async setPodLabels(pod: string, labels: Labels): Promise<void> {
    this.calls.push({ op: 'setPodLabels', args: [pod, labels] });
    await this.inner.setPodLabels(pod, labels);
  }
  async setNamespaceLabels(namespace: string, labels: Labels): Promise<void> {
    this.calls.push({ op: 'setNamespaceLabels', args: [namespace, labels] });
    await this.inner.setNamespaceLabels(namespace, labels);
  }
  async setPolicies(policies: readonly unknown[]): Promise<void> {
    this.calls.push({ op: 'setPolicies', args: [policies] });
    await this.inner.setPolicies(policies);
  }
  async waitForDataplane(): Promise<void> {
    this.calls.push({ op: 'waitForDataplane', args: [] });
    await this.inner.waitForDataplane();
  }
  async probe(
    from: string,
    to: string,
    port: number,
    protocol: Protocol,
    timeoutMs: number,
  ): Promise<boolean> {
    this.calls.push({ op: 'probe', args: [from, to, port, protocol, timeoutMs] });
    if (this.refuse.has(protocol)) throw new Error(`probed ${protocol}, which this lab refuses`);
    const truth = await this.inner.probe(from, to, port, protocol);
    const pair = `${from} ${to}`;
    if (this.flaky.delete(pair)) return !truth;
    return this.inverted.has(pair) || this.inverted.has(`${pair} ${port}`) ? !truth : truth;
  }
  async close(): Promise<void> {
    this.closed = true;
  }
  ops(op: string): Call[] {
    return this.calls.filter((c) => c.op === op);
  }
}

// --- helpers ------------------------------------------------------------------------

async function run(raw: unknown, lab = new TestLab(), opts: RunOptions = {}) {
  const f = parseCaseFile(raw);
  const session = await ConformanceSession.prepare(lab, f.model);
  const result = await session.run(f, { retryTimeoutMs: 0, ...opts });
  return { lab, result, session };
}

const denyCase = (
  expectX: Record<string, unknown> = { matrix: DENY_X_MATRIX },
  probe = { port: 80, protocol: 'TCP' },
) => ({
  id: 'deny-x',
  policies: [denyIngressX],
  probe,
  expect: expectX,
});

describe('the runner', () => {
  it('builds the model: namespaces, pods with named ports, serving every port on every protocol the lab has', async () => {
    const lab = new TestLab();
    lab.refuse.set('SCTP', 'no SCTP here');
    await run(file([]), lab);
    expect(lab.ops('createNamespace').map((c) => c.args[0])).toEqual(['x', 'y']);
    const pods = lab.ops('createPod').map((c) => c.args[0] as ConformancePodSpec);
    expect(pods.map((p) => `${p.namespace}/${p.name}`)).toEqual(KEYS);
    expect(pods[0]!.namedPorts).toEqual([
      { name: 'serve-80-tcp', port: 80, protocol: 'TCP' },
      { name: 'serve-81-udp', port: 81, protocol: 'UDP' },
    ]);
    expect(pods[0]!.serve).toEqual([
      { port: 80, protocol: 'TCP' },
      { port: 81, protocol: 'TCP' },
      { port: 80, protocol: 'UDP' },
      { port: 81, protocol: 'UDP' },
    ]);
  });

  it('passes a case whose expectation holds, probing every cell but the diagonal once', async () => {
    const { lab, result } = await run(file([denyCase()]));
    expect(result).toMatchObject({ passed: 1, failed: 0, skipped: 0, probes: 12 });
    const probes = lab.ops('probe').map((c) => c.args);
    expect(probes).toHaveLength(12);
    expect(probes.every(([from, to]) => from !== to)).toBe(true);
    expect(probes.every(([, , port, protocol]) => port === 80 && protocol === 'TCP')).toBe(true);
  });

  it('judges the diagonal when selfConnections is not "ignore"', async () => {
    const raw = file([
      denyCase({
        default: true,
        deny: [
          ['x/a', 'x/b'],
          ['x/b', 'x/a'],
          ['y/a', 'x/a'],
          ['y/a', 'x/b'],
          ['y/b', 'x/a'],
          ['y/b', 'x/b'],
        ],
      }),
    ]);
    delete raw.selfConnections;
    const { result } = await run(raw);
    // The evaluator says a pod may not reach itself through an ingress-isolating policy.
    expect(result.cases[0]!.steps[0]!.wrong).toEqual([
      ['x/a', 'x/a', true, false],
      ['x/b', 'x/b', true, false],
    ]);
    expect(result.probes).toBe(16);
  });

  it('fails a case whose cells differ and names them [from, to, expected, observed]', async () => {
    const lab = new TestLab();
    lab.inverted.add('y/a x/b').add('x/a y/b');
    const { result } = await run(file([denyCase()]), lab);
    expect(result).toMatchObject({ passed: 0, failed: 1 });
    expect(result.cases[0]!.steps[0]!.wrong).toEqual([
      ['x/a', 'y/b', true, false],
      ['y/a', 'x/b', false, true],
    ]);
  });

  it('probes a disagreeing cell again, with the longer timeout, before it counts as wrong', async () => {
    const lab = new TestLab();
    lab.flaky.add('x/a y/a');
    lab.inverted.add('y/b x/a');
    const { result } = await run(file([denyCase()]), lab, { timeoutMs: 300, retryTimeoutMs: 900 });
    const step = result.cases[0]!.steps[0]!;
    expect(step.wrong).toEqual([['y/b', 'x/a', false, true]]);
    expect(step.recovered).toBe(1);
    expect(step.probes).toBe(14);
    const retries = lab
      .ops('probe')
      .filter((c) => c.args[4] === 900)
      .map((c) => `${c.args[0]} ${c.args[1]}`);
    expect(retries.sort()).toEqual(['x/a y/a', 'y/b x/a']);
  });

  it("brings the lab to each step's state, changing only what differs", async () => {
    const raw = file([
      {
        id: 'steps',
        steps: [
          { policies: [denyIngressX], probe: { port: 80 }, expect: { matrix: DENY_X_MATRIX } },
          {
            actions: ['none'],
            probe: { port: 81, protocol: 'UDP' },
            expect: { matrix: DENY_X_MATRIX },
          },
          {
            actions: [{ action: 'set-pod-labels', pod: 'y/a', labels: { pod: 'a', t: '1' } }],
            probe: { port: 80 },
            expect: { matrix: DENY_X_MATRIX },
          },
          { policies: [], podLabels: {}, probe: { port: 80 }, expect: { default: true } },
        ],
      },
      { id: 'next', policies: [], probe: { port: 80 }, expect: { default: true } },
    ]);
    const { lab, result } = await run(raw);
    expect(result.failed).toBe(0);
    expect(lab.ops('setPolicies').map((c) => (c.args[0] as unknown[]).length)).toEqual([1, 0]);
    expect(lab.ops('setPodLabels').map((c) => c.args)).toEqual([
      ['y/a', { pod: 'a', t: '1' }],
      ['y/a', { pod: 'a' }],
    ]);
    expect(lab.ops('setNamespaceLabels')).toEqual([]);
    // Every step waits for the dataplane before its probes (and once after the pods).
    expect(lab.ops('waitForDataplane')).toHaveLength(1 + 5);
  });

  it('resets labels a case changed before the next case', async () => {
    const raw = file([
      {
        id: 'one',
        namespaceLabels: { y: { ns: 'y', team: 'blue' } },
        policies: [],
        probe: { port: 80 },
        expect: { default: true },
      },
      { id: 'two', policies: [], probe: { port: 80 }, expect: { default: true } },
    ]);
    const { lab } = await run(raw);
    expect(lab.ops('setNamespaceLabels').map((c) => c.args)).toEqual([
      ['y', { ns: 'y', team: 'blue' }],
      ['y', { ns: 'y', 'kubernetes.io/metadata.name': 'y' }],
    ]);
  });

  it('hands the lab policies with its own addresses in place of the placeholders', async () => {
    const policy = np('x', 'p', {
      podSelector: { matchLabels: { pod: 'a' } },
      egress: [{ to: [{ ipBlock: { cidr: '$POD_CIDR', except: ['$POD_IP(y/b)/32'] } }] }],
      policyTypes: ['Egress'],
    });
    const raw = file([
      {
        id: 'ipblock',
        requires: ['pod-ip-substitution'],
        policies: [policy],
        probe: { port: 80 },
        expect: { default: true, deny: [['x/a', 'y/b']] },
      },
    ]);
    const { lab, result, session } = await run(raw);
    expect(result.failed).toBe(0);
    const given = JSON.stringify(lab.ops('setPolicies')[0]!.args[0]);
    expect(given).toContain(`"cidr":"${lab.podCidr}"`);
    expect(given).toContain(`"${session.podIps.get('y/b')}/32"`);
    expect(given).not.toContain('$POD');
  });

  it('skips a case that requires SCTP on a lab without it, touching nothing', async () => {
    const lab = new TestLab();
    lab.refuse.set('SCTP', 'Node.js has no SCTP sockets');
    const raw = file([
      { ...denyCase(undefined, { port: 80, protocol: 'SCTP' }), requires: ['SCTP'] },
    ]);
    const { result } = await run(raw, lab);
    expect(result).toMatchObject({ passed: 0, failed: 0, skipped: 1, probes: 0 });
    expect(result.cases[0]!.reason).toBe('requires SCTP: Node.js has no SCTP sockets');
    expect(lab.ops('setPolicies')).toEqual([]);
  });

  it('runs an SCTP case on a lab that has SCTP', async () => {
    const raw = file([
      { ...denyCase(undefined, { port: 80, protocol: 'SCTP' }), requires: ['SCTP'] },
    ]);
    const { result } = await run(raw);
    expect(result).toMatchObject({ passed: 1, probes: 12 });
  });

  it('skips only the SCTP steps of an "SCTP(some-steps)" case, and never passes them', async () => {
    const lab = new TestLab();
    lab.refuse.set('SCTP', 'no SCTP');
    const raw = file([
      {
        id: 'mixed',
        requires: ['SCTP(some-steps)'],
        steps: [
          {
            policies: [denyIngressX],
            probe: { port: 80, protocol: 'TCP' },
            expect: { matrix: DENY_X_MATRIX },
          },
          {
            requiresSCTP: true,
            probe: { port: 80, protocol: 'SCTP' },
            expect: { matrix: DENY_X_MATRIX },
          },
        ],
      },
      {
        id: 'only-sctp',
        requires: ['SCTP(some-steps)'],
        steps: [
          {
            requiresSCTP: true,
            policies: [],
            probe: { port: 80, protocol: 'SCTP' },
            expect: { default: true },
          },
        ],
      },
    ]);
    const { result } = await run(raw, lab);
    expect(result.cases.map((c) => c.status)).toEqual(['pass', 'skip']);
    expect(result.cases[0]!.steps.map((s) => s.status)).toEqual(['pass', 'skip']);
    expect(result.cases[0]!.steps[1]!.reason).toBe('SCTP probes: no SCTP');
    expect(result.cases[1]!.reason).toBe('SCTP probes: no SCTP');
    expect(lab.ops('probe').every((c) => c.args[3] !== 'SCTP')).toBe(true);
  });

  it('skips an SCTP probe even when the case forgot to require SCTP', async () => {
    const lab = new TestLab();
    lab.refuse.set('SCTP', 'no SCTP');
    const { result } = await run(file([denyCase(undefined, { port: 80, protocol: 'SCTP' })]), lab);
    expect(result.cases[0]!.status).toBe('skip');
  });

  it('skips a case with a requirement it does not know; IPv4 and pod-ip-substitution are met', async () => {
    const raw = file([
      {
        id: 'v6',
        requires: ['IPv6'],
        policies: [],
        probe: { port: 80 },
        expect: { default: true },
      },
      {
        id: 'v4',
        requires: ['IPv4', 'pod-ip-substitution'],
        policies: [],
        probe: { port: 80 },
        expect: { default: true },
      },
    ]);
    const { result } = await run(raw);
    expect(result.cases.map((c) => [c.id, c.status, c.reason])).toEqual([
      ['v6', 'skip', 'requires IPv6, which this runner does not know'],
      ['v4', 'pass', undefined],
    ]);
  });

  it('a policy the lab refuses fails its case with the step path, and the run goes on', async () => {
    const lab = new TestLab();
    lab.setPolicies = async () => {
      throw new Error('the datastore is read-only');
    };
    const raw = file([
      denyCase(),
      { id: 'open', policies: [], probe: { port: 80 }, expect: { default: true } },
    ]);
    const { result } = await run(raw, lab);
    expect(result.cases.map((c) => c.status)).toEqual(['fail', 'fail']);
    expect(result.cases[0]!.error).toBe('cases[0]: the datastore is read-only');
  });

  it('stops between steps when its signal is aborted, dropping the case under way', async () => {
    const abort = new AbortController();
    const lab = new TestLab();
    const probe = lab.probe.bind(lab);
    lab.probe = async (...args) => {
      abort.abort();
      return probe(...args);
    };
    const raw = file([
      {
        id: 'two-steps',
        steps: [
          { policies: [], probe: { port: 80 }, expect: { default: true } },
          { policies: [], probe: { port: 81 }, expect: { default: true } },
        ],
      },
      { id: 'never', policies: [], probe: { port: 80 }, expect: { default: true } },
    ]);
    const { result } = await run(raw, lab, { signal: abort.signal });
    expect(result.cases).toEqual([]);
    expect(new Set(lab.ops('probe').map((c) => c.args[2]))).toEqual(new Set([80]));
  });

  it('runs only the cases the filter selects', async () => {
    const raw = file([
      denyCase(),
      { id: 'open', policies: [], probe: { port: 80 }, expect: { default: true } },
    ]);
    const { result } = await run(raw, new TestLab(), { filter: /^op/ });
    expect(result.cases.map((c) => c.id)).toEqual(['open']);
  });
});

/** The test lab on two "nodes": x/a and y/a on n0, x/b and y/b on n1. */
class TwoNodeTestLab extends TestLab {
  nodeOf(pod: string): string | undefined {
    return pod.endsWith('/a') ? 'n0' : 'n1';
  }
}

describe('probes across nodes', () => {
  it('are counted per step and in the run, retries included, on a lab that knows nodes', async () => {
    const lab = new TwoNodeTestLab();
    // A wrong cell across nodes (x/a on n0 -> x/b on n1) is probed twice.
    lab.inverted.add('x/a x/b');
    const { result } = await run(file([denyCase()]), lab, { retryTimeoutMs: 100 });
    // 12 cells: pairs on one node are x/a-y/a, y/a-x/a, x/b-y/b, y/b-x/b (4); 8 across.
    expect(result.cases[0]!.steps[0]).toMatchObject({ probes: 13, crossNode: 9 });
    expect(result).toMatchObject({ probes: 13, crossNodeProbes: 9 });
    expect(formatSummary(result)).toMatch(/; 13 probes \(69% across nodes\) in .* \(test lab\)$/);
    expect(toJsonReport(result)).toMatchObject({ probes: 13, crossNodeProbes: 9 });
  });

  it('are not counted (nor shown) on a lab that does not know nodes', async () => {
    const { result } = await run(file([denyCase()]));
    expect(result.crossNodeProbes).toBeUndefined();
    expect(result.cases[0]!.steps[0]!.crossNode).toBeUndefined();
    expect(formatSummary(result)).not.toMatch(/across nodes/);
    expect(Object.keys(toJsonReport(result))).not.toContain('crossNodeProbes');
  });

  it('are summed over the labs of several files', async () => {
    const other = { ...model(), protocols: ['TCP', 'UDP'] };
    const result = await runCaseFiles(
      [parseCaseFile(file([denyCase()])), parseCaseFile({ ...file([denyCase()]), model: other })],
      async () => new TwoNodeTestLab(),
      { retryTimeoutMs: 0 },
    );
    expect(result).toMatchObject({ passed: 2, probes: 24, crossNodeProbes: 16 });
  });
});

describe('several files', () => {
  it('share one lab when their models are equal, and get their own otherwise; every lab is closed', async () => {
    const a = parseCaseFile(file([denyCase()]));
    const b = parseCaseFile(
      file([{ id: 'open', policies: [], probe: { port: 80 }, expect: { default: true } }]),
    );
    const other = file([
      { id: 'other', policies: [], probe: { port: 80 }, expect: { default: true } },
    ]);
    (other.model as { ports: number[] }).ports = [80];
    const c = parseCaseFile(other);
    const labs: TestLab[] = [];
    const result = await runCaseFiles([a, b, c], async () => {
      labs.push(new TestLab());
      return labs.at(-1)!;
    });
    expect(labs).toHaveLength(2);
    expect(labs.every((l) => l.closed)).toBe(true);
    expect(result.cases.map((x) => x.id)).toEqual(['deny-x', 'open', 'other']);
    expect(result.passed).toBe(3);
  });

  it('close the lab when a case cannot even start', async () => {
    const lab = new TestLab();
    lab.createPod = async () => {
      throw new Error('no address left');
    };
    await expect(
      runCaseFiles([parseCaseFile(file([denyCase()]))], async () => lab),
    ).rejects.toThrow('no address left');
    expect(lab.closed).toBe(true);
  });
});

describe('output', () => {
  async function mixed() {
    const lab = new TestLab();
    lab.refuse.set('SCTP', 'no SCTP');
    lab.inverted.add('y/a x/b 80');
    const raw = file([
      { id: 'open', policies: [], probe: { port: 81 }, expect: { default: true } },
      denyCase(),
      {
        id: 'sctp',
        requires: ['SCTP'],
        policies: [],
        probe: { port: 80, protocol: 'SCTP' },
        expect: { default: true },
      },
    ]);
    return (await run(raw, lab)).result;
  }

  it('a line per case: PASS, FAIL with the wrong cells drawn as a matrix, SKIP with why; then a summary', async () => {
    const result = await mixed();
    const text = formatHuman(result).replace(/\d+\.\d s/g, 'T s');
    expect(text).toBe(
      [
        'PASS  open  (1 step, T s)',
        'FAIL  deny-x',
        '    step, TCP/80: 1 of 12 cells wrong',
        '           x/a x/b y/a y/b',
        '      x/a    -   .   .   .',
        '      x/b    .   -   .   .',
        '      y/a    .   1   -   .',
        '      y/b    .   .   .   -',
        '    (row = client, column = server; . as expected, 1 connected but expected blocked, 0 blocked but expected connected, - not judged)',
        'SKIP  sctp: requires SCTP: no SCTP',
        '',
        '3 cases: 1 passed, 1 failed, 1 skipped; 24 probes in T s (test lab)',
      ].join('\n'),
    );
  });

  it('a failing step of several names its number, actions and probe', async () => {
    const lab = new TestLab();
    lab.inverted.add('x/a y/b');
    const raw = file([
      {
        id: 'two-steps',
        steps: [
          {
            actions: ['create-policy'],
            policies: [denyIngressX],
            probe: { port: 80 },
            expect: { matrix: DENY_X_MATRIX },
          },
          {
            actions: [{ action: 'delete-policy', policy: 'x/deny-ingress' }],
            policies: [],
            probe: { port: 81, protocol: 'UDP' },
            expect: { default: true },
          },
        ],
      },
    ]);
    const { result } = await run(raw, lab);
    expect(formatCase(result.cases[0]!)).toContain(
      '    step 1/2 (create-policy), TCP/80: 1 of 12 cells wrong',
    );
    expect(formatCase(result.cases[0]!)).toContain(
      '    step 2/2 (delete-policy x/deny-ingress), UDP/81: 1 of 12 cells wrong',
    );
    expect(formatCase(result.cases[0]!)).toContain('      x/a    -   .   .   0');
  });

  it('--json: {cases: [{id, status, steps: [{wrong: [[from, to, expected, observed]]}]}], passed, failed, skipped, probes}', async () => {
    const report = toJsonReport(await mixed());
    expect(Object.keys(report)).toEqual(['cases', 'passed', 'failed', 'skipped', 'probes']);
    expect(report).toMatchObject({ passed: 1, failed: 1, skipped: 1, probes: 24 });
    expect(report.cases.map((c) => [c.id, c.status])).toEqual([
      ['open', 'pass'],
      ['deny-x', 'fail'],
      ['sctp', 'skip'],
    ]);
    expect(report.cases[1]!.steps[0]!.wrong).toEqual([['y/a', 'x/b', false, true]]);
    expect(report.cases[2]).toMatchObject({ reason: 'requires SCTP: no SCTP', steps: [] });
    expect(JSON.parse(JSON.stringify(report))).toEqual(report);
  });

  it('the summary counts steps skipped inside cases that ran', async () => {
    const lab = new TestLab();
    lab.refuse.set('SCTP', 'no SCTP');
    const raw = file([
      {
        id: 'mixed',
        requires: ['SCTP(some-steps)'],
        steps: [
          { policies: [], probe: { port: 80 }, expect: { default: true } },
          { requiresSCTP: true, probe: { port: 80, protocol: 'SCTP' }, expect: { default: true } },
        ],
      },
    ]);
    const { result } = await run(raw, lab);
    expect(formatSummary(result)).toMatch(
      /^1 case: 1 passed, 0 failed, 0 skipped \(and 1 steps of other cases\); 12 probes in/,
    );
    expect(formatCase(result.cases[0]!)).toMatch(
      /^PASS {2}mixed {2}\(2 steps, .*; 1 of 2 steps skipped \(SCTP probes: no SCTP\)\)$/,
    );
  });
});

describe('tortie lab conformance', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tortie-conformance-'));
  const write = (name: string, raw: unknown) => {
    const path = join(dir, name);
    writeFileSync(path, JSON.stringify(raw));
    return path;
  };

  it('is registered under "lab", reusing a lab command that exists', () => {
    const program = new Command();
    const existing = program.command('lab').description('mine');
    existing.command('up');
    registerLabCommands(program);
    const lab = program.commands.filter((c) => c.name() === 'lab');
    expect(lab).toHaveLength(1);
    expect(lab[0]!.commands.map((c) => c.name())).toEqual(['up', 'conformance']);
    const conformance = lab[0]!.commands[1]!;
    expect(conformance.options.map((o) => o.long)).toEqual(
      expect.arrayContaining([
        '--cases',
        '--json',
        '--id',
        '--filter',
        '--timeout',
        '--evaluator',
        '--nodes',
        '--encap',
      ]),
    );
  });

  it('refuses bad arguments before anything runs', async () => {
    const parse = (...args: string[]) => {
      const program = new Command().exitOverride().configureOutput({ writeErr: () => undefined });
      registerLabCommands(program);
      program.commands[0]!.commands.forEach((c) =>
        c.exitOverride().configureOutput({ writeErr: () => undefined }),
      );
      return program.parseAsync(['node', 'tortie', 'lab', 'conformance', ...args]);
    };
    await expect(parse('--cases', 'x.json', '--filter', '(')).rejects.toThrow(
      /is not a regular expression/,
    );
    await expect(parse('--cases', 'x.json', '--id', 'Bad_Id')).rejects.toThrow(
      /use 1-12 lower-case letters or digits/,
    );
    await expect(parse('--cases', 'x.json', '--timeout', '5')).rejects.toThrow(/give milliseconds/);
    await expect(parse('--cases', 'x.json', '--nodes', '0')).rejects.toThrow(
      /give a number of nodes, 1-50/,
    );
    await expect(parse('--cases', 'x.json', '--nodes', '2.5')).rejects.toThrow(
      /give a number of nodes/,
    );
    await expect(parse('--cases', 'x.json', '--nodes', 'two')).rejects.toThrow(
      /give a number of nodes/,
    );
    await expect(parse('--cases', 'x.json', '--encap', 'gre')).rejects.toThrow(
      /"gre": use ipip, none or vxlan/,
    );
    await expect(parse('--cases', 'x.json', '--encap', 'vxlan')).rejects.toThrow(
      /--encap vxlan is for --dataplane iptables/,
    );
    await expect(parse('--cases', 'x.json', '--nodes', '1', '--encap', 'none')).rejects.toThrow(
      /--encap is for labs of 2 nodes or more/,
    );
    await expect(parse('--cases', 'x.json', '--dataplane', 'ebpf')).rejects.toThrow(
      /"ebpf": use bpf or iptables/,
    );
    await expect(
      parse('--cases', 'x.json', '--dataplane', 'iptables', '--nodes', '2', '--encap', 'ipip'),
    ).rejects.toThrow(/--dataplane iptables cannot encapsulate IPIP/);
    await expect(parse()).rejects.toThrow(/--cases/);
  });

  it('refuses --encap with --nodes 1, and an id too long for a lab of several nodes', async () => {
    const good = write('good-for-options.json', file([denyCase()]));
    await expect(
      runConformanceCommand({ cases: [good], json: false, timeout: 500, nodes: 1, encap: 'none' }),
    ).rejects.toThrow(/--encap is for labs of 2 nodes or more/);
    await expect(
      runConformanceCommand({ cases: [good], json: false, timeout: 500, id: 'toolongid1' }),
    ).rejects.toThrow(/a lab of 2 nodes takes 1-8 lower-case letters or digits/);
  });

  it('a malformed file is refused naming the file and the JSON path, before a lab exists', async () => {
    const path = write(
      'bad.json',
      file([
        {
          id: 'c',
          policies: [],
          probe: { port: 80 },
          expect: { default: true, deny: [['x/a', 'q/q']] },
        },
      ]),
    );
    await expect(
      runConformanceCommand({ cases: [path], json: false, timeout: 500 }),
    ).rejects.toThrow(`${path}: cases[0].expect.deny[0][1]: no pod q/q in the model`);
    await expect(
      runConformanceCommand({ cases: [join(dir, 'missing.json')], json: false, timeout: 500 }),
    ).rejects.toThrow(/missing\.json: no such file or directory/);
  });

  it('with --evaluator: exit 0 when nothing fails, 1 when something does; --json prints the report', async () => {
    const good = write('good.json', file([denyCase()]));
    const bad = write('bad-expectation.json', file([denyCase({ default: true })]));
    const lines: string[] = [];
    expect(
      await runConformanceCommand(
        { cases: [good], json: false, timeout: 500, evaluator: true },
        (l) => lines.push(l),
      ),
    ).toBe(0);
    expect(lines[0]).toMatch(/^PASS {2}deny-x/);
    expect(lines.at(-1)).toMatch(
      /^\n1 case: 1 passed, 0 failed, 0 skipped; 12 probes in .* \(reference evaluator, no packets\)$/,
    );
    const json: string[] = [];
    expect(
      await runConformanceCommand(
        { cases: [good, bad], json: true, timeout: 500, evaluator: true },
        (l) => json.push(l),
      ),
    ).toBe(1);
    expect(json).toHaveLength(1);
    const report = JSON.parse(json[0]!) as {
      failed: number;
      cases: { id: string; status: string }[];
    };
    expect(report.failed).toBe(1);
    expect(report.cases.map((c) => c.status)).toEqual(['pass', 'fail']);
  });
});

describe("the project's case set, judged by the reference evaluator", () => {
  it('agrees with every expectation (SCTP included: the evaluator has it)', async () => {
    const files = loadCaseFiles(['test/conformance']);
    const result = await runCaseFiles(files, async () => new EvaluatorLab(), { retryTimeoutMs: 0 });
    const failures = result.cases.filter((c) => c.status !== 'pass').map(formatCase);
    expect(failures.join('\n')).toBe('');
    expect(result.cases.length).toBeGreaterThanOrEqual(40);
  });
});
