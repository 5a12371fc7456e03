/**
 * The conformance set (test/conformance/*.json) on a 2-node lab whose agents run
 * `--dataplane iptables`: etcd, the real CNI plugin, Felix-style chains and ipsets in each
 * node namespace, VXLAN between the nodes (the kernel's vxlan device). Pods go round-robin
 * over the nodes, so about half of the probes cross nodes. SCTP is skipped, never passed.
 *
 * Then: a pod's first packet meets its policy (CNI ADD waits for the iptables agent's
 * status; the guard's prohibit rules are gone only after the chains are in).
 */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterConformanceLab } from '../../src/lab/cluster/conformance.js';
import { destroyClusterLab } from '../../src/lab/cluster/cluster-lab.js';
import {
  ConformanceSession,
  formatCase,
  formatSummary,
  loadCaseFiles,
  modelFingerprint,
  runCaseFiles,
  summarize,
  type RunOptions,
  type RunResult,
} from '../../src/lab/conformance/index.js';
import { runIn } from '../../src/plumbing/netns.js';
import { newRunId } from '../helpers/netns.js';

const runId = newRunId().slice(0, 5);
const ids = { main: `it${runId}a`, other: `it${runId}b` };
// A cell that disagrees is probed again with a wait long enough for a loaded machine (an
// answer ends it at once): a slow answer is not a verdict.
const options: RunOptions = { timeoutMs: 500, retryTimeoutMs: 10_000 };

const files = loadCaseFiles(['test/conformance']);
const mainModel = modelFingerprint(files[0]!.model);
const mainFiles = files.filter((f) => modelFingerprint(f.model) === mainModel);
const otherFiles = files.filter((f) => modelFingerprint(f.model) !== mainModel);

function failures(result: RunResult): string {
  return result.cases
    .filter((c) => c.status === 'fail')
    .map(formatCase)
    .join('\n');
}

