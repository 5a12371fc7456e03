/**
 * `tortie bench verdict`: the cost of judging one packet, through the real object with
 * BPF_PROG_TEST_RUN, as the policy grows from 0 to 100,000 rules.
 *
 * The endpoint under test receives (tortie_to_pod, ingress policy). Its policy has N
 * Allow rules, each for a distinct /32 peer and a distinct TCP port, and the rule that
 * admits the measured packet is the last one — the worst case for anything that walks
 * rules. Two columns:
 *  - newFlowNs: the first packet of a flow: conntrack miss, both policy stages, the
 *    conntrack entry written. Every repeat must be a *new* flow, so this column runs an
 *    instance of the object whose conntrack timeouts are 1 ns (a load-time constant):
 *    every lookup finds the previous repeat's entry expired and judges afresh.
 *  - establishedNs: a packet of a tracked flow (conntrack hit), default timeouts.
 * Both instances share the pinned maps, so they see the same compiled policy.
 *
 * With `sourcePorts`, the admitting rule also names source ports (40000-40099, the
 * measured packet's among them): its decision then takes the third stage (stage 2 says
 * BY_SPORT, tortie_pol_sprt decides), the cost a source-port rule adds to the packets
 * it concerns.
 */
import { release } from 'node:os';
import { NodeDataplane } from '../src/dataplane/node-dataplane.js';
import { loadDataplane, removePins } from '../src/loader/index.js';
import { TcAction } from '../src/maps/enums.js';
import { native } from '../src/native/index.js';
import type { Endpoint, Policy, Rule, World } from '../src/policy/model.js';
import { frame, tcp, TCP } from '../src/util/packets.js';
import { benchHex } from './common.js';

export interface VerdictBenchOptions {
  rules: number[];
  repeat: number;
  runs: number;
  json: boolean;
  /** The admitting rule matches source ports too (see the module comment). */
  sourcePorts?: boolean;
}

export interface VerdictRow {
  rules: number;
  newFlowNs: number;
  establishedNs: number;
  newFlowSpreadNs: number;
  establishedSpreadNs: number;
  mapEntries: number;
  compileMs: number;
}

const SERVER_IP = '10.65.0.10';
const CLIENT_IP = '10.66.255.254';
const SERVER_PORT = 80;
const TEST_IFINDEX = 1; // test-run's skb->ifindex (loopback); tortie_ifaces[1] is the server

