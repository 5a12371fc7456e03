/**
 * Service accounts and profile labels with real packets: three pods on one node behind
 * veths, the real BPF object on their host veths, and Calico policies that match service
 * accounts (by name, by the account's labels, and a policy's serviceAccountSelector) and a
 * label a profile gives its endpoints. The endpoints come from stored WorkloadEndpoints and
 * Profiles through the agent's own conversion (buildWorld), so the labels the dataplane
 * sees are the ones the agent would give it; the observed TCP reachability must equal the
 * reference evaluator's prediction, and each step must deny something it would otherwise
 * allow.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildWorld, ClusterModel } from '../../src/agent/model.js';
import type { KindName, StoredResource } from '../../src/datastore/index.js';
import { NodeDataplane } from '../../src/dataplane/node-dataplane.js';
import { NodeLab, type LabPodSpec } from '../../src/lab/node-lab.js';
import { predictPairs, type Matrix } from '../../src/lab/predict.js';
import type { LocalEndpoint } from '../../src/policy/compile/index.js';
import type { World } from '../../src/policy/model.js';
import { newRunId } from '../helpers/netns.js';
import { storedResource } from '../helpers/stored.js';

const runId = newRunId()
  .replace(/[^a-z0-9]/g, '')
  .slice(-6);
const pinRoot = `/sys/fs/bpf/tortie-s${runId}`;
const NS = 'web';
const PORTS: LabPodSpec['ports'] = [{ name: 'serve-80-tcp', protocol: 'TCP', port: 80 }];
/** Pod name → its service account. */
const PODS = { api: 'api', db: 'db', front: 'front' } as const;
const ipOf = (i: number) => `10.78.${Number.parseInt(runId.slice(0, 2), 16)}.${10 + i}`;

let rev = 1;
function stored(
  kind: KindName,
  name: string,
  namespace: string | undefined,
  spec: object,
  labels?: Record<string, string>,
): StoredResource {
  return storedResource(
    { apiVersion: 'projectcalico.org/v3', kind, name, namespace, labels, resourceVersion: rev++ },
    spec,
  );
}

/** The pods' WorkloadEndpoints as Calico's CNI plugin (and tortie's) writes them. */
function endpoints(extraProfiles: Record<string, string[]> = {}): StoredResource[] {
  return Object.entries(PODS).map(([pod, sa], i) =>
    stored(
      'WorkloadEndpoint',
      pod,
      NS,
      {
        node: 'node1',
        orchestrator: 'k8s',
        pod,
        endpoint: 'eth0',
        interfaceName: `cali${pod}`,
        ipNetworks: [`${ipOf(i)}/32`],
        profiles: [`kns.${NS}`, `ksa.${NS}.${sa}`, ...(extraProfiles[pod] ?? [])],
        serviceAccountName: sa,
        ports: [],
      },
      { app: pod },
    ),
  );
}

const ACCOUNTS = [
  stored('Profile', `ksa.${NS}.api`, undefined, { labelsToApply: { 'pcsa.role': 'backend' } }),
  stored('Profile', `ksa.${NS}.db`, undefined, { labelsToApply: { 'pcsa.role': 'storage' } }),
  stored('Profile', `ksa.${NS}.front`, undefined, { labelsToApply: { 'pcsa.role': 'edge' } }),
];

function gnp(name: string, spec: object): StoredResource {
  return stored('GlobalNetworkPolicy', name, undefined, spec);
}

const STEPS: { name: string; resources: StoredResource[] }[] = [
  {
    name: 'the storage account admits account api only (serviceAccountSelector + names)',
    resources: [
      ...endpoints(),
      ...ACCOUNTS,
      gnp('storage-from-api', {
        serviceAccountSelector: "role == 'storage'",
        ingress: [{ action: 'Allow', source: { serviceAccounts: { names: ['api'] } } }],
      }),
    ],
  },
  {
    name: 'pods labelled by a profile admit backends only (labelsToApply + serviceAccounts.selector)',
    resources: [
      ...endpoints({ front: ['locked'] }),
      ...ACCOUNTS,
      stored('Profile', 'locked', undefined, { labelsToApply: { lock: 'on' } }),
      gnp('locked-from-backends', {
        selector: "lock == 'on'",
        ingress: [
          { action: 'Allow', source: { serviceAccounts: { selector: "role == 'backend'" } } },
        ],
      }),
    ],
  },
];

function worldOf(resources: readonly StoredResource[]): ReturnType<typeof buildWorld> {
  const model = new ClusterModel();
  for (const r of resources)
    model.apply({
      type: 'put',
      kind: r.kind as KindName,
      resource: r,
      revision: r.metadata.resourceVersion!,
      synthetic: false,
    });
  const built = buildWorld(model);
  expect(built.problems).toEqual([]);
  return built;
}

describe('one node, real packets, service accounts and profile labels', () => {
  let lab: NodeLab | undefined;
  let dp: NodeDataplane | undefined;

  beforeAll(async () => {
    lab = await NodeLab.create(`s${runId}`, [{ name: NS, labels: {} }]);
    dp = NodeDataplane.open({ pinRoot, nodeNetns: lab.nodeNetns });
    for (const [i, pod] of Object.keys(PODS).entries()) {
      const p = await lab.addPod({ namespace: NS, name: pod, labels: {}, ports: PORTS }, ipOf(i));
      dp.attach(p.network.hostIfindex);
      dp.setLocalRoute(p.ip, p.network.hostIfindex);
    }
  });

  afterAll(async () => {
    dp?.destroy();
    await lab?.destroy();
  });

  for (const [index, step] of STEPS.entries()) {
    it(`step ${index}: ${step.name} — observed matrix equals the evaluator's`, async () => {
      const built = worldOf(step.resources);
      const world: World = built.world;
      const pods = lab!.pods.map((p, i) => ({
        key: p.key,
        ip: p.ip,
        endpoint: built.endpoints.get(p.key)!.endpoint,
        ifindex: p.network.hostIfindex,
        id: i + 1,
      }));
      const locals: LocalEndpoint[] = pods.map(({ endpoint, ifindex, id }) => ({
        endpoint,
        ifindex,
        id,
      }));
      dp!.program(world, locals);
      const predicted: Matrix = predictPairs(world, pods, 'tcp', 80);
      const observed = await lab!.probeMatrix('tcp', 80, 600);
      const wrong = [...predicted]
        .filter(([pair, p]) => observed.get(pair) !== p)
        .map(([pair, p]) => `${pair}: expected ${p}`);
      expect(wrong).toEqual([]);
      // The cells that prove the service-account and profile-label matches were applied.
      const expected: Record<string, boolean> =
        index === 0
          ? { [`${NS}/api -> ${NS}/db`]: true, [`${NS}/front -> ${NS}/db`]: false }
          : { [`${NS}/api -> ${NS}/front`]: true, [`${NS}/db -> ${NS}/front`]: false };
      for (const [pair, allowed] of Object.entries(expected))
        expect(predicted.get(pair), pair).toBe(allowed);
    });
  }
});