describe('NetworkPolicy conformance on 2 nodes (iptables dataplane, VXLAN)', () => {
  let lab: ClusterConformanceLab | undefined;
  let session: ConformanceSession | undefined;

  beforeAll(async () => {
    lab = await ClusterConformanceLab.create({
      id: ids.main,
      nodes: 2,
      encap: 'vxlan',
      dataplane: 'iptables',
    });
    session = await ConformanceSession.prepare(lab, mainFiles[0]!.model);
  }, 120_000);

  afterAll(async () => {
    await lab?.close().catch(() => undefined);
    for (const id of Object.values(ids)) await destroyClusterLab(id);
    for (const id of Object.values(ids))
      expect(existsSync(`/run/netns/tortie-${id}-ul`), id).toBe(false);
  }, 120_000);

  it('the agents load no BPF and write chains; VXLAN device, FDB and neighbours per peer', async () => {
    for (const n of lab!.lab.nodes) {
      expect(existsSync(n.pinRoot), n.pinRoot).toBe(false);
      const agent = n.agent!;
      expect(agent.iptables).toBeDefined();
      const saved = await runIn(n.netns, 'iptables-nft-save', ['-t', 'filter']);
      expect(saved.stdout).toContain('-A FORWARD -j tortie-FORWARD');
      const link = await runIn(n.netns, 'ip', ['-d', '-j', 'link', 'show', 'dev', 'vxlan.tortie']);
      const [info] = JSON.parse(link.stdout) as {
        linkinfo: { info_data: { id: number; port: number; local: string } };
      }[];
      expect(info!.linkinfo.info_data).toMatchObject({ id: 4096, port: 4789, local: n.underlayIp });
      const other = lab!.lab.nodes.find((m) => m !== n)!;
      const fdb = await runIn(n.netns, 'bridge', ['fdb', 'show', 'dev', 'vxlan.tortie']);
      expect(fdb.stdout).toContain(`dst ${other.underlayIp}`);
      const routes = await runIn(n.netns, 'ip', ['route', 'show', 'dev', 'vxlan.tortie']);
      expect(routes.stdout).toMatch(
        new RegExp(`via ${other.underlayIp.replace(/\./g, '\\.')} .*onlink`),
      );
      expect(agent.metrics()).toMatch(/tortie_iptables_chains \d+/);
    }
  });

  it(
    'every case passes (SCTP skipped), half of the probes across nodes',
    { timeout: 240_000 },
    async () => {
      const t0 = Date.now();
      const results: RunResult[] = [];
      for (const f of mainFiles) results.push(await session!.run(f, options));
      const other = await runCaseFiles(
        otherFiles,
        () =>
          ClusterConformanceLab.create({
            id: ids.other,
            nodes: 2,
            encap: 'vxlan',
            dataplane: 'iptables',
          }),
        options,
      );
      const all = summarize(
        [...results.flatMap((r) => r.cases), ...other.cases],
        results.reduce((n, r) => n + r.ms, 0) + other.ms,
        lab!.description,
      );
      console.log(formatSummary(all));
      console.log(
        `iptables/vxlan: ${all.passed} passed, ${all.failed} failed, ${all.skipped} skipped; ` +
          `${all.crossNodeProbes}/${all.probes} probes across nodes; ${Date.now() - t0} ms`,
      );
      expect(all.failed, failures(all)).toBe(0);
      expect(all.cases.map((c) => c.id)).toEqual(files.flatMap((f) => f.cases.map((c) => c.id)));
      const skipped = all.cases.filter((c) => c.status === 'skip').map((c) => c.id);
      expect(skipped).toEqual(['default-deny-ingress-sctp', 'ingress-ports-sctp']);
      expect(all.passed).toBe(files.reduce((n, f) => n + f.cases.length, 0) - skipped.length);
      const share = (all.crossNodeProbes ?? 0) / all.probes;
      expect(share).toBeGreaterThanOrEqual(0.35);
      expect(share).toBeLessThanOrEqual(0.65);

      // VXLAN's inner sources are checked (tortie-vxlan-in): the cross-node probes passed
      // through its RETURN rules, and its final DROP refused none of them.
      for (const n of lab!.lab.nodes) {
        const { stdout } = await runIn(n.netns, 'iptables-nft-save', ['-c', '-t', 'filter']);
        const lines = stdout.split('\n').filter((l) => / -A tortie-vxlan-in /.test(l));
        const count = (l: string) => Number(/^\[(\d+):/.exec(l)?.[1] ?? NaN);
        const returned = lines.filter((l) => l.endsWith('-j RETURN')).map(count);
        expect(returned.length, lines.join('\n')).toBeGreaterThan(0);
        expect(
          returned.reduce((x, y) => x + y, 0),
          lines.join('\n'),
        ).toBeGreaterThan(0);
        expect(count(lines[lines.length - 1]!), lines.join('\n')).toBe(0);
      }
    },
  );

  it('a new pod is programmed before it runs: its first packet meets its policy', async () => {
    const l = lab!.lab;
    const store = l.store!;
    // Deny all ingress to pods labelled guard=on, in a fresh namespace.
    await store.apply([
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'guard' } },
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name: 'deny', namespace: 'guard' },
        spec: { podSelector: { matchLabels: { guard: 'on' } }, policyTypes: ['Ingress'] },
      },
    ]);
    const client = await l.addPod({ namespace: 'guard', name: 'client', labels: {}, node: 0 });
    for (let i = 0; i < 3; i++) {
      const target = await l.addPod({
        namespace: 'guard',
        name: `t${i}`,
        labels: { guard: 'on' },
        node: 1,
      });
      // ADD returned: the agent of node 1 has reported it programmed, so its chains exist.
      const st = l.nodes[1]!.agent!.status().endpoints.find((e) => e.ip === target.ip);
      expect(st?.policyRev ?? 0).toBeGreaterThan(0);
      expect(await l.probe(client.key, target.key, 80, 'tcp', 500)).toBe(false);
      expect(await l.probe(target.key, client.key, 80, 'tcp', 10_000)).toBe(true);
    }
  });
});
