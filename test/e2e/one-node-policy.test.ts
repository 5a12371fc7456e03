/**
 * Real packets on one node: six pods in two namespaces behind veths, the real BPF object
 * attached to every pod's host veth, Kubernetes NetworkPolicies compiled into its maps.
 * The observed reachability (TCP and UDP echo, probed from inside the pods) must equal
 * the reference evaluator's prediction, step after step; and a policy change must stop an
 * established TCP connection at its very next packet.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NodeDataplane } from '../../src/dataplane/node-dataplane.js';
import { NodeLab, type LabPodSpec } from '../../src/lab/node-lab.js';
import { predictMatrix, type Matrix } from '../../src/lab/predict.js';
import type { LocalEndpoint } from '../../src/policy/compile/index.js';
import type { Namespace } from '../../src/policy/model.js';
import { parseResource, worldFrom, type Resource } from '../../src/policy/resources.js';
import { newRunId } from '../helpers/netns.js';

const runId = newRunId()
  .replace(/[^a-z0-9]/g, '')
  .slice(-6);
const pinRoot = `/sys/fs/bpf/tortie-t${runId}`;

const NAMESPACES: Namespace[] = [
  { name: 'x', labels: { 'kubernetes.io/metadata.name': 'x', ns: 'x' } },
  { name: 'y', labels: { 'kubernetes.io/metadata.name': 'y', ns: 'y' } },
];
const PORTS: LabPodSpec['ports'] = [
  { name: 'serve-80-tcp', protocol: 'TCP', port: 80 },
  { name: 'serve-81-tcp', protocol: 'TCP', port: 81 },
  { name: 'serve-80-udp', protocol: 'UDP', port: 80 },
];
const PODS: LabPodSpec[] = ['x', 'y'].flatMap((ns) =>
  ['a', 'b', 'c'].map((name) => ({ namespace: ns, name, labels: { pod: name }, ports: PORTS })),
);
const ipOf = (i: number) => `10.77.${Number.parseInt(runId.slice(0, 2), 16)}.${10 + i}`;

function np(namespace: string, name: string, spec: object): Resource {
  return parseResource({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name, namespace },
    spec,
  });
}

/** Each step: the complete set of policies in force. */
function steps(): { name: string; policies: Resource[] }[] {
  const xc = ipOf(2);
  return [
    { name: 'no policy: everything reaches everything', policies: [] },
    {
      name: 'x isolated for ingress; x/a admits y on TCP 80 only; x/b admits its own namespace on a named port',
      policies: [
        np('x', 'deny-ingress', { podSelector: {}, policyTypes: ['Ingress'] }),
        np('x', 'a-from-y', {
          podSelector: { matchLabels: { pod: 'a' } },
          ingress: [
            { from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }], ports: [{ port: 80 }] },
          ],
        }),
        np('x', 'b-from-x-named', {
          podSelector: { matchLabels: { pod: 'b' } },
          ingress: [
            {
              from: [{ podSelector: {} }],
              ports: [{ port: 'serve-81-tcp' }, { protocol: 'UDP', port: 80 }],
            },
          ],
        }),
      ],
    },
    {
      name: 'y/b may only send UDP 80 to an ipBlock except x/c, and TCP 80-81 to y pods b and c',
      policies: [
        np('y', 'b-egress', {
          podSelector: { matchLabels: { pod: 'b' } },
          policyTypes: ['Egress'],
          egress: [
            {
              to: [
                {
                  ipBlock: {
                    cidr: `${ipOf(0).split('.').slice(0, 3).join('.')}.0/24`,
                    except: [`${xc}/32`],
                  },
                },
              ],
              ports: [{ protocol: 'UDP', port: 80 }],
            },
            {
              to: [
                {
                  podSelector: {
                    matchExpressions: [{ key: 'pod', operator: 'In', values: ['b', 'c'] }],
                  },
                },
              ],
              ports: [{ protocol: 'TCP', port: 80, endPort: 81 }],
            },
          ],
        }),
        np('y', 'c-from-x-a-or-b', {
          podSelector: { matchLabels: { pod: 'c' } },
          ingress: [
            {
              from: [
                {
                  namespaceSelector: { matchLabels: { ns: 'x' } },
                  podSelector: {
                    matchExpressions: [{ key: 'pod', operator: 'NotIn', values: ['c'] }],
                  },
                },
              ],
            },
          ],
        }),
      ],
    },
  ];
}

