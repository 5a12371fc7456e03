/**
 * calicoctl as a real client of a tortie lab: the pinned calicoctl (scripts/build-peers.sh,
 * docs/peers.md) pointed at the lab's etcd (ETCD_ENDPOINTS, DATASTORE_TYPE=etcdv3 and the
 * client certificate in ETCD_CA_CERT_FILE/ETCD_CERT_FILE/ETCD_KEY_FILE: the lab runs etcd
 * with --etcd-tls; it keeps Calico's layout under /calico). What calicoctl writes, tortie's agents enforce
 * (probed from pod to pod before and after); what tortie writes, calicoctl shows.
 *
 *   calicoctl version, get nodes, get workloadendpoints   read what tortie's agents and CNI wrote
 *   calicoctl apply   GlobalNetworkPolicy, NetworkPolicy, GlobalNetworkSet, IPPool → enforced / used
 *   calicoctl label   a pod's WorkloadEndpoint (and --remove) → the policy's verdict follows
 *   calicoctl patch   the lab's IPPool disabled → the next pod's address comes from the new pool
 *   calicoctl delete  NetworkPolicy, GlobalNetworkSet, GlobalNetworkPolicy → verdicts go back
 *   tortie apply      → calicoctl get -o yaml shows the objects as applied
 *
 * One lab (2 nodes, IPIP) for the whole file. Needs root, etcd, `npm run build` first, and
 * calicoctl built (or Go to build it): a missing one fails the file, never skips it. Lab
 * ids start with "ccl".
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KindName } from '../../src/datastore/index.js';
import { ClusterLab, destroyClusterLab } from '../../src/lab/cluster/cluster-lab.js';
import type { LabState } from '../../src/lab/cluster/state.js';
import { runTortie, type CliRun } from '../helpers/cli.js';
import { newLabId } from '../helpers/netns.js';
import {
  calicoctlBinary,
  CALICOCTL_RELEASE,
  PEER_BUILD_TIMEOUT_MS,
  runCalicoctl,
  type CalicoctlRun,
} from '../helpers/peers.js';

const id = newLabId('ccl');
const work = mkdtempSync(join(tmpdir(), `tortie-ccl-${id}-`));
let calicoctlPath = '';
let state: LabState;
let lab: ClusterLab | undefined;

function ok(r: CliRun, what: string): CliRun {
  if (r.code !== 0) throw new Error(`${what}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}

const tortie = (args: string[]) =>
  runTortie(args, { TORTIE_CONFIG: state?.configFile ?? '' }, 120_000);

/** calicoctl against the lab's etcd, as a Calico user points it at an etcd cluster. */
function calicoctl(args: string[]): Promise<CalicoctlRun> {
  return runCalicoctl(calicoctlPath, state.etcd, args);
}

async function calicoctlOk(args: string[]): Promise<string> {
  const r = await calicoctl(args);
  expect(r.code, `calicoctl ${args.join(' ')}: ${r.stderr}${r.stdout}`).toBe(0);
  return r.stdout;
}

let files = 0;
/** calicoctl apply -f of one YAML document. */
async function calicoApply(yaml: string): Promise<string> {
  const file = join(work, `doc-${++files}.yaml`);
  writeFileSync(file, yaml);
  return calicoctlOk(['apply', '-f', file]);
}

let marks = 0;
/**
 * Until every agent has programmed every change made so far (a delete leaves no object to
 * wait for): a marker of a kind the agents watch is written after it, and the agents follow
 * the store in order, so once they programmed the marker they programmed what came before.
 * (The store's own revision would not do: agents' heartbeats move it, and they do not watch those.)
 */
async function agentsCaughtUp(): Promise<void> {
  const [marker] = await lab!.store!.apply({
    apiVersion: 'projectcalico.org/v3',
    kind: 'GlobalNetworkSet',
    metadata: { name: 'caught-up-marker', labels: { mark: String(++marks) } },
    spec: { nets: ['192.0.2.1/32'] },
  });
  await lab!.waitForRevision(marker!.resource.metadata.resourceVersion!);
}

/** Until the agents programmed the object calicoctl wrote (its resourceVersion, read by tortie). */
async function agentsHave(kind: KindName, name: string, namespace?: string): Promise<void> {
  const r = await lab!.store!.get(kind, name, namespace);
  expect(r, `${kind} ${name} as tortie reads it`).toBeDefined();
  await lab!.waitForRevision(r!.metadata.resourceVersion!);
}

const probe = (from: string, to: string) => lab!.probe(from, to);

/** Probes until the answer is `want` or 20 s passed; returns the last answer. */
async function probeUntil(from: string, to: string, want: boolean): Promise<boolean> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const got = await probe(from, to);
    if (got === want || Date.now() > deadline) return got;
  }
}

