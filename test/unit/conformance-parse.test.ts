import { describe, expect, it } from 'vitest';
import {
  CaseFileError,
  expandExpectation,
  hasPlaceholders,
  loadCaseFiles,
  matrixStrings,
  parseCaseFile,
  parseCaseFileText,
  placeholderProblem,
  substitutePlaceholders,
} from '../../src/lab/conformance/index.js';

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

function refusal(raw: unknown): CaseFileError {
  try {
    parseCaseFile(raw);
  } catch (e) {
    if (e instanceof CaseFileError) return e;
    throw e;
  }
  throw new Error('accepted, but should have been refused');
}

const oneCase = (c: Record<string, unknown>) =>
  file([
    {
      id: 'c',
      policies: [],
      probe: { port: 80, protocol: 'TCP' },
      expect: { default: true },
      ...c,
    },
  ]);

describe('a case file', () => {
  it('parses into the model (in podOrder) and cases of steps', () => {
    const f = parseCaseFile(
      file([
        {
          id: 'deny-x',
          policies: [denyIngressX],
          probe: { port: 80, protocol: 'TCP' },
          expect: { matrix: DENY_X_MATRIX },
        },
      ]),
    );
    expect(f.selfConnections).toBe('ignore');
    expect(f.model.pods.map((p) => p.key)).toEqual(KEYS);
    expect(f.model.pods[0]!.ports).toEqual([
      { name: 'serve-80-tcp', containerPort: 80, protocol: 'TCP' },
      { name: 'serve-81-udp', containerPort: 81, protocol: 'UDP' },
    ]);
    expect([...f.model.namespaces.keys()]).toEqual(['x', 'y']);
    expect(f.cases).toHaveLength(1);
    const [step] = f.cases[0]!.steps;
    expect(step!.path).toBe('cases[0]');
    expect(step!.policies).toEqual([denyIngressX]);
    expect(step!.probe).toEqual({ port: 80, protocol: 'TCP' });
    expect(step!.expected[0]).toEqual([false, false, true, true]);
  });

  it('ignores fields it does not know, at every level', () => {
    const raw = file(
      [
        {
          id: 'c',
          owner: 'someone',
          steps: [
            {
              note: 'extra',
              probe: { port: 80, protocol: 'TCP', retries: 3 },
              expect: { default: true, comment: 'all open' },
            },
          ],
        },
      ],
      { generator: 'by hand', description: 'x' },
    );
    const m = raw.model as Record<string, unknown> & { pods: Record<string, unknown>[] };
    m.cluster = 'kind';
    m.pods[0]!.serviceAccount = 'default';
    const f = parseCaseFile(raw);
    expect(f.cases[0]!.steps).toHaveLength(1);
  });

  it('defaults: selfConnections judged, protocol TCP, podOrder = pods order, no requirements', () => {
    const raw = oneCase({ probe: { port: 81 } });
    delete raw.selfConnections;
    delete (raw.model as Record<string, unknown>).podOrder;
    const f = parseCaseFile(raw);
    expect(f.selfConnections).toBe('judge');
    expect(f.cases[0]!.steps[0]!.probe).toEqual({ port: 81, protocol: 'TCP' });
    expect(f.cases[0]!.requires).toEqual([]);
    expect(f.model.pods.map((p) => p.key)).toEqual(KEYS);
  });

  it('podOrder decides the rows and columns', () => {
    const raw = oneCase({ expect: { default: true, deny: [['y/b', 'x/a']] } });
    (raw.model as Record<string, unknown>).podOrder = ['y/b', 'y/a', 'x/b', 'x/a'];
    const f = parseCaseFile(raw);
    expect(f.model.pods.map((p) => p.key)).toEqual(['y/b', 'y/a', 'x/b', 'x/a']);
    expect(f.cases[0]!.steps[0]!.expected[0]).toEqual([true, true, true, false]);
  });

  it('steps inherit the policy set when they do not restate it', () => {
    const f = parseCaseFile(
      file([
        {
          id: 's',
          steps: [
            {
              actions: ['create-policy'],
              policies: [denyIngressX],
              probe: { port: 80 },
              expect: { matrix: DENY_X_MATRIX },
            },
            { actions: ['none'], probe: { port: 81 }, expect: { matrix: DENY_X_MATRIX } },
            {
              actions: [
                { op: 'delete-policy', policy: 'x/deny-ingress' },
                { action: 'delete-policy', policy: 'x/deny-ingress' },
                { type: 'delete-policy', policy: 'x/deny-ingress' },
              ],
              policies: [],
              probe: { port: 80 },
              expect: { default: true },
            },
          ],
        },
      ]),
    );
    const steps = f.cases[0]!.steps;
    expect(steps.map((s) => s.policies.length)).toEqual([1, 1, 0]);
    expect(steps.map((s) => s.path)).toEqual([
      'cases[0].steps[0]',
      'cases[0].steps[1]',
      'cases[0].steps[2]',
    ]);
    // `op` is the format's key; `action` and `type` are read the same way.
    expect(steps[2]!.actions).toEqual([
      { kind: 'delete-policy', policy: 'x/deny-ingress' },
      { kind: 'delete-policy', policy: 'x/deny-ingress' },
      { kind: 'delete-policy', policy: 'x/deny-ingress' },
    ]);
  });

  it('podLabels and namespaceLabels replace the model maps they name; actions carry labels forward otherwise', () => {
    const f = parseCaseFile(
      file([
        {
          id: 'labels',
          steps: [
            {
              podLabels: { 'x/b': { pod: 'b', team: 'blue' } },
              namespaceLabels: { y: { ns: 'y', env: 'prod' } },
              probe: { port: 80 },
              expect: { default: true },
            },
            {
              actions: [{ action: 'set-pod-labels', pod: 'y/a', labels: { pod: 'a', role: 'db' } }],
              probe: { port: 80 },
              expect: { default: true },
            },
            {
              podLabels: { 'x/a': { pod: 'a', v: '2' } },
              actions: [{ type: 'set-namespace-labels', namespace: 'x', labels: { ns: 'x' } }],
              probe: { port: 80 },
              expect: { default: true },
            },
          ],
        },
      ]),
    );
    const [s0, s1, s2] = f.cases[0]!.steps;
    expect(s0!.podLabels.get('x/b')).toEqual({ pod: 'b', team: 'blue' });
    expect(s0!.podLabels.get('x/a')).toEqual({ pod: 'a' });
    expect(s0!.namespaceLabels.get('y')).toEqual({ ns: 'y', env: 'prod' });
    // Step 2 restates nothing: step 1's labels stay, plus its action.
    expect(s1!.podLabels.get('x/b')).toEqual({ pod: 'b', team: 'blue' });
    expect(s1!.podLabels.get('y/a')).toEqual({ pod: 'a', role: 'db' });
    expect(s1!.namespaceLabels.get('y')).toEqual({ ns: 'y', env: 'prod' });
    // Step 3's podLabels are the maps in force: the model's, with x/a replaced.
    expect(s2!.podLabels.get('x/b')).toEqual({ pod: 'b' });
    expect(s2!.podLabels.get('y/a')).toEqual({ pod: 'a' });
    expect(s2!.podLabels.get('x/a')).toEqual({ pod: 'a', v: '2' });
    expect(s2!.namespaceLabels.get('x')).toEqual({ ns: 'x' });
    expect(s2!.namespaceLabels.get('y')).toEqual({ ns: 'y', env: 'prod' });
  });

  it('accepts the requirement flags and requiresSCTP steps', () => {
    const f = parseCaseFile(
      file([
        {
          id: 'some',
          requires: ['SCTP(some-steps)', 'IPv4'],
          steps: [
            { probe: { port: 80, protocol: 'TCP' }, expect: { default: true } },
            {
              requiresSCTP: true,
              probe: { port: 80, protocol: 'SCTP' },
              expect: { default: true },
            },
          ],
        },
      ]),
    );
    expect(f.cases[0]!.requires).toEqual(['SCTP(some-steps)', 'IPv4']);
    expect(f.cases[0]!.steps.map((s) => s.requiresSCTP)).toEqual([false, true]);
  });
});