function peerIp(i: number): string {
  // 10.66.0.0/16 minus the client: distinct /32s for up to 65,535 rules, then 10.67...
  const n = (10 << 24) + (66 << 16) + i;
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function benchWorld(
  ruleCount: number,
  sourcePorts = false,
): { world: World; server: Endpoint } {
  const server: Endpoint = {
    key: 'bench/server',
    namespace: 'bench',
    name: 'server',
    ip: SERVER_IP,
    labels: { app: 'server' },
    profiles: [],
    ports: [],
  };
  const rules: Rule[] = [];
  for (let i = 0; i < ruleCount - 1; i++) {
    rules.push({
      action: 'Allow',
      protocol: 6,
      source: { nets: [`${peerIp(i)}/32`] },
      destination: { ports: [{ kind: 'range', from: 1000 + (i % 60000), to: 1000 + (i % 60000) }] },
    });
  }
  if (ruleCount > 0) {
    rules.push({
      action: 'Allow',
      protocol: 6,
      source: {
        nets: [`${CLIENT_IP}/32`],
        ...(sourcePorts ? { ports: [{ kind: 'range' as const, from: 40000, to: 40099 }] } : {}),
      },
      destination: { ports: [{ kind: 'range', from: SERVER_PORT, to: SERVER_PORT }] },
    });
  }
  const policies: Policy[] =
    ruleCount === 0
      ? []
      : [
          {
            name: 'bench',
            namespace: 'bench',
            tier: 'default',
            order: 100,
            selector: 'app == "server"',
            types: ['Ingress'],
            ingress: rules,
            egress: [],
          },
        ];
  // With no policy, the namespace profile decides (allow all), as for any pod.
  const allowAll: Rule = { action: 'Allow', source: {}, destination: {} };
  return {
    server: { ...server, profiles: ['kns.bench'] },
    world: {
      endpoints: [{ ...server, profiles: ['kns.bench'] }],
      namespaces: [{ name: 'bench', labels: {} }],
      networkSets: [],
      tiers: [],
      policies,
      profiles: [{ name: 'kns.bench', ingress: [allowAll], egress: [allowAll] }],
    },
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function measure(
  progFd: number,
  data: Buffer,
  repeat: number,
  runs: number,
): { median: number; spread: number } {
  const samples: number[] = [];
  for (let r = 0; r < runs; r++) {
    const res = native.testRun(progFd, { data, repeat, ctx: { ifindex: TEST_IFINDEX } });
    if (res.retval !== TcAction.OK) {
      throw new Error(
        `the measured packet was not passed (tc verdict ${res.retval}): the bench policy is wrong`,
      );
    }
    samples.push(res.durationNs);
  }
  return { median: median(samples), spread: Math.max(...samples) - Math.min(...samples) };
}

export async function measureVerdicts(
  opts: Omit<VerdictBenchOptions, 'json'>,
  progress: (s: string) => void,
): Promise<VerdictRow[]> {
  const pinRoot = `/sys/fs/bpf/tortie-bench-${benchHex()}`;
  const rows: VerdictRow[] = [];
  // 100,000 rules of distinct /32 peers need 100,000 address entries in one set: raise the
  // per-set budget to what the maps hold.
  const dp = NodeDataplane.open({
    pinRoot,
    config: { dropEvents: false },
    compiler: { maxEntriesPerSet: 1 << 20, maxEntriesPerClass: 1 << 20 },
  });
  // Same maps (adopted from the pins), conntrack entries expire after 1 ns.
  const fresh = loadDataplane({
    pinRoot,
    config: {
      dropEvents: false,
      ctTimeoutsMs: { syn: 1e-6, established: 1e-6, closing: 1e-6, other: 1e-6 },
    },
  });
  try {
    const packet = frame(
      { src: CLIENT_IP, dst: SERVER_IP },
      tcp({ sport: 40000, dport: SERVER_PORT, flags: TCP.SYN }),
    );
    for (const n of opts.rules) {
      progress(`compiling ${n} rules`);
      const { world, server } = benchWorld(n, opts.sourcePorts ?? false);
      const stats = dp.program(world, [{ endpoint: server, ifindex: TEST_IFINDEX, id: 1 }]);
      const state = dp.compiled!;
      const entries = state.addr.size + state.l4.size + state.sport.size;
      progress(`measuring ${n} rules (${entries} policy entries)`);
      dp.dp.views.ct.entries().forEach(([k]) => dp.dp.views.ct.delete(k));
      const fresh1 = measure(fresh.programs.toPod.fd, packet, opts.repeat, opts.runs);
      const est = measure(dp.dp.programs.toPod.fd, packet, opts.repeat, opts.runs);
      rows.push({
        rules: n,
        newFlowNs: fresh1.median,
        establishedNs: est.median,
        newFlowSpreadNs: fresh1.spread,
        establishedSpreadNs: est.spread,
        mapEntries: entries,
        compileMs: stats.compileMs,
      });
    }
  } finally {
    fresh.close();
    dp.close();
    removePins(pinRoot);
  }
  return rows;
}

export async function runVerdictBench(opts: VerdictBenchOptions): Promise<void> {
  const progress = opts.json ? () => undefined : (s: string) => process.stderr.write(`  ${s}\n`);
  const rows = await measureVerdicts(opts, progress);
  if (opts.json) {
    console.log(
      JSON.stringify({ repeat: opts.repeat, runs: opts.runs, kernel: kernelRelease(), rows }),
    );
    return;
  }
  const base = rows[0];
  console.log(
    `\nns per packet, BPF_PROG_TEST_RUN repeat ${opts.repeat}, median of ${opts.runs} runs (kernel ${kernelRelease()})`,
  );
  console.log(
    `${'rules'.padStart(8)}${'new flow'.padStart(11)}${'vs first'.padStart(10)}${'established'.padStart(13)}${'vs first'.padStart(10)}${'entries'.padStart(10)}${'compile ms'.padStart(12)}`,
  );
  for (const r of rows) {
    const rel = (x: number, b: number) => (b > 0 ? `${((x / b - 1) * 100).toFixed(1)}%` : '');
    console.log(
      `${String(r.rules).padStart(8)}${r.newFlowNs.toFixed(0).padStart(11)}${rel(r.newFlowNs, base!.newFlowNs).padStart(10)}` +
        `${r.establishedNs.toFixed(0).padStart(13)}${rel(r.establishedNs, base!.establishedNs).padStart(10)}` +
        `${String(r.mapEntries).padStart(10)}${r.compileMs.toFixed(0).padStart(12)}`,
    );
  }
}

function kernelRelease(): string {
  return release();
}