const wepName = (pod: string) => {
  const p = state.pods.find((x) => x.key === pod)!;
  return `${p.node.replace(/-/g, '--')}-k8s-${p.name.replace(/-/g, '--')}-eth0`;
};

beforeAll(async () => {
  calicoctlPath = await calicoctlBinary();
  // etcd with client certificates, as a production etcd runs: calicoctl gets them from its
  // ETCD_*_FILE variables, tortie from the lab's tortie.yaml.
  ok(
    await runTortie(['lab', 'up', '--id', id, '--nodes', '2', '--etcd-tls'], {}, 180_000),
    'lab up',
  );
  const labState = () =>
    JSON.parse(readFileSync(`/run/tortie/labs/${id}/state.json`, 'utf8')) as LabState;
  state = labState();
  for (const [pod, node, labels] of [
    ['x/web', '0', 'app=web'],
    ['x/client', '1', 'app=client'],
    ['x/friend', '1', 'app=client'],
  ] as const)
    ok(
      await tortie(['lab', 'pod', 'add', pod, '--id', id, '--node', node, '--labels', labels]),
      pod,
    );
  state = labState();
  lab = await ClusterLab.open(id);
}, PEER_BUILD_TIMEOUT_MS);

afterAll(async () => {
  await lab?.close().catch(() => undefined);
  await runTortie(['lab', 'down', '--id', id], {}, 120_000);
  await destroyClusterLab(id);
  rmSync(work, { recursive: true, force: true });
}, 120_000);

