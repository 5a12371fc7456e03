/**
 * FelixConfiguration read live by the agent (root; a 1-node ClusterLab, BPF, IPIP):
 *
 *  - `default` with logSeverityScreen, natOutgoingAddress (live), defaultEndpointToHostAction
 *    (a load-time constant of the BPF object: at the next start) and wireguardEnabled (not
 *    implemented) is applied at the revision wait: the agent's log level and the node's
 *    natOutgoing chain change at once; the pod still cannot reach its node, and the status
 *    says "restart needed";
 *  - `tortie node status` lists the restart and the field not implemented;
 *  - a restarted agent reads the configuration before it loads the dataplane: the pod
 *    reaches its node;
 *  - the fields removed: the level goes back at once, the action waits for the next start.
 *
 * Every wait is a revision wait (the agent programmed a model holding the write).
 */
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, agentConfig, silentLogger } from '../../src/agent/index.js';
import {
  ClusterLab,
  destroyClusterLab,
  type ClusterPod,
} from '../../src/lab/cluster/cluster-lab.js';
import { clusterNames } from '../../src/lab/cluster/names.js';
import { newLabId } from '../helpers/netns.js';
import { recordingTcpServer, type NsScript } from '../helpers/pod-scripts.js';

const exec = promisify(execFile);
const MAIN = join(process.cwd(), 'dist', 'bin', 'tortie.js');
const NODE_PORT = 9097;
const NAT_POOL = '10.251.7.0/24';

describe('FelixConfiguration, live', () => {
  const id = newLabId('fx');
  let lab: ClusterLab | undefined;
  let pod: ClusterPod;
  let server: { peers: string[]; server: NsScript } | undefined;
  /** The lab agent's level as started (its logger's: silent unless the lab is verbose). */
  let startLevel = '';
  const node = () => lab!.nodes[0]!;
  const agent = () => node().agent!;

  /** Applies FelixConfiguration default with `spec` and waits until the agent programmed it. */
  async function felixDefault(spec: Record<string, unknown>): Promise<void> {
    const [res] = await lab!.store!.apply([
      {
        apiVersion: 'projectcalico.org/v3',
        kind: 'FelixConfiguration',
        metadata: { name: 'default' },
        spec,
      },
    ]);
    await lab!.waitForRevision(res!.resource.metadata.resourceVersion!);
  }

  const reachesNode = () => pod.process.probe('tcp', node().underlayIp, NODE_PORT, 1500);

  async function natTable(): Promise<string> {
    const { stdout } = await exec('nsenter', [`--net=${node().netns}`, '--', 'iptables-save'], {
      timeout: 20_000,
    });
    return stdout
      .split('\n')
      .filter((l) => l.includes(NAT_POOL))
      .join('\n');
  }

  async function nodeStatus(): Promise<string> {
    const env = Object.fromEntries(
      Object.entries(process.env).filter(([k]) => !k.startsWith('TORTIE_')),
    );
    const r = await exec(
      process.execPath,
      [
        MAIN,
        '--etcd-endpoints',
        lab!.etcd!.endpoints.join(','),
        '--etcd-prefix',
        clusterNames(id).etcdPrefix,
        'node',
        'status',
        '--node',
        node().name,
      ],
      { env },
    ).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }));
    return r.stdout;
  }

  beforeAll(async () => {
    lab = await ClusterLab.up({ id, nodes: 1, encap: 'ipip' });
    await lab.createNamespace('x');
    pod = await lab.addPod({ namespace: 'x', name: 'p', labels: { app: 'p' }, node: 0 });
    server = await recordingTcpServer(node().netns, NODE_PORT);
    // A pool with natOutgoing, so the node has a natOutgoing chain to rewrite.
    await lab.store!.apply([
      {
        apiVersion: 'projectcalico.org/v3',
        kind: 'IPPool',
        metadata: { name: 'felix-nat' },
        spec: { cidr: NAT_POOL, natOutgoing: true, ipipMode: 'Always' },
      },
    ]);
  }, 120_000);

  afterAll(async () => {
    server?.server.stop();
    await lab?.down().catch(() => undefined);
    await destroyClusterLab(id);
    const left = readdirSync('/run/netns').filter((n) => n.startsWith(`tortie-${id}-`));
    if (left.length > 0) throw new Error(`left behind: ${left.join(', ')}`);
  });

  it('applies the live fields at the revision wait and reports the rest', async () => {
    startLevel = agent().log.level;
    expect(await reachesNode()).toBe(false); // Drop, the default
    await felixDefault({
      logSeverityScreen: 'Error',
      natOutgoingAddress: node().underlayIp,
      defaultEndpointToHostAction: 'Accept',
      wireguardEnabled: true,
    });
    expect(agent().log.level).toBe('error');
    expect(await natTable()).toContain(`-j SNAT --to-source ${node().underlayIp}`);
    const report = agent().status().config;
    console.log(`[felix] /status config: ${JSON.stringify(report)}`);
    expect(report.applied.logLevel?.value).toBe('error');
    expect(report.restartNeeded).toEqual([
      {
        setting: 'defaultEndpointToHostAction',
        from: 'FelixConfiguration default: defaultEndpointToHostAction',
        running: 'Drop',
        configured: 'Accept',
      },
    ]);
    expect(report.notImplemented).toEqual(['wireguardEnabled']);
    expect(await reachesNode()).toBe(false); // the BPF object still has Drop
  }, 60_000);

  it('tortie node status lists what needs a restart and what is not implemented', async () => {
    const out = await nodeStatus();
    console.log(`[felix] tortie node status:\n${out}`);
    expect(out).toContain(
      'RESTART NEEDED  defaultEndpointToHostAction: running Drop, configured Accept',
    );
    expect(out).toContain('not implemented wireguardEnabled (accepted, ignored)');
    expect(out).toContain('applied         logLevel error');
  }, 30_000);

  it('a restarted agent starts with the datastore setting: the pod reaches its node', async () => {
    const n = node();
    await n.agent!.stop();
    n.agent = await Agent.start(
      agentConfig({
        nodeName: n.name,
        etcd: { endpoints: lab!.etcd!.endpoints, prefix: clusterNames(id).etcdPrefix },
        pinRoot: n.pinRoot,
        nodeNetns: n.netns,
        ipv4Address: `${n.underlayIp}/24`,
        healthPort: 0,
        heartbeatTtlSeconds: 5,
        reportIntervalSeconds: 1,
        debounceMs: 10,
      }),
      { log: silentLogger() },
    );
    expect(n.agent.config.defaultEndpointToHostAction).toBe('Accept');
    const [res] = await lab!.store!.list('FelixConfiguration');
    await lab!.waitForRevision(res!.metadata.resourceVersion!);
    expect(n.agent.status().config.restartNeeded).toEqual([]);
    expect(await reachesNode()).toBe(true);
    expect(server!.peers).toContain(pod.ip);
  }, 60_000);

  it('fields removed: the live ones go back at once, the action at the next start', async () => {
    await felixDefault({ logSeverityScreen: 'Warning' });
    expect(agent().log.level).toBe('warn');
    await felixDefault({});
    expect(agent().log.level).toBe(startLevel); // the lab's logger, as it was given
    expect(await natTable()).toContain('-j MASQUERADE');
    expect(agent().status().config.restartNeeded).toEqual([
      {
        setting: 'defaultEndpointToHostAction',
        from: 'the default (no longer in the datastore)',
        running: 'Accept',
        configured: 'Drop',
      },
    ]);
  }, 60_000);
});