describe('one node, real packets, Kubernetes NetworkPolicy', () => {
  let lab: NodeLab | undefined;
  let dp: NodeDataplane | undefined;
  const locals: LocalEndpoint[] = [];
  const nsResources: Resource[] = NAMESPACES.map((n) => ({
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: n.name, labels: n.labels },
    namespace: n,
  }));

  beforeAll(async () => {
    lab = await NodeLab.create(`t${runId}`, NAMESPACES);
    dp = NodeDataplane.open({ pinRoot, nodeNetns: lab.nodeNetns });
    for (const [i, spec] of PODS.entries()) {
      const pod = await lab.addPod(spec, ipOf(i));
      dp.attach(pod.network.hostIfindex);
      dp.setLocalRoute(pod.ip, pod.network.hostIfindex);
      locals.push({ endpoint: pod.endpoint, ifindex: pod.network.hostIfindex, id: i + 1 });
    }
  });

  afterAll(async () => {
    dp?.destroy();
    await lab?.destroy();
  });

  const world = (policies: Resource[]) =>
    worldFrom(
      [...nsResources, ...policies],
      lab!.pods.map((p) => p.endpoint),
    );

  /** Cells that differ; a pod talking to its own address never leaves it (not judged, as upstream). */
  function differences(observed: Matrix, predicted: Matrix): string[] {
    return [...predicted]
      .filter(([pair]) => pair.split(' -> ')[0] !== pair.split(' -> ')[1])
      .filter(([pair, p]) => observed.get(pair) !== p)
      .map(([pair, p]) => `${pair}: expected ${p}`);
  }

  for (const [index, step] of steps().entries()) {
    it(`step ${index}: ${step.name} — observed matrix equals the evaluator's`, async () => {
      const w = world(step.policies);
      dp!.program(w, locals);
      let allowedCells = 0;
      let deniedCells = 0;
      for (const [protocol, port] of [
        ['tcp', 80],
        ['tcp', 81],
        ['udp', 80],
      ] as const) {
        const predicted = predictMatrix(w, lab!, protocol, port);
        const observed = await lab!.probeMatrix(protocol, port, 600);
        expect(differences(observed, predicted), `${protocol}/${port}`).toEqual([]);
        for (const v of predicted.values()) {
          if (v) allowedCells++;
          else deniedCells++;
        }
      }
      // A step whose matrix is uniform would not tell the dataplane's policy from none.
      if (index > 0) expect(deniedCells).toBeGreaterThan(0);
      expect(allowedCells).toBeGreaterThan(0);
    });
  }

  it('a policy that revokes an established TCP connection stops its very next packet', async () => {
    dp!.program(world([]), locals);
    const client = lab!.pod('x/a');
    const server = lab!.pod('y/b');
    const opened = await client.process.request({
      op: 'open',
      host: server.ip,
      port: 80,
      timeoutMs: 10_000, // long enough for a loaded machine: the connection ends the wait
    });
    expect(opened.ok).toBe(true);
    const conn = opened.ok ? opened.conn! : 0;
    const first = await client.process.request({
      op: 'send',
      conn,
      data: 'before',
      timeoutMs: 10_000,
    });
    expect(first).toMatchObject({ ok: true, echo: 'before' });

    const idOf = (key: string) => locals.find((l) => l.endpoint.key === key)!.id;
    const count = (key: string, dir: string, reason: string) =>
      dp!
        .counters()
        .filter((c) => c.epId === idOf(key) && c.dir === dir && c.reason === reason)
        .reduce((n, c) => n + c.packets, 0n);
    const establishedBefore = count('x/a', 'from-pod', 'PASS_CT_ESTABLISHED');
    const revokedBefore = count('y/b', 'to-pod', 'DROP_POLICY_REVOKED');

    dp!.program(
      world([
        np('y', 'deny-b', { podSelector: { matchLabels: { pod: 'b' } }, policyTypes: ['Ingress'] }),
      ]),
      locals,
    );
    const after = await client.process.request({
      op: 'send',
      conn,
      data: 'after',
      timeoutMs: 1000,
    });
    expect(after.ok).toBe(false);
    // Not one packet of the flow passed after the change: the first was dropped as revoked,
    // blamed on the endpoint whose new ingress policy revoked it.
    expect(count('x/a', 'from-pod', 'PASS_CT_ESTABLISHED')).toBe(establishedBefore);
    expect(count('y/b', 'to-pod', 'DROP_POLICY_REVOKED')).toBeGreaterThan(revokedBefore);
    await client.process.request({ op: 'close', conn });
  });
});