describe('a malformed case file is refused with the JSON path of the value', () => {
  const cases: [string, () => unknown, string][] = [
    [
      'a wrong schemaVersion',
      () => ({ ...oneCase({}), schemaVersion: 2 }),
      'schemaVersion: expected 1, got 2',
    ],
    [
      'a missing model',
      () => ({ schemaVersion: 1, cases: [] }),
      'model: required field is missing',
    ],
    [
      'a pod in an unknown namespace',
      () => {
        const raw = oneCase({});
        (raw.model as { pods: { namespace: string }[] }).pods[1]!.namespace = 'q';
        return raw;
      },
      'model.pods[1].namespace: namespace "q" is not in model.namespaces',
    ],
    [
      'a podOrder that leaves a pod out',
      () => {
        const raw = oneCase({});
        (raw.model as Record<string, unknown>).podOrder = ['x/a', 'x/b', 'y/a'];
        return raw;
      },
      'model.podOrder: does not list y/b',
    ],
    [
      'a bad protocol name',
      () => oneCase({ probe: { port: 80, protocol: 'ICMP' } }),
      'cases[0].probe.protocol: "ICMP" is not one of TCP, UDP, SCTP',
    ],
    [
      'a port out of range',
      () => oneCase({ probe: { port: 70000 } }),
      'cases[0].probe.port: Number must be less than or equal to 65535',
    ],
    [
      'an unknown pod in deny',
      () => oneCase({ expect: { default: true, deny: [['x/a', 'z/q']] } }),
      'cases[0].expect.deny[0][1]: no pod z/q in the model',
    ],
    [
      'deny with a false default',
      () => oneCase({ expect: { default: false, deny: [['x/a', 'x/b']] } }),
      'cases[0].expect.deny: deny lists the exceptions',
    ],
    [
      'a matrix row of the wrong length',
      () =>
        file([
          {
            id: 's',
            steps: [
              { probe: { port: 80 }, expect: { default: true } },
              { probe: { port: 80 }, expect: { matrix: ['1111', '111', '1111', '1111'] } },
            ],
          },
        ]),
      'cases[0].steps[1].expect.matrix[1]: "111" has 3 cells; the model has 4 pods',
    ],
    [
      'a matrix that disagrees with default/deny',
      () =>
        oneCase({
          expect: {
            default: true,
            deny: [['x/a', 'x/b']],
            matrix: ['1111', '1111', '1111', '1111'],
          },
        }),
      'cases[0].expect.matrix[0]: x/a -> x/b (column 2) is 1 in the matrix but 0 by default/deny',
    ],
    [
      'a policy tortie refuses',
      () =>
        oneCase({
          policies: [np('x', 'p', { podSelector: {}, ingress: [{ ports: [{ port: 70000 }] }] })],
        }),
      'cases[0].policies[0].spec.ingress[0].ports[0].port: port 70000 is out of range 1-65535',
    ],
    [
      'a policy in a namespace outside the model',
      () => oneCase({ policies: [np('q', 'p', { podSelector: {} })] }),
      'cases[0].policies[0].metadata.namespace: namespace "q" is not in model.namespaces',
    ],
    [
      'two policies with one identity',
      () => oneCase({ policies: [denyIngressX, denyIngressX] }),
      'cases[0].policies[1].metadata.name: networking.k8s.io/v1/NetworkPolicy x/deny-ingress is also cases[0].policies[0]',
    ],
    [
      '$POD_IP of an unknown pod',
      () =>
        oneCase({
          policies: [
            np('x', 'p', {
              podSelector: {},
              egress: [{ to: [{ ipBlock: { cidr: '$POD_IP(z/a)/32' } }] }],
            }),
          ],
        }),
      'cases[0].policies[0].spec.egress[0].to[0].ipBlock.cidr: $POD_IP(z/a): no pod z/a in the model',
    ],
    [
      'a duplicate case id',
      () => file([oneCase({}).cases as unknown, oneCase({}).cases as unknown].flat()),
      'cases[1].id: duplicate id "c" (also cases[0])',
    ],
    [
      'a case with both probe and steps',
      () => oneCase({ steps: [{ probe: { port: 80 }, expect: { default: true } }] }),
      'cases[0]: a case has either probe and expect (one step) or steps, not both',
    ],
    [
      'requiresSCTP without the case requirement',
      () =>
        file([
          {
            id: 's',
            steps: [
              {
                requiresSCTP: true,
                probe: { port: 80, protocol: 'SCTP' },
                expect: { default: true },
              },
            ],
          },
        ]),
      'cases[0].steps[0].requiresSCTP: needs "SCTP(some-steps)"',
    ],
    [
      'set-pod-labels without a pod',
      () =>
        file([
          {
            id: 's',
            steps: [
              {
                actions: [{ action: 'set-pod-labels', labels: {} }],
                probe: { port: 80 },
                expect: { default: true },
              },
            ],
          },
        ]),
      'cases[0].steps[0].actions[0].pod: required field is missing',
    ],
    [
      'an action object naming no op',
      () =>
        file([
          {
            id: 's',
            steps: [
              { actions: [{ policy: 'x/p' }], probe: { port: 80 }, expect: { default: true } },
            ],
          },
        ]),
      'cases[0].steps[0].actions[0].op: required field is missing',
    ],
    [
      'op and action that disagree',
      () =>
        file([
          {
            id: 's',
            steps: [
              {
                actions: [{ op: 'create-policy', action: 'delete-policy', policy: 'x/p' }],
                probe: { port: 80 },
                expect: { default: true },
              },
            ],
          },
        ]),
      'cases[0].steps[0].actions[0].action: says delete-policy but op says create-policy',
    ],
    [
      'an unknown action',
      () =>
        file([
          {
            id: 's',
            steps: [{ actions: ['restart-agent'], probe: { port: 80 }, expect: { default: true } }],
          },
        ]),
      'cases[0].steps[0].actions[0]',
    ],
    [
      'podLabels for an unknown pod',
      () => oneCase({ podLabels: { 'x/q': { pod: 'q' } } }),
      'cases[0].podLabels["x/q"]: no pod x/q in the model',
    ],
    [
      'an invalid label value',
      () => oneCase({ podLabels: { 'x/a': { pod: 'not valid!' } } }),
      'cases[0].podLabels["x/a"].pod: label value "not valid!" is not valid',
    ],
  ];
  for (const [what, raw, message] of cases) {
    it(what, () => {
      expect(refusal(raw()).message).toContain(message);
    });
  }

  it('text that is not JSON, naming the file', () => {
    expect(() => parseCaseFileText('{"schemaVersion": 1,', 'cases.json')).toThrow(
      /^cases\.json: \(top level\): not JSON/,
    );
  });

  it('errors from a file name the file', () => {
    expect(() =>
      parseCaseFileText(JSON.stringify(oneCase({ probe: { port: 0 } })), 'my.json'),
    ).toThrow(/^my\.json: cases\[0\]\.probe\.port: /);
  });
});

