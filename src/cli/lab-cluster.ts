/**
 * The persistent multi-node lab (src/lab/cluster/), built and driven by separate
 * commands, like kind or minikube:
 *
 *   tortie lab up [--id lab] [--nodes 3] [--encap ipip] [--etcd-members 1] [--etcd-tls]
 *                 [--datastore etcd|kubernetes]
 *   tortie lab pod add NS/NAME --node 0 [--labels app=web] [--servers tcp:80,udp:80]
 *   tortie lab pod del NS/NAME          tortie lab pod list [--json]
 *   tortie lab exec NS/NAME -- CMD ARGS...
 *   tortie lab probe [--port 80] [--protocol tcp] [--timeout-ms 500] [--json]
 *   tortie lab status [--json]          tortie lab list [--json]
 *   tortie lab down [--id lab]
 *
 * `lab up` leaves everything running (etcd detached, one `tortie node run` per node, pod
 * processes detached) and writes /run/tortie/labs/<id>/state.json plus a CLI config,
 * /run/tortie/labs/<id>/tortie.yaml, for `TORTIE_CONFIG`. `lab down` removes a lab by
 * its names, also when the state file is gone.
 *
 * `--datastore kubernetes` runs a real kube-apiserver (with etcd 3.6) instead of the lab's
 * etcd; the lab plays kubelet (Node and Pod objects, CNI ADD with kubelet's arguments, the
 * pods' status) and kubectl with the lab's admin kubeconfig reaches the dataplane.
 */
import { spawn } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import type { Command } from 'commander';
import {
  clusterId,
  dataplane,
  encap,
  intIn,
  labels,
  nodeCount,
  oneOf,
  podKey,
  port,
  protocol,
} from './args.js';
import { UsageError } from './usage.js';
import { formatMatrix } from '../util/matrix.js';
import { formatTable } from './table.js';
import type { ClusterLab } from '../lab/cluster/cluster-lab.js';

const DEFAULT_ID = 'lab';

/** --servers, checked by the pod process's own parser (loaded only for `pod add`). */
async function checkServers(value: string): Promise<void> {
  const { parseServers } = await import('../lab/pod-process.js');
  try {
    parseServers(value);
  } catch (e) {
    throw new UsageError(`--servers: ${(e as Error).message}`);
  }
}

/**
 * The lab's datastore: tortie's global `--datastore`, given on this command line (the
 * environment's DATASTORE_TYPE is the user's cluster's, never the lab's). Exported for
 * `lab conformance` and `lab demo`.
 */
export function labDatastore(cmd: Command): 'etcd' | 'kubernetes' {
  if (cmd.getOptionValueSourceWithGlobals('datastore') !== 'cli') return 'etcd';
  const v = String(cmd.optsWithGlobals<{ datastore?: string }>().datastore).toLowerCase();
  if (v === 'etcd' || v === 'kubernetes') return v;
  throw new UsageError(`--datastore "${v}": use etcd or kubernetes`);
}

/** "tcp:80,udp:80" as a Pod's container ports (unnamed; one per port and protocol). */
function containerPorts(servers: string): { containerPort: number; protocol: 'TCP' | 'UDP' }[] {
  return servers
    .split(',')
    .filter((x) => x !== '')
    .map((x) => {
      const [proto, port] = x.split(':') as [string, string];
      return {
        containerPort: Number(port),
        protocol: proto.toUpperCase() === 'UDP' ? ('UDP' as const) : ('TCP' as const),
      };
    });
}

function idHint(id: string): string {
  return id === DEFAULT_ID ? '' : ` --id ${id}`;
}

/** Resolves --node: an index (0), a short name (n0) or a node name (<id>-n0). */
function resolveNode(lab: ClusterLab, ref: string): string {
  const names = lab.nodes.map((n) => n.name);
  let name: string | undefined;
  if (/^\d+$/.test(ref)) name = names[Number(ref)];
  else if (/^n\d+$/.test(ref)) name = names.find((n) => n === `${lab.id}-${ref}`);
  else name = names.find((n) => n === ref);
  if (name === undefined)
    throw new UsageError(
      `--node "${ref}": lab ${lab.id} has nodes ${names.map((n, i) => `${i} (${n})`).join(', ')}`,
    );
  return name;
}