describe('calicoctl against a tortie lab', () => {
  it("reads what tortie's agents and CNI wrote: version, nodes, workload endpoints", async () => {
    // The agents initialised the store (ClusterInformation default) as calico-node does.
    const version = await calicoctlOk(['version']);
    expect(version).toMatch(new RegExp(`^Client Version: +${CALICOCTL_RELEASE}$`, 'm'));
    expect(version).toMatch(/^Cluster Type: +tortie$/m);

    const nodes = (await calicoctlOk(['get', 'nodes']))
      .trim()
      .split('\n')
      .map((l) => l.trim());
    expect(nodes).toEqual(['NAME', ...state.nodes.map((n) => n.name).sort()]);

    const weps = await calicoctlOk(['get', 'workloadendpoints', '-n', 'x', '-o', 'wide']);
    for (const p of state.pods) {
      const row = weps.split('\n').find((l) => l.includes(wepName(p.key)));
      expect(row, weps).toBeDefined();
      expect(row).toContain(`${p.ip}/32`);
      expect(row).toContain(p.node);
    }
    // ADD waits for the pod's own node; the other node learns its route a moment later.
    expect(await probeUntil('x/client', 'x/web', true)).toBe(true);
    expect(await probeUntil('x/friend', 'x/web', true)).toBe(true);
  }, 60_000);

  it('calicoctl apply of a GlobalNetworkPolicy, and calicoctl label of a pod, are enforced', async () => {
    await calicoApply(`apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: web-ingress
spec:
  selector: app == 'web'
  types:
  - Ingress
  ingress:
  - action: Allow
    source:
      selector: role == 'friend'
`);
    await agentsHave('GlobalNetworkPolicy', 'web-ingress');
    expect(await probe('x/client', 'x/web')).toBe(false);
    expect(await probe('x/friend', 'x/web')).toBe(false);
    expect(await probe('x/web', 'x/client')).toBe(true);

    expect(
      await calicoctlOk([
        'label',
        'workloadendpoint',
        wepName('x/friend'),
        '-n',
        'x',
        'role=friend',
      ]),
    ).toContain('Successfully set label role');
    await agentsCaughtUp();
    expect(await probe('x/friend', 'x/web')).toBe(true);
    expect(await probe('x/client', 'x/web')).toBe(false);
  }, 60_000);

  it('calicoctl apply and delete of a NetworkPolicy', async () => {
    await calicoApply(`apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  name: allow-client
  namespace: x
spec:
  selector: app == 'web'
  ingress:
  - action: Allow
    protocol: TCP
    source:
      selector: app == 'client'
    destination:
      ports:
      - 80
`);
    await agentsHave('NetworkPolicy', 'allow-client', 'x');
    expect(await probe('x/client', 'x/web')).toBe(true);

    await calicoctlOk(['delete', 'networkpolicy', 'allow-client', '-n', 'x']);
    await agentsCaughtUp();
    expect(await lab!.store!.get('NetworkPolicy', 'allow-client', 'x')).toBeUndefined();
    expect(await probe('x/client', 'x/web')).toBe(false);
  }, 60_000);

  it('calicoctl apply and delete of a GlobalNetworkSet a rule names by label', async () => {
    const client = state.pods.find((p) => p.key === 'x/client')!;
    await calicoApply(`apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata:
  name: friendly-nets
  labels:
    role: friend
spec:
  nets:
  - ${client.ip}/32
`);
    await agentsHave('GlobalNetworkSet', 'friendly-nets');
    // web-ingress admits sources labelled role=friend: endpoints and network sets alike.
    expect(await probe('x/client', 'x/web')).toBe(true);

    await calicoctlOk(['delete', 'globalnetworkset', 'friendly-nets']);
    await agentsCaughtUp();
    expect(await probe('x/client', 'x/web')).toBe(false);
  }, 60_000);

  it('calicoctl label --remove takes the label back', async () => {
    await calicoctlOk([
      'label',
      'workloadendpoint',
      wepName('x/friend'),
      '-n',
      'x',
      'role',
      '--remove',
    ]);
    await agentsCaughtUp();
    expect(await probe('x/friend', 'x/web')).toBe(false);
  }, 60_000);

  it("calicoctl apply of an IPPool and patch of the lab's: the next pod's address comes from the new pool, and it talks", async () => {
    await calicoApply(`apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: second
spec:
  cidr: 10.250.0.0/16
  ipipMode: Always
  natOutgoing: false
`);
    expect(
      await calicoctlOk(['patch', 'ippool', 'lab', '-p', '{"spec":{"disabled":true}}']),
    ).toContain('Successfully patched');
    const pools = await calicoctlOk(['get', 'ippools', '-o', 'wide']);
    expect(pools).toMatch(/^lab +\S+ +\S+ +\S+ +\S+ +true /m);
    ok(
      await tortie([
        'lab',
        'pod',
        'add',
        'x/late',
        '--id',
        id,
        '--node',
        '0',
        '--labels',
        'role=friend',
      ]),
      'pod add x/late',
    );
    const late = (
      JSON.parse(readFileSync(`/run/tortie/labs/${id}/state.json`, 'utf8')) as LabState
    ).pods.find((p) => p.key === 'x/late')!;
    expect(late.ip).toMatch(/^10\.250\./);
    // The pod was added by another process: open the lab again to probe from it.
    await lab!.close();
    lab = await ClusterLab.open(id);
    // A friend by label (web-ingress admits it), across nodes, from the new pool's block.
    expect(await probeUntil('x/late', 'x/web', true)).toBe(true);
    expect(await probeUntil('x/late', 'x/client', true)).toBe(true);
  }, 90_000);

  it('tortie apply → calicoctl get -o yaml shows the objects as applied', async () => {
    const file = join(work, 'tortie.yaml');
    writeFileSync(
      file,
      `apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: from-tortie
  labels:
    owner: tortie
spec:
  order: 50
  selector: app == 'client'
  egress:
  - action: Allow
---
apiVersion: projectcalico.org/v3
kind: NetworkSet
metadata:
  name: office
  namespace: x
spec:
  nets:
  - 198.51.100.0/24
`,
    );
    ok(await tortie(['apply', '-f', file]), 'tortie apply');
    const gnp = await calicoctlOk(['get', 'globalnetworkpolicy', 'from-tortie', '-o', 'yaml']);
    for (const line of [
      'apiVersion: projectcalico.org/v3',
      'kind: GlobalNetworkPolicy',
      '  name: from-tortie',
      '    owner: tortie',
      '  order: 50',
      "  selector: app == 'client'",
      '  - action: Allow',
      '  - Egress',
    ])
      expect(gnp).toContain(line);
    const netset = await calicoctlOk(['get', 'networkset', 'office', '-n', 'x', '-o', 'yaml']);
    expect(netset).toContain('- 198.51.100.0/24');

    // Both clients list the same policies under the same names.
    const names = (out: string) =>
      out
        .trim()
        .split('\n')
        .slice(1)
        .map((l) => l.trim().split(/\s+/)[0])
        .sort();
    const ours = ok(await tortie(['get', 'globalnetworkpolicies']), 'tortie get gnp').stdout;
    expect(names(await calicoctlOk(['get', 'globalnetworkpolicies']))).toEqual(names(ours));
    expect(names(ours)).toEqual(['from-tortie', 'web-ingress']);
  }, 60_000);

  it('calicoctl delete of the GlobalNetworkPolicy opens web again', async () => {
    await calicoctlOk(['delete', 'globalnetworkpolicy', 'web-ingress']);
    await agentsCaughtUp();
    expect(await probe('x/client', 'x/web')).toBe(true);
    expect(await probe('x/friend', 'x/web')).toBe(true);
  }, 60_000);
});