describe("the project's case set (test/conformance)", () => {
  const files = loadCaseFiles(['test/conformance']);
  const cases = files.flatMap((f) => f.cases);
  const policiesOf = (c: (typeof cases)[number]) => JSON.stringify(c.steps.map((s) => s.policies));

  it('parses, with at least 40 cases and unique ids', () => {
    expect(cases.length).toBeGreaterThanOrEqual(40);
    const ids = cases.map((c) => c.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('uses the upstream model: x, y, z; pods a, b, c; ports 80, 81; TCP, UDP, SCTP', () => {
    const main = files.filter((f) => f.model.pods.length === 9);
    expect(main.length).toBeGreaterThan(0);
    for (const f of files) {
      expect(f.model.pods.map((p) => p.key)).toEqual(
        ['x', 'y', 'z'].flatMap((ns) => ['a', 'b', 'c'].map((p) => `${ns}/${p}`)),
      );
      expect(f.model.ports).toEqual([80, 81]);
      expect(f.selfConnections).toBe('ignore');
    }
  });

  it('covers every theme the issue lists', () => {
    const some = (pred: (c: (typeof cases)[number]) => boolean) => cases.filter(pred).length;
    const probes = (protocol: string) =>
      some((c) => c.steps.some((s) => s.probe.protocol === protocol));
    const actions = (kind: string) =>
      some((c) => c.steps.some((s) => s.actions.some((a) => a.kind === kind)));
    const uses = (text: string) => some((c) => policiesOf(c).includes(text));
    expect(probes('TCP')).toBeGreaterThan(20);
    expect(probes('UDP')).toBeGreaterThan(5);
    expect(some((c) => c.requires.includes('SCTP'))).toBeGreaterThan(0);
    expect(some((c) => c.requires.includes('SCTP(some-steps)'))).toBeGreaterThan(0);
    for (const op of ['"In"', '"NotIn"', '"Exists"', '"DoesNotExist"'])
      expect(uses(op), op).toBeGreaterThan(0);
    for (const field of [
      '"endPort"',
      '"except"',
      '"$POD_IP(',
      '$POD_CIDR',
      '"namespaceSelector"',
      '"policyTypes"',
    ])
      expect(uses(field), field).toBeGreaterThan(0);
    expect(uses('"port":"serve-')).toBeGreaterThan(2); // named ports
    expect(
      some((c) => /"egress":\[\{"ports":\[\{"port":"serve-/.test(policiesOf(c))),
    ).toBeGreaterThan(0);
    for (const kind of [
      'create-policy',
      'update-policy',
      'delete-policy',
      'set-pod-labels',
      'set-namespace-labels',
    ])
      expect(actions(kind), kind).toBeGreaterThan(0);
    // Cases with pod-ip placeholders say so.
    for (const c of cases.filter((c) => policiesOf(c).includes('$POD_IP('))) {
      expect(c.requires, c.id).toContain('pod-ip-substitution');
    }
  });

  it('no step but the no-policy baselines expects a uniform matrix', () => {
    for (const c of cases) {
      for (const s of c.steps) {
        const judged = s.expected.flatMap((row, f) => row.filter((_v, t) => t !== f));
        const uniform = judged.every((v) => v === judged[0]);
        if (uniform && s.policies.length > 0 && judged[0] === false) {
          throw new Error(`${c.id} ${s.path}: every cell blocked tells little`);
        }
      }
    }
    expect(model()).toBeDefined();
  });
});

describe('expectations: default with deny or allow, and matrix, are one table', () => {
  const expand = (raw: Parameters<typeof expandExpectation>[0], selfIgnored = true) =>
    matrixStrings(expandExpectation(raw, KEYS, selfIgnored));

  it('default true with deny', () => {
    expect(
      expand({
        default: true,
        deny: [
          ['x/a', 'y/b'],
          ['y/a', 'x/b'],
        ],
      }),
    ).toEqual(['1110', '1111', '1011', '1111']);
  });

  it('default false with allow', () => {
    expect(expand({ default: false, allow: [['x/b', 'x/a']] })).toEqual([
      '0000',
      '1000',
      '0000',
      '0000',
    ]);
  });

  it('a matrix as written (spaces ignored)', () => {
    expect(expand({ matrix: ['00 11', '0011', '00 1 1', '0011'] })).toEqual(DENY_X_MATRIX);
  });

  it('default/deny, default/allow and matrix agree when all are given', () => {
    const matrix = DENY_X_MATRIX;
    const deny = KEYS.flatMap((f) => ['x/a', 'x/b'].map((t) => [f, t] as [string, string]));
    const allow = KEYS.flatMap((f) => ['y/a', 'y/b'].map((t) => [f, t] as [string, string]));
    expect(expand({ default: true, deny, matrix })).toEqual(matrix);
    expect(expand({ default: false, allow, matrix })).toEqual(matrix);
    expect(expand({ default: true, deny })).toEqual(expand({ default: false, allow }));
  });

  it('the diagonal may disagree only when self connections are not judged', () => {
    const raw = { default: true, matrix: ['0111', '1111', '1111', '1111'] };
    expect(() => expand(raw, true)).not.toThrow();
    expect(() => expand(raw, false)).toThrow(
      /matrix\[0\]: x\/a -> x\/a \(column 1\) is 0 in the matrix but 1/,
    );
  });

  it('refuses what cannot be read as one table', () => {
    expect(() => expand({})).toThrow(/expect: give "default"/);
    expect(() => expand({ default: true, allow: [['x/a', 'x/b']] })).toThrow(
      /expect\.allow: allow lists/,
    );
    expect(() => expand({ matrix: ['1111', '1111', '1111'] })).toThrow(
      /expect\.matrix: has 3 rows/,
    );
    expect(() => expand({ matrix: ['1111', '11x1', '1111', '1111'] })).toThrow(
      /expect\.matrix\[1\]: "11x1": use only 0 and 1/,
    );
  });
});

describe('placeholders', () => {
  const addresses = {
    podIp: (k: string) => ({ 'x/a': '10.0.0.1', 'y/b': '10.0.0.4' })[k]!,
    podCidr: '10.0.0.0/24',
  };

  it('are replaced anywhere inside strings, however deep', () => {
    const policy = np('x', 'p', {
      podSelector: {},
      egress: [
        {
          to: [
            { ipBlock: { cidr: '$POD_CIDR', except: ['$POD_IP(x/a)/32', '$POD_IP( y/b )/32'] } },
          ],
        },
      ],
    });
    expect(substitutePlaceholders(policy, addresses)).toEqual(
      np('x', 'p', {
        podSelector: {},
        egress: [
          { to: [{ ipBlock: { cidr: '10.0.0.0/24', except: ['10.0.0.1/32', '10.0.0.4/32'] } }] },
        ],
      }),
    );
    // The original is left alone.
    expect(JSON.stringify(policy)).toContain('$POD_CIDR');
  });

  it('several in one string; numbers and booleans untouched', () => {
    expect(
      substitutePlaceholders(
        { s: '$POD_IP(x/a)-$POD_IP(y/b) in $POD_CIDR', n: 80, b: true },
        addresses,
      ),
    ).toEqual({
      s: '10.0.0.1-10.0.0.4 in 10.0.0.0/24',
      n: 80,
      b: true,
    });
  });

  it('are found, and bad ones reported with their path', () => {
    const known = (k: string) => k === 'x/a';
    expect(hasPlaceholders({ a: ['$POD_CIDR'] })).toBe(true);
    expect(hasPlaceholders({ a: ['$POD_IPS'] })).toBe(false);
    expect(placeholderProblem({ a: [{ b: '$POD_IP(x/a)' }] }, known)).toBeUndefined();
    expect(placeholderProblem({ a: [{ b: '$POD_IP(x/q)' }] }, known)).toEqual({
      path: ['a', 0, 'b'],
      reason: '$POD_IP(x/q): no pod x/q in the model',
    });
    expect(placeholderProblem({ a: '$POD_IP x/a' }, known)?.reason).toMatch(
      /write \$POD_IP\(namespace\/pod\)/,
    );
  });
});
