/**
 * `tortie node run` (the per-node agent, in the foreground, JSON logs on stdout) and
 * `tortie node status` (what a node's agent reports: endpoints programmed, last
 * reconcile, drops by reason). The agent's settings: src/agent/config.ts.
 */
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import type { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import type { AgentFlags, AgentStatus, NodeStatus } from '../agent/index.js';
import type { ConntrackSummary } from '../agent/conntrack.js';
import type { XdpStatus } from '../agent/manager.js';
import { configLines } from '../agent/status.js';
import type { Part } from '../preflight/requirements.js';
import { parts } from './args.js';
import { formatTable } from './table.js';
import { registerNodeInstallCommands } from './node-install.js';
import { datastoreFrom, resolveDatastore, type GlobalOptions } from './context.js';
import { UsageError } from './usage.js';

interface RunOptions {
  nodeName?: string;
  ip?: string;
  asNumber?: string;
  labels?: string;
  pinRoot?: string;
  nodeNetns?: string;
  healthHost?: string;
  healthPort?: string;
  logLevel?: string;
  heartbeatTtl?: string;
  reportInterval?: string;
  debounceMs?: string;
  routing?: string;
  dataplane?: string;
  allowIpipPacketsFromWorkloads?: string;
  allowVxlanPacketsFromWorkloads?: string;
  defaultEndpointToHostAction?: string;
  ctNewFlowsPerSecond?: string;
  ctNewFlowBurst?: string;
  bgpRunDir?: string;
  cniSocket?: string;
  bgpHoldTime?: string;
  bgpSecretsDir?: string;
  agentConfig?: string;
}

export function registerNodeCommands(program: Command): void {
  const node = program.command('node').description('the per-node agent and its status');

  node
    .command('run')
    .description(
      'run the agent of this node: keep the BPF dataplane equal to the store (stop with SIGTERM; the dataplane keeps working)',
    )
    .option('--node-name <name>', 'node name (env TORTIE_NODE_NAME; default: the hostname)')
    .option(
      '--ip <a.b.c.d/n>',
      'underlay address of the node (env TORTIE_NODE_IP; default: detected)',
    )
    .option('--as-number <n>', 'BGP AS number of the node (env TORTIE_NODE_AS)')
    .option('--labels <k=v,...>', 'labels of the Node (env TORTIE_NODE_LABELS)')
    .option(
      '--pin-root <dir>',
      'bpffs directory of the maps (env TORTIE_PIN_ROOT; default /sys/fs/bpf/tortie)',
    )
    .option(
      '--node-netns <path>',
      "namespace of the pod veths' host ends (env TORTIE_NODE_NETNS; default: own)",
    )
    .option(
      '--health-host <addr>',
      'address of /healthz, /readyz, /metrics (env TORTIE_HEALTH_HOST; default 127.0.0.1)',
    )
    .option(
      '--health-port <port>',
      'its port, 0 = any free one (env TORTIE_HEALTH_PORT; default 9099)',
    )
    .option(
      '--log-level <level>',
      'trace, debug, info, warn, error (env TORTIE_LOG_LEVEL; default info)',
    )
    .option(
      '--heartbeat-ttl <s>',
      'heartbeat lease TTL in seconds (env TORTIE_HEARTBEAT_TTL; default 10)',
    )
    .option(
      '--report-interval <s>',
      'node status report interval in seconds (env TORTIE_REPORT_INTERVAL; default 10)',
    )
    .option(
      '--debounce-ms <ms>',
      'quiet time before a reconcile (env TORTIE_DEBOUNCE_MS; default 20)',
    )
    .option(
      '--routing <mode>',
      'static (routes from IPAM block affinity) or bgp (BIRD, a node mesh and BGPPeers) (env TORTIE_ROUTING; default static)',
    )
    .option(
      '--dataplane <mode>',
      'bpf (tc programs and maps) or iptables (Felix-style chains and ipsets; encapsulation Never or VXLAN) (env TORTIE_DATAPLANE; default bpf)',
    )
    .option(
      '--allow-ipip-packets-from-workloads <bool>',
      "let pods send IPIP (protocol 4) themselves, as Calico's FelixConfiguration field (env TORTIE_ALLOW_IPIP_PACKETS_FROM_WORKLOADS; default false)",
    )
    .option(
      '--allow-vxlan-packets-from-workloads <bool>',
      'let pods send UDP to the VXLAN port (4789) themselves (env TORTIE_ALLOW_VXLAN_PACKETS_FROM_WORKLOADS; default false)',
    )
    .option(
      '--default-endpoint-to-host-action <action>',
      "a pod's new flow to an address of this node, after its egress policy: Drop, Accept or Return (Felix's setting; env TORTIE_DEFAULT_ENDPOINT_TO_HOST_ACTION; default Drop)",
    )
    .option(
      '--ct-new-flows-per-second <n>',
      "each pod's new-flow budget: new flows beyond it drop as DROP_CT_BUDGET (env TORTIE_CT_NEW_FLOWS_PER_SECOND; default none)",
    )
    .option(
      '--ct-new-flow-burst <n>',
      'new flows a pod may open at once within its budget (env TORTIE_CT_NEW_FLOW_BURST; default the rate rounded up)',
    )
    .option(
      '--cni-socket <path>',
      'where the agent serves the CNI plugin (env TORTIE_CNI_SOCKET; default /var/run/tortie/cni.sock; "none": serve none)',
    )
    .option(
      '--bgp-run-dir <dir>',
      "BIRD's config, socket, pid file and log, named with the node (env TORTIE_BGP_RUN_DIR; default /run/tortie/bird)",
    )
    .option(
      '--bgp-hold-time <s>',
      "BGP hold time in seconds (env TORTIE_BGP_HOLD_TIME; default BIRD's)",
    )
    .option(
      '--bgp-secrets-dir <dir>',
      'BGP passwords given as secretKeyRef: <dir>/<name>/<key>, mode 0600 (env TORTIE_BGP_SECRETS_DIR; default /etc/tortie/secrets)',
    )
    .option(
      '--agent-config <file>',
      'agent config file (env TORTIE_AGENT_CONFIG; default /etc/tortie/agent.yaml, read if present)',
    )
    .action(async (o: RunOptions, cmd: Command) => {
      const {
        Agent,
        parseAgentConfigFile,
        resolveAgentConfig,
        AgentConfigError,
        CONFIG_FILE_ENV,
        DEFAULT_AGENT_CONFIG_FILE,
      } = await import('../agent/index.js');
      const globals = cmd.optsWithGlobals<GlobalOptions & RunOptions>();
      const explicitFile = o.agentConfig ?? process.env[CONFIG_FILE_ENV];
      const fileName = explicitFile ?? DEFAULT_AGENT_CONFIG_FILE;
      let file = {};
      try {
        file = parseAgentConfigFile(await readFile(fileName, 'utf8'), fileName, parseYaml);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' && explicitFile === undefined) file = {};
        else if (e instanceof AgentConfigError) throw new UsageError(e.message);
        else throw new UsageError(`cannot read ${fileName}: ${code ?? (e as Error).message}`);
      }
      // Datastore settings not given to the agent fall back to the CLI's (tortie.yaml).
      const cli = await resolveDatastore({
        ...(globals.config ? { config: globals.config } : {}),
      });
      const fileWithCli = {
        ...(cli.etcd.endpoints.length > 0 ? { etcdEndpoints: [...cli.etcd.endpoints] } : {}),
        ...(cli.etcd.prefix ? { etcdPrefix: cli.etcd.prefix } : {}),
        ...(cli.datastoreType === 'kubernetes' ? { datastoreType: cli.datastoreType } : {}),
        ...(cli.kubeconfig === undefined ? {} : { kubeconfig: cli.kubeconfig }),
        ...file,
      };
      // DATASTORE_TYPE and KUBECONFIG reach the options through commander's env: hand them
      // over as the environment they are (a KUBECONFIG of kubectl's is no flag).
      const fromCli = (key: 'datastore' | 'kubeconfig') =>
        cmd.getOptionValueSourceWithGlobals(key) === 'cli' ? [key] : [];
      const flags: AgentFlags = {
        ...pick(o, [
          'nodeName',
          'ip',
          'asNumber',
          'labels',
          'pinRoot',
          'nodeNetns',
          'healthHost',
          'healthPort',
          'logLevel',
          'heartbeatTtl',
          'reportInterval',
          'debounceMs',
          'routing',
          'bgpRunDir',
          'cniSocket',
          'bgpHoldTime',
          'bgpSecretsDir',
          'dataplane',
          'allowIpipPacketsFromWorkloads',
          'allowVxlanPacketsFromWorkloads',
          'defaultEndpointToHostAction',
          'ctNewFlowsPerSecond',
          'ctNewFlowBurst',
        ]),
        ...pick(globals, ['etcdEndpoints', 'etcdPrefix', 'etcdCaCert', 'etcdCert', 'etcdKey']),
        ...pick(globals, [...fromCli('datastore'), ...fromCli('kubeconfig')]),
      };
      let config;
      try {
        config = resolveAgentConfig({
          flags,
          env: process.env,
          file: fileWithCli,
          fileName,
          hostname: hostname(),
        });
      } catch (e) {
        if (e instanceof AgentConfigError) throw new UsageError(e.message);
        throw e;
      }
      const agent = await Agent.start(config);
      const socket = config.cniSocket;
      const cni =
        socket === undefined
          ? undefined
          : await (
              await import('../cni/server.js')
            ).serveForAgent(agent, socket, (message) => agent.log.warn({ socket }, message));
      if (socket !== undefined) agent.log.info({ socket }, 'serving CNI requests');
      const signal = await new Promise<string>((resolve) => {
        process.once('SIGTERM', () => resolve('SIGTERM'));
        process.once('SIGINT', () => resolve('SIGINT'));
      });
      agent.log.info({ signal }, 'stopping');
      // Whatever lingers must not keep a stopped agent alive: after an etcd outage the
      // etcd3 client keeps reconnect timers of 10-30 s, and an agent that is slow to go
      // delays its successor (and lets its heartbeat lapse). The dataplane stays on its
      // pins, so exit as soon as the agent has stopped.
      setTimeout(() => process.exit(0), 5000).unref();
      await agent.stop();
      // After the agent: ADDs waiting for it have failed closed (11) and answered.
      await cni?.close();
      process.exit(0);
    });

  node
    .command('status')
    .description(
      "a node's agent as it reports itself: endpoints programmed, last reconcile, drops by reason",
    )
    .option('--node <name>', 'node name (default: this host)')
    .option('--json', 'print JSON', false)
    .action(async (o: { node?: string; json: boolean }, cmd: Command) => {
      const { heartbeatFresh, readEndpointStatuses, readNodeStatus } =
        await import('../agent/status.js');
      const globals = cmd.optsWithGlobals<GlobalOptions>();
      const name = (o.node ?? process.env.TORTIE_NODE_NAME ?? hostname()).toLowerCase();
      const ds = await datastoreFrom(globals);
      try {
        const [nodeResource, heartbeat, endpoints] = await Promise.all([
          ds.get('Node', name),
          readNodeStatus(ds, name),
          readEndpointStatuses(ds, name),
        ]);
        const live = heartbeat?.healthUrl ? await fetchLive(heartbeat.healthUrl) : undefined;
        // A renewed heartbeat (Kubernetes datastore) past its TTL: the agent is gone.
        const alive = heartbeat !== undefined && heartbeatFresh(heartbeat);
        if (o.json) {
          console.log(
            JSON.stringify(
              {
                node: name,
                registered: nodeResource !== undefined,
                alive,
                heartbeat,
                live,
                endpoints,
              },
              null,
              2,
            ),
          );
          if (!alive) process.exitCode = 1;
          return;
        }
        console.log(
          renderStatus(name, nodeResource !== undefined, heartbeat, alive, live, endpoints),
        );
        if (!alive) process.exitCode = 1;
      } finally {
        await ds.close();
      }
    });

  node
    .command('checksystem')
    .description(
      'check that every program tortie runs is installed and the kernel does what tortie asks of it (exit 1 when something core or --for needs is missing)',
    )
    .option(
      '--for <parts>',
      'parts whose needs are errors, not warnings: lab, tests, bench, build or all, comma-separated (core always; default lab)',
      parts,
    )
    .option('--json', 'print JSON', false)
    .action(async (o: { for?: Part[]; json: boolean }) => {
      const { checkSystem, formatReport } = await import('../preflight/index.js');
      const report = await checkSystem(o.for === undefined ? {} : { required: o.for });
      console.log(o.json ? JSON.stringify(report, null, 2) : formatReport(report));
      if (!report.ok) process.exitCode = 1;
    });

  registerNodeInstallCommands(node);
}

const PEER_TYPE = { mesh: 'node-to-node mesh', global: 'global', node: 'node specific' } as const;

/** calicoctl's table: PEER ADDRESS | PEER TYPE | STATE | SINCE | INFO. */
export function sessionTable(
  sessions: readonly {
    peer: string;
    type: keyof typeof PEER_TYPE;
    state: string;
    since: string;
    info: string;
  }[],
): string[] {
  const rows = [
    ['PEER ADDRESS', 'PEER TYPE', 'STATE', 'SINCE', 'INFO'],
    ...sessions.map((s) => [s.peer, PEER_TYPE[s.type], s.state, s.since, s.info]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  const rule = `+${widths.map((w) => '-'.repeat(w + 2)).join('+')}+`;
  if (sessions.length === 0) return ['no BGP sessions'];
  return [rule, line(rows[0]!), rule, ...rows.slice(1).map(line), rule];
}

function pick<T extends object, K extends keyof T & keyof AgentFlags>(o: T, keys: K[]): AgentFlags {
  const out: AgentFlags = {};
  for (const k of keys) {
    const v = o[k];
    if (typeof v === 'string') (out as Record<string, string>)[k] = v;
  }
  return out;
}

/** The agent's own /status, when it answers from here (same host). */
async function fetchLive(url: string): Promise<AgentStatus | undefined> {
  try {
    const res = await fetch(`${url}/status`, { signal: AbortSignal.timeout(500) });
    return res.ok ? ((await res.json()) as AgentStatus) : undefined;
  } catch {
    return undefined;
  }
}

/** tortie_ct's fill and who fills it (docs/dataplane.md, "Conntrack capacity and fairness"). */
/** The uplink's XDP deny list: the mode its program runs in, and what it holds. */
export function xdpLines(xdp: XdpStatus | undefined): string[] {
  if (xdp === undefined) return [];
  const where = xdp.interface === undefined ? '' : ` on ${xdp.interface}`;
  const from = xdp.hostEndpoint === undefined ? '' : ` (host endpoint ${xdp.hostEndpoint})`;
  const lines = [
    `xdp               ${xdp.mode}${where}: ${xdp.entries} deny-listed prefixes from ${xdp.rules} doNotTrack rules${from}`,
  ];
  if (xdp.notAccelerated !== undefined)
    lines.push(`  not in XDP from ${xdp.notAccelerated.rule} on: ${xdp.notAccelerated.reason}`);
  if (xdp.notInXdp !== undefined) lines.push(`  not in XDP: ${xdp.notInXdp}`);
  if (xdp.error !== undefined) lines.push(`  error: ${xdp.error}`);
  return lines;
}

export function conntrackLines(ct: ConntrackSummary | undefined): string[] {
  if (ct === undefined) return [];
  const pct = ct.capacity === 0 ? 0 : (100 * ct.entries) / ct.capacity;
  const lines = [
    `conntrack         ${ct.entries} of ${ct.capacity} entries (${pct.toFixed(1)}%), ${ct.created} created, ${ct.removed} removed (evicted, revoked, expired and reused)`,
  ];
  for (const c of ct.topCreators)
    lines.push(`  ${c.endpoint.padEnd(40)}${String(c.created).padStart(12)} created`);
  return lines;
}

function ago(iso: string | undefined): string {
  if (!iso) return 'never';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return `${iso} (${s} s ago)`;
}

function renderStatus(
  name: string,
  registered: boolean,
  hb: NodeStatus | undefined,
  alive: boolean,
  live: AgentStatus | undefined,
  endpoints: Awaited<ReturnType<typeof import('../agent/status.js').readEndpointStatuses>>,
): string {
  const lines: string[] = [];
  lines.push(`node              ${name}${registered ? '' : ' (no Node resource)'}`);
  if (hb === undefined) {
    lines.push(
      'agent             not running (no heartbeat: its lease expired or it never started)',
    );
  } else if (!alive) {
    lines.push(
      `agent             not running (heartbeat stale: renewed ${hb.heartbeatAt}, TTL ${hb.ttlSeconds} s)`,
    );
  } else {
    lines.push(
      `agent             pid ${hb.pid}, started ${hb.startedAt}, ${hb.ready ? 'ready' : 'NOT ready'}${hb.synced ? '' : ', not synced'}`,
    );
    lines.push(`address           ${hb.ipv4Address ?? '(none)'}`);
    lines.push(`heartbeat         ${ago(hb.heartbeatAt)}`);
    if (hb.healthUrl)
      lines.push(`health            ${hb.healthUrl}${live ? '' : ' (not reachable from here)'}`);
    const last = live?.lastReconcile ?? hb.lastReconcile;
    if (last) {
      const at = typeof last.at === 'string' ? last.at : new Date(last.at).toISOString();
      lines.push(
        `last reconcile    ${ago(at)}, ${last.ok ? 'ok' : `FAILED: ${last.error}`}, ${Math.round(last.durationMs * 10) / 10} ms`,
      );
    } else {
      lines.push('last reconcile    none yet');
    }
    const e = hb.endpoints;
    lines.push(
      `endpoints         ${live ? live.endpoints.length : e.programmed} programmed, ${live ? live.unresolved.length : e.unresolved} waiting for an interface`,
    );
    lines.push(`remote routes     ${live ? live.routes.length : hb.routes}`);
    const drops = live?.drops ?? hb.drops;
    const rows = Object.entries(drops).sort((a, b) => b[1] - a[1]);
    lines.push(`drops             ${rows.length === 0 ? 'none' : ''}`);
    for (const [reason, n] of rows) lines.push(`  ${reason.padEnd(24)}${String(n).padStart(12)}`);
    lines.push(...conntrackLines(live?.conntrack ?? hb.conntrack));
    lines.push(...xdpLines(live?.xdp ?? hb.xdp));
    lines.push(...configLines(live?.config ?? hb.config));
    const sessions = live?.bgp?.sessions ?? hb.bgp?.sessions;
    if (sessions !== undefined) {
      lines.push('');
      lines.push(
        `BGP sessions (BIRD${live?.bgp?.birdPid === undefined ? '' : ` pid ${live.bgp.birdPid}`})${live?.bgp?.error ? `: ${live.bgp.error}` : ''}`,
      );
      lines.push(...sessionTable(sessions));
      for (const p of live?.bgp?.problems ?? []) lines.push(`  not applied: ${p}`);
      for (const p of live?.bgp?.notImplemented ?? []) lines.push(`  not implemented: ${p}`);
    }
  }
  if (endpoints.length > 0) {
    lines.push('');
    const sorted = [...endpoints].sort((a, b) =>
      `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`),
    );
    lines.push(
      formatTable(
        ['ENDPOINT', 'IP', 'IFACE', 'ID', 'REV'],
        sorted.map(({ namespace, name, status: s }) => [
          `${namespace}/${name}`,
          s.ip,
          s.interfaceName,
          String(s.endpointId),
          String(s.policyRev),
        ]),
        { align: ['left', 'left', 'left', 'right', 'left'] },
      ),
    );
  }
  return lines.join('\n');
}