export function registerClusterCommands(lab: Command): void {
  lab
    .command('demo')
    .description(
      'the quick start: a 3-node lab, six pods in three namespaces, the matrix before and after example policies (next to the reference evaluator); the lab stays up',
    )
    .option('--id <id>', 'lab id, 1-8 lower-case letters or digits', clusterId, 'demo')
    .option('--nodes <n>', 'node count (3 or more)', intIn(3, 50), 3)
    .option(
      '--encap <mode>',
      'ipip or none (IPPool ipipMode Always / Never)',
      oneOf('ipip', 'none'),
      'ipip' as const,
    )
    .option('--replace', 'remove a lab with this id first', false)
    .option('--policies <file>', 'policies to apply (default examples/lab-policies.yaml)')
    .action(
      async (
        o: {
          id: string;
          nodes: number;
          encap: 'ipip' | 'none';
          replace: boolean;
          policies?: string;
        },
        cmd: Command,
      ) => {
        const { runLabDemo } = await import('../lab/cluster/demo.js');
        const datastore = labDatastore(cmd);
        process.exitCode = await runLabDemo({
          id: o.id,
          nodes: o.nodes,
          encap: o.encap,
          replace: o.replace,
          ...(datastore === 'kubernetes' ? { datastore } : {}),
          ...(o.policies === undefined ? {} : { policiesFile: o.policies }),
        });
      },
    );

  lab
    .command('up')
    .description(
      'build a multi-node lab that keeps running after this command (etcd, one agent per node); remove it with "lab down"',
    )
    .option(
      '--id <id>',
      'lab id, 1-8 lower-case letters or digits: names everything',
      clusterId,
      DEFAULT_ID,
    )
    .option('--nodes <n>', 'node count', nodeCount, 3)
    .option(
      '--encap <mode>',
      'ipip, none or vxlan (IPPool ipipMode Always / Never / vxlanMode Always; vxlan with --dataplane iptables; default ipip, none with iptables)',
      encap,
      'ipip',
    )
    .option(
      '--dataplane <mode>',
      'bpf (default) or iptables: the agents run --dataplane iptables (encap none or vxlan)',
      dataplane,
      'bpf' as const,
    )
    .option(
      '--etcd-members <n>',
      'etcd members: 1 or 3',
      (v: string) => Number(oneOf('1', '3')(v)) as 1 | 3,
      1 as const,
    )
    .option(
      '--etcd-tls',
      "etcd serves https only and requires client certificates (--client-cert-auth); a CA, server and client certificate are made in the lab's state dir (tls/) and used by the agents, the CNI plugin and the lab's tortie.yaml",
      false,
    )
    .option(
      '--routing <mode>',
      'static (agents route from IPAM) or bgp (BIRD per node, a node mesh over the underlay)',
      oneOf('static', 'bgp'),
      'static' as const,
    )
    .option(
      '--tor',
      'with --routing bgp: an external router (FRR, AS 64999) at <underlay>.250 peering with every node',
      false,
    )
    .addHelpText(
      'after',
      "\n  --datastore kubernetes (tortie's global option, given on the command line): a real kube-apiserver with etcd 3.6 instead of the lab's etcd, Node and Pod objects (the lab plays kubelet), the agents on the Kubernetes datastore with manifests/' ServiceAccount; kubectl reaches the dataplane",
    )
    .action(
      async (
        o: {
          id: string;
          nodes: number;
          encap: 'ipip' | 'none' | 'vxlan';
          etcdMembers: 1 | 3;
          etcdTls: boolean;
          routing: 'static' | 'bgp';
          dataplane: 'bpf' | 'iptables';
          tor: boolean;
          datastore?: 'etcd' | 'kubernetes';
        },
        cmd: Command,
      ) => {
        o.datastore = labDatastore(cmd);
        if (o.tor && o.routing !== 'bgp') throw new UsageError('--tor needs --routing bgp');
        if (o.datastore === 'kubernetes') {
          const etcdOnly = (['etcdMembers', 'etcdTls'] as const).filter(
            (k) => cmd.getOptionValueSource(k) !== 'default',
          );
          if (etcdOnly.length > 0)
            throw new UsageError(
              `--datastore kubernetes has no lab etcd: drop ${etcdOnly.map((k) => (k === 'etcdTls' ? '--etcd-tls' : '--etcd-members')).join(' and ')}`,
            );
          if (o.routing === 'bgp')
            throw new UsageError(
              '--datastore kubernetes with --routing bgp is not built yet: use --routing static',
            );
        }
        // iptables has no IPIP: its default is plain routing.
        if (o.dataplane === 'iptables' && cmd.getOptionValueSource('encap') === 'default')
          o.encap = 'none';
        if (o.dataplane === 'iptables' && o.encap === 'ipip')
          throw new UsageError(
            '--dataplane iptables cannot encapsulate IPIP (the kernel here has no ipip module): use --encap none or vxlan',
          );
        if (o.dataplane === 'bpf' && o.encap === 'vxlan')
          throw new UsageError(
            '--encap vxlan is for --dataplane iptables (the BPF dataplane does IPIP)',
          );
        const { ClusterLab, destroyClusterLab, labPresence } =
          await import('../lab/cluster/cluster-lab.js');
        const present = labPresence(o.id);
        if (present.length > 0)
          throw new Error(
            `lab "${o.id}" already exists (${present.join('; ')}): remove it first with tortie lab down --id ${o.id}`,
          );
        // The agents are `tortie node run` children: none of this shell's tortie settings
        // (TORTIE_CONFIG of another lab, TLS files of a real cluster) may leak into them.
        for (const k of Object.keys(process.env))
          if (k.startsWith('TORTIE_')) delete process.env[k];
        // Interrupted half way: remove what was made (a lab that was there is never touched:
        // up refuses before making anything).
        let building = true;
        let started = false;
        const onSignal = (signal: NodeJS.Signals) => {
          if (!building || !started) process.exit(130);
          process.stderr.write(`\n${signal}: removing the half-built lab ${o.id}\n`);
          void destroyClusterLab(o.id).finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
        };
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
        const t0 = Date.now();
        process.stderr.write(
          `building lab ${o.id}: ${o.nodes} nodes, encap ${o.encap}, ${o.datastore === 'kubernetes' ? 'kube-apiserver + etcd 3.6 (Kubernetes datastore)' : `${o.etcdMembers} etcd member${o.etcdMembers === 1 ? '' : 's'}`}…\n`,
        );
        let l: ClusterLab;
        try {
          started = true;
          l = await ClusterLab.up({
            id: o.id,
            nodes: o.nodes,
            encap: o.encap,
            etcdMembers: o.etcdMembers,
            persist: true,
            ...(o.etcdTls ? { etcdTls: true } : {}),
            ...(o.dataplane === 'iptables' ? { dataplane: 'iptables' as const } : {}),
            ...(o.routing === 'bgp' ? { routing: 'bgp' as const } : {}),
            ...(o.tor ? { tor: true } : {}),
            ...(o.datastore === 'kubernetes' ? { datastore: 'kubernetes' as const } : {}),
          });
        } catch (e) {
          if ((e as Error).name === 'LabExistsError') started = false;
          throw e;
        } finally {
          building = false;
        }
        const state = l.state();
        await l.close();
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        const h = idHint(o.id);
        console.log(
          [
            `lab ${o.id} is up in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${l.description}`,
            formatTable(
              ['NODE', 'UNDERLAY', 'AGENT PID', 'PIN ROOT'],
              state.nodes.map((n) => [n.name, n.underlayIp, String(n.agentPid ?? '-'), n.pinRoot]),
            ),
            ...(state.kube === undefined
              ? [`etcd     ${state.etcd.endpoints.join(',')} (prefix ${state.etcdPrefix})`]
              : [
                  `api      ${state.kube.apiserver.url} (kube-apiserver, etcd 3.6 ${state.kube.apiserver.etcdUrl})`,
                  `agents   as ${state.kube.agentUser} (${state.kube.agentKubeconfig})`,
                ]),
            ...(state.etcd.tls === undefined
              ? []
              : [
                  `tls      client certificates required: CA ${state.etcd.tls.ca}, client ${state.etcd.tls.clientCert} (key ${state.etcd.tls.clientKey})`,
                ]),
            `state    ${state.stateDir}/state.json`,
            ...(l.tor === undefined
              ? []
              : [
                  `tor      ${l.tor.ip} in ${l.tor.netnsName} (FRR, AS ${l.tor.asNumber}): vtysh --vty_socket ${l.tor.dir} -c 'show bgp ipv4 unicast'`,
                ]),
            '',
            'next:',
            ...(state.kube === undefined
              ? []
              : [
                  `  export KUBECONFIG=${l.kube!.server.adminKubeconfig}`,
                  '  kubectl get nodes; kubectl get pods -A -o wide',
                  '  kubectl apply -f examples/kube-policy.yaml       # reaches the dataplane',
                  '  kubectl label pod -n default client role=trusted --overwrite',
                ]),
            `  export TORTIE_CONFIG=${state.configFile}`,
            `  tortie lab pod add default/web${h} --node 0 --labels app=web`,
            `  tortie lab pod add default/client${h} --node ${Math.min(1, o.nodes - 1)} --labels app=client`,
            `  tortie lab probe${h}`,
            '  tortie apply -f policy.yaml; tortie get knp -A     # Kubernetes NetworkPolicies',
            `  tortie lab exec${h} default/client -- ip -4 addr show eth0`,
            `  tortie node status --node ${state.nodes[0]!.name}`,
            `  tortie lab status${h}`,
            `  tortie lab down${h}`,
          ].join('\n'),
        );
      },
    );

  lab
    .command('down')
    .description(
      'remove a lab: processes, namespaces, pins, etcd, state (also after a crash; nothing there is success)',
    )
    .option('--id <id>', 'lab id', clusterId, DEFAULT_ID)
    .action(async (o: { id: string }) => {
      const { destroyClusterLab, labPresence } = await import('../lab/cluster/cluster-lab.js');
      const present = labPresence(o.id);
      await destroyClusterLab(o.id);
      console.log(present.length > 0 ? `lab ${o.id} removed` : `no lab ${o.id}: nothing to remove`);
    });

  lab
    .command('list')
    .description('labs on this machine (from their state directories and namespaces)')
    .option('--json', 'print JSON', false)
    .action(async (o: { json: boolean }) => {
      const { listLabIds, readState } = await import('../lab/cluster/state.js');
      const labs = listLabIds().map((e) => {
        let state;
        let problem: string | undefined;
        try {
          state = readState(e.id);
          if (!state)
            problem = `no state file (a test's in-process lab, or a crashed build): tortie lab down --id ${e.id} removes it`;
        } catch (err) {
          problem = (err as Error).message;
        }
        return {
          id: e.id,
          nodes: state?.nodes.length,
          pods: state?.pods.length,
          etcdMembers: state?.etcd.members.length,
          ...(state?.kube === undefined ? {} : { datastore: 'kubernetes' }),
          encap: state?.encap,
          createdAt: state?.createdAt,
          config: state?.configFile,
          ...(problem ? { problem } : {}),
        };
      });
      if (o.json) {
        console.log(JSON.stringify({ labs }, null, 2));
        return;
      }
      if (labs.length === 0) {
        console.log('no labs (build one with tortie lab up)');
        return;
      }
      console.log(
        formatTable(
          ['ID', 'NODES', 'PODS', 'ETCD', 'ENCAP', 'CREATED', 'CONFIG'],
          labs.map((l) =>
            l.problem
              ? [l.id, '-', '-', '-', '-', '-', l.problem]
              : [
                  l.id,
                  String(l.nodes),
                  String(l.pods),
                  l.datastore === undefined ? String(l.etcdMembers) : 'kube-apiserver',
                  l.encap!,
                  l.createdAt!,
                  l.config!,
                ],
          ),
        ),
      );
    });

  const pod = lab.command('pod').description("a lab's pods (real CNI plugin, echo servers)");

  pod
    .command('add')
    .description(
      'create a pod: its namespace, the CNI ADD on the node, its echo servers (kept running)',
    )
    .argument('<pod>', 'NAMESPACE/NAME (the Namespace resource is created if missing)', podKey)
    .requiredOption('--node <node>', 'node index (0), short name (n0) or name (<id>-n0)')
    .option('--id <id>', 'lab id', clusterId, DEFAULT_ID)
    .option('--labels <k=v,...>', 'pod labels', labels, {})
    .option(
      '--service-account <name>',
      "the Pod's serviceAccountName (--datastore kubernetes labs; default default)",
    )
    .option(
      '--servers <list>',
      'what the pod serves, e.g. tcp:80,udp:80 ("" for nothing)',
      'tcp:80,udp:80',
    )
    .action(
      async (
        p: { namespace: string; name: string; key: string },
        o: {
          id: string;
          node: string;
          labels: Record<string, string>;
          servers: string;
          serviceAccount?: string;
        },
      ) => {
        await checkServers(o.servers);
        const { ClusterLab } = await import('../lab/cluster/cluster-lab.js');
        const { withLabLock } = await import('../lab/cluster/state.js');
        // The lab is read under the lock: another `pod add` may have just saved.
        const added = await withLabLock(o.id, async () => {
          const fresh = await ClusterLab.open(o.id);
          try {
            const node = resolveNode(fresh, o.node);
            if (fresh.pods.some((x) => x.key === p.key))
              throw new UsageError(`pod ${p.key} already exists in lab ${o.id}`);
            if (o.serviceAccount !== undefined && fresh.kube === undefined)
              throw new UsageError(
                `--service-account: lab ${o.id} runs on etcd (build it with --datastore kubernetes)`,
              );
            return await fresh.addPod({
              namespace: p.namespace,
              name: p.name,
              labels: o.labels,
              node,
              servers: o.servers,
              ...(o.serviceAccount === undefined ? {} : { serviceAccount: o.serviceAccount }),
              // The servers' ports as the Pod's container ports (kubectl shows them).
              ...(fresh.kube === undefined ? {} : { ports: containerPorts(o.servers) }),
            });
          } finally {
            await fresh.close();
          }
        });
        console.log(`pod ${added.key}: ${added.ip} on ${added.node}`);
      },
    );

  pod
    .command('del')
    .alias('delete')
    .description('delete a pod: CNI DEL, its process, its namespace')
    .argument('<pod>', 'NAMESPACE/NAME', podKey)
    .option('--id <id>', 'lab id', clusterId, DEFAULT_ID)
    .action(async (p: { key: string }, o: { id: string }) => {
      const { ClusterLab } = await import('../lab/cluster/cluster-lab.js');
      const { withLabLock } = await import('../lab/cluster/state.js');
      await withLabLock(o.id, async () => {
        const l = await ClusterLab.open(o.id, { connect: false });
        try {
          if (!l.pods.some((x) => x.key === p.key))
            throw new UsageError(
              `lab ${o.id} has no pod ${p.key} (pods: ${l.pods.map((x) => x.key).join(', ') || 'none'})`,
            );
          await l.removePod(p.key);
        } finally {
          await l.close();
        }
      });
      console.log(`pod ${p.key} deleted`);
    });

  pod
    .command('list')
    .alias('ls')
    .description("the lab's pods: node, address, process")
    .option('--id <id>', 'lab id', clusterId, DEFAULT_ID)
    .option('--json', 'print JSON', false)
    .action(async (o: { id: string; json: boolean }) => {
      const { ClusterLab, isPodProcess } = await import('../lab/cluster/cluster-lab.js');
      const l = await ClusterLab.open(o.id, { connect: false });
      await l.close();
      const pods = l.pods.map((x) => ({
        key: x.key,
        node: x.node,
        ip: x.ip,
        labels: x.labels ?? {},
        servers: x.servers ?? '',
        pid: x.pid ?? null,
        alive: x.pid !== undefined && isPodProcess(x.pid),
      }));
      if (o.json) {
        console.log(JSON.stringify({ lab: o.id, pods }, null, 2));
        return;
      }
      if (pods.length === 0) {
        console.log(`lab ${o.id} has no pods (add one with tortie lab pod add NS/NAME --node 0)`);
        return;
      }
      console.log(
        formatTable(
          ['POD', 'NODE', 'IP', 'LABELS', 'SERVERS', 'PROCESS'],
          pods.map((x) => [
            x.key,
            x.node,
            x.ip,
            Object.entries(x.labels)
              .map(([k, v]) => `${k}=${v}`)
              .join(',') || '-',
            x.servers || '-',
            `${x.pid ?? '-'} ${x.alive ? 'running' : 'DOWN'}`,
          ]),
        ),
      );
    });

  lab
    .command('exec')
    .description("run a command in a pod's network namespace (stdio and exit code passed through)")
    .argument('<pod>', 'NAMESPACE/NAME', podKey)
    .argument('<command...>', 'the command and its arguments, after "--"')
    .option('--id <id>', 'lab id', clusterId, DEFAULT_ID)
    .usage('[--id ID] NAMESPACE/NAME -- COMMAND [ARGS...]')
    .action(async (p: { key: string }, argv: string[], o: { id: string }) => {
      const { readState } = await import('../lab/cluster/state.js');
      const state = readState(o.id);
      if (!state)
        throw new UsageError(`no lab "${o.id}" (build one with tortie lab up --id ${o.id})`);
      const target = state.pods.find((x) => x.key === p.key);
      if (!target)
        throw new UsageError(
          `lab ${o.id} has no pod ${p.key} (pods: ${state.pods.map((x) => x.key).join(', ') || 'none'})`,
        );
      const code = await new Promise<number>((resolve, reject) => {
        const child = spawn('nsenter', [`--net=${target.netns}`, '--', ...argv], {
          stdio: 'inherit',
        });
        child.on('error', reject);
        child.on('exit', (c, signal) => {
          // Killed by a signal: 128 + its number, as a shell reports it.
          if (c !== null) resolve(c);
          else resolve(128 + (signal ? (osConstants.signals[signal] ?? 1) : 1));
        });
      });
      process.exitCode = code;
    });

  lab
    .command('probe')
    .description(
      'the reachability matrix: a connection from every pod to every other (rows from, columns to)',
    )
    .option('--id <id>', 'lab id', clusterId, DEFAULT_ID)
    .option('--port <port>', 'destination port', port, 80)
    .option('--protocol <p>', 'tcp or udp', protocol, 'tcp' as const)
    .option('--timeout-ms <ms>', 'per probe', intIn(50, 60_000, 'milliseconds'), 500)
    .option(
      '--json',
      'print {"lab", "port", "protocol", "pods", "matrix": {"a -> b": bool}}',
      false,
    )
    .action(
      async (o: {
        id: string;
        port: number;
        protocol: 'tcp' | 'udp';
        timeoutMs: number;
        json: boolean;
      }) => {
        const { ClusterLab } = await import('../lab/cluster/cluster-lab.js');
        const l = await ClusterLab.open(o.id, { connect: false });
        await l.close();
        const matrix = await l.matrix(o.port, o.protocol, o.timeoutMs);
        const pods = l.pods.map((x) => x.key);
        if (o.json) {
          console.log(
            JSON.stringify(
              {
                lab: o.id,
                port: o.port,
                protocol: o.protocol,
                pods: l.pods.map((x) => ({ key: x.key, node: x.node, ip: x.ip })),
                matrix,
              },
              null,
              2,
            ),
          );
          return;
        }
        if (pods.length < 2) {
          console.log(
            `lab ${o.id} has ${pods.length} pod(s): nothing to probe (add pods with tortie lab pod add)`,
          );
          return;
        }
        console.log(
          `lab ${o.id}, ${o.protocol}/${o.port}, ${o.timeoutMs} ms timeout: rows from, columns to (. reachable, X blocked)`,
        );
        console.log(
          formatMatrix(pods, (a, b) => (a === b ? '-' : matrix[`${a} -> ${b}`] ? '.' : 'X'), {
            columns: 'numbers',
          }),
        );
        const blocked = Object.values(matrix).filter((v) => !v).length;
        console.log(`${Object.keys(matrix).length - blocked} reachable, ${blocked} blocked`);
      },
    );

  lab
    .command('status')
    .description(
      'nodes (agent running, ready, synced), etcd members (healthy), pods; exit 1 when something is down',
    )
    .option('--id <id>', 'lab id', clusterId, DEFAULT_ID)
    .option('--json', 'print JSON', false)
    .action(async (o: { id: string; json: boolean }) => {
      const { ClusterLab } = await import('../lab/cluster/cluster-lab.js');
      const { labStatus } = await import('../lab/cluster/status.js');
      const l = await ClusterLab.open(o.id, { connect: false });
      const state = l.state();
      const { ok, storeError, nodes, etcd, pods } = await labStatus(l);
      process.exitCode = ok ? 0 : 1;
      if (o.json) {
        console.log(
          JSON.stringify(
            {
              lab: o.id,
              ok,
              encap: state.encap,
              etcdPrefix: state.etcdPrefix,
              config: state.configFile,
              ...(storeError ? { error: storeError } : {}),
              nodes,
              etcd,
              pods,
            },
            null,
            2,
          ),
        );
        return;
      }
      const yes = (b: boolean) => (b ? 'yes' : 'NO');
      console.log(
        `lab ${o.id}: ${ok ? 'ok' : 'DEGRADED'} (encap ${state.encap}, etcd prefix ${state.etcdPrefix}, config ${state.configFile})`,
      );
      if (storeError) console.log(`agent reports unavailable: ${storeError}`);
      console.log(
        formatTable(
          ['NODE', 'UNDERLAY', 'AGENT', 'READY', 'SYNCED', 'ENDPOINTS', 'HEARTBEAT'],
          nodes.map((n) => [
            n.name,
            n.underlayIp,
            n.agentRunning ? `pid ${n.agentPid}` : 'DOWN',
            yes(n.ready),
            yes(n.synced),
            n.endpointsProgrammed === null ? '-' : `${n.endpointsProgrammed}/${n.endpointsLocal}`,
            n.heartbeatAt ?? '-',
          ]),
        ),
      );
      console.log('');
      console.log(
        formatTable(
          ['ETCD MEMBER', 'ENDPOINT', 'PROCESS', 'HEALTH'],
          etcd.map((m) => [
            m.name,
            m.endpoint,
            m.running ? `pid ${m.pid}` : 'DOWN',
            m.healthy ? 'healthy' : 'UNHEALTHY',
          ]),
        ),
      );
      console.log('');
      if (pods.length === 0) console.log('no pods');
      else
        console.log(
          formatTable(
            ['POD', 'NODE', 'IP', 'PROCESS'],
            pods.map((x) => [x.key, x.node, x.ip, x.running ? `pid ${x.pid}` : 'DOWN']),
          ),
        );
    });
}
