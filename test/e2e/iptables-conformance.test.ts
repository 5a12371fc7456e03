/**
 * The iptables dataplane on real parts: a one-node lab (node namespace, pods behind veths,
 * kernel routing between them), the system's iptables (nf_tables backend, and the legacy
 * one) and ipset, in the lab's namespaces only.
 *
 *   - every case file under test/conformance passes (SCTP probes skipped: the pod process
 *     has no SCTP sockets), and the run time is printed;
 *   - an update rewrites only the chains that changed: the other chains keep their rules
 *     and their packet counters in iptables-save;
 *   - iptables-legacy works as well (one file).
 */
import { afterAll, describe, expect, it } from 'vitest';
import {
  formatCase,
  formatSummary,
  loadCaseFiles,
  type RunResult,
} from '../../src/lab/conformance/index.js';
import {
  destroyIptablesLab,
  IptablesConformanceLab,
  runIptablesConformance,
} from '../../src/lab/conformance/iptables-lab.js';
import { endpointChainName } from '../../src/iptables/index.js';
import { runIn } from '../../src/plumbing/netns.js';
import { newRunId } from '../helpers/netns.js';

const runId = newRunId();
// Every namespace carries the run id, starting with "ip": tortie-ip<run>-…
const ids = [`ip${runId}`, `ip${runId}1`, `ip${runId}u`, `ip${runId}l`];
// A cell that disagrees is probed again with a wait long enough for a loaded machine (an
// answer ends it at once): a slow answer is not a verdict.
const options = { timeoutMs: 500, retryTimeoutMs: 10_000 };
const files = loadCaseFiles(['test/conformance']);

function failures(result: RunResult): string {
  return result.cases
    .filter((c) => c.status === 'fail')
    .map(formatCase)
    .join('\n');
}

function nonSctpSkips(result: RunResult): string[] {
  return result.cases.flatMap((c) => [
    ...(c.status === 'skip' && !/SCTP/.test(c.reason ?? '') ? [`${c.id}: ${c.reason}`] : []),
    ...c.steps
      .filter((s) => s.status === 'skip' && s.probe.protocol !== 'SCTP')
      .map((s) => `${c.id} ${s.path}: ${s.reason}`),
  ]);
}

/** `iptables-save -c` of the filter table, by chain (tortie chains only). */
async function savedChains(netns: string): Promise<Map<string, string[]>> {
  const { stdout } = await runIn(netns, 'iptables-nft-save', ['-c', '-t', 'filter']);
  const chains = new Map<string, string[]>();
  for (const line of stdout.split('\n')) {
    const m = /^(\[\d+:\d+\] )?-A (tortie-\S+) /.exec(line);
    if (m !== null) chains.set(m[2]!, [...(chains.get(m[2]!) ?? []), line]);
  }
  return chains;
}

afterAll(async () => {
  for (const id of ids) await destroyIptablesLab(id);
});

describe('NetworkPolicy conformance on one node (iptables)', () => {
  it('every case file passes; only SCTP is skipped', { timeout: 400_000 }, async () => {
    const t0 = performance.now();
    const result = await runIptablesConformance(files, { id: ids[0]!, ...options });
    console.log(formatSummary(result));
    console.log(`iptables conformance: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    expect(result.failed, failures(result)).toBe(0);
    expect(nonSctpSkips(result)).toEqual([]);
    expect(result.passed).toBeGreaterThanOrEqual(90);
    expect(result.lab).toContain('iptables');
  });

  it('an update rewrites only the chains that changed', { timeout: 120_000 }, async () => {
    const lab = await IptablesConformanceLab.create({ id: ids[2]! });
    try {
      await lab.createNamespace('x', { ns: 'x' });
      await lab.createNamespace('y', { ns: 'y' });
      const serve = [{ port: 80, protocol: 'TCP' as const }];
      for (const [ns, name] of [
        ['x', 'a'],
        ['x', 'b'],
        ['y', 'c'],
      ] as const) {
        await lab.createPod({ namespace: ns, name, labels: { pod: name }, namedPorts: [], serve });
      }
      await lab.waitForDataplane();
      expect(await lab.probe('x/a', 'x/b', 80, 'TCP', 10_000)).toBe(true);
      expect(await lab.probe('x/a', 'y/c', 80, 'TCP', 10_000)).toBe(true);
      const netns = lab.node.nodeNetns;
      const before = await savedChains(netns);

      await lab.setPolicies([
        {
          apiVersion: 'networking.k8s.io/v1',
          kind: 'NetworkPolicy',
          metadata: { name: 'deny-c', namespace: 'y' },
          spec: { podSelector: { matchLabels: { pod: 'c' } }, policyTypes: ['Ingress'] },
        },
      ]);
      await lab.waitForDataplane();
      const report = lab.applied.at(-1)!;
      const ifaceOf = (key: string) => lab.node.pods.find((p) => p.key === key)!.network.hostIfName;
      const twC = endpointChainName(ifaceOf('y/c'), 'ingress');
      const twB = endpointChainName(ifaceOf('x/b'), 'ingress');
      // The new policy's chain and c's ingress chain, nothing else.
      expect(report.writtenChains).toHaveLength(2);
      expect(report.writtenChains).toContain(twC);
      expect(report.writtenChains.find((c) => c.startsWith('tortie-pi-'))).toBeDefined();
      expect(report.iptablesInput).not.toContain(`:${twB} `);

      const after = await savedChains(netns);
      for (const [chain, lines] of before) {
        if (report.writtenChains.includes(chain)) continue;
        // Same rules, same counters: the kernel did not touch them.
        expect(after.get(chain), chain).toEqual(lines);
      }
      expect(before.get(twB)!.some((l) => !l.startsWith('[0:0]'))).toBe(true);
      expect(after.get(twC)).not.toEqual(before.get(twC));
      console.log(
        `iptables-save for x/b's ingress chain:\n${after.get(twB)!.join('\n')}\n` +
          `and y/c's:\n${after.get(twC)!.join('\n')}\n` +
          `update wrote ${report.writtenChains.length} chains in ${report.ms.toFixed(1)} ms`,
      );

      // And the change is in force, the rest as before.
      expect(await lab.probe('x/a', 'y/c', 80, 'TCP', 1000)).toBe(false);
      expect(await lab.probe('x/a', 'x/b', 80, 'TCP', 10_000)).toBe(true);

      // Nothing changed: nothing written.
      await lab.setPolicies([
        {
          apiVersion: 'networking.k8s.io/v1',
          kind: 'NetworkPolicy',
          metadata: { name: 'deny-c', namespace: 'y' },
          spec: { podSelector: { matchLabels: { pod: 'c' } }, policyTypes: ['Ingress'] },
        },
      ]);
      await lab.waitForDataplane();
      expect(lab.applied.at(-1)!.iptablesInput).toBe('');
    } finally {
      await lab.close();
    }
  });

  it('works with iptables-legacy too', { timeout: 180_000 }, async () => {
    const file = files.find((f) => /01-isolation/.test(f.source ?? ''))!;
    const result = await runIptablesConformance([file], {
      id: ids[3]!,
      backend: 'legacy',
      ...options,
    });
    console.log(formatSummary(result));
    expect(result.lab).toContain('iptables-legacy');
    expect(result.failed, failures(result)).toBe(0);
    expect(result.passed).toBeGreaterThanOrEqual(5);
  });
});
