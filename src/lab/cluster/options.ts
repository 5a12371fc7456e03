/**
 * What `ClusterLab.up` takes, and the checks that refuse a lab that cannot be made before
 * anything is made.
 */
import { checkTorInstalled } from './tor.js';

/** 'vxlan' (pool vxlanMode Always, the kernel's vxlan device) needs dataplane 'iptables'. */
export type Encap = 'ipip' | 'none' | 'vxlan';

export interface ClusterUpOptions {
  /** 1-8 lower-case letters or digits; names everything the lab makes. */
  readonly id: string;
  readonly nodes: number;
  readonly encap: Encap;
  /** The underlay /24 (first three octets); default 192.168.231. Only inside the lab's namespaces. */
  readonly underlay?: string;
  /** The pod pool; default 10.231.0.0/16 with /26 blocks. */
  readonly podCidr?: string;
  /** Log the agents (JSON lines on stdout); default silent. */
  readonly verbose?: boolean;
  /**
   * 'inline' (default): one Agent object per node in this process. 'process': one
   * `tortie node run` process per node (AgentProcess), logs in the lab's work dir — what
   * restart and kill -9 checks need.
   */
  readonly agents?: 'inline' | 'process';
  /** etcd members on loopback: 1 (default) or 3 (a quorum, as production runs it). */
  readonly etcdMembers?: 1 | 3;
  /**
   * Keep the lab after this process ends (what `tortie lab up` does): etcd detached,
   * agents as processes ('inline' is refused), pod processes detached once `close()`
   * lets go, everything named in /run/tortie/labs/<id>/state.json. Default false.
   */
  readonly persist?: boolean;
  /**
   * 'static' (default): the agents compute remote routes from IPAM. 'bgp': every agent
   * runs BIRD in its node namespace (files under the lab's work dir, `bird/`), a node
   * mesh over the underlay; routes come from what BIRD learns.
   */
  readonly routing?: 'static' | 'bgp';
  /** BGP hold time of the lab's BIRDs (routing 'bgp'); default 6 s (keepalive 2 s). */
  readonly bgpHoldTimeSeconds?: number;
  /**
   * An external router (a top-of-rack) on the underlay (routing 'bgp'): namespace
   * `tortie-<id>-tor`, address `<underlay>.250`, FRR (zebra + bgpd, Debian package `frr`)
   * in AS 64999 accepting a session from every underlay address (`bgp listen range`), its
   * files under the lab's work dir (`tor/`). The lab stores a global BGPPeer `tor`
   * (`peerIP` .250, `asNumber` 64999): every node peers with it. Default false.
   */
  readonly tor?: boolean;
  /**
   * The agents' dataplane: 'bpf' (default) or 'iptables' (`--dataplane iptables`; encap
   * 'none' or 'vxlan', not 'ipip').
   */
  readonly dataplane?: 'bpf' | 'iptables';
  /**
   * The agents' defaultEndpointToHostAction (`--default-endpoint-to-host-action`): what a
   * pod's new flow to its own node gets after its egress policy. Default: the agent's, Drop.
   * Nothing the lab itself does needs pods to reach their node.
   */
  readonly endpointToHostAction?: 'Drop' | 'Accept' | 'Return';
  /**
   * etcd with TLS client certificates (`tortie lab up --etcd-tls`): a CA, a server and a
   * client certificate made at start (./etcd-tls.ts) in the lab's state dir (`tls/`) or a
   * temp dir; the members serve https only with `--client-cert-auth`; the agents, the CNI
   * config (`etcd_ca_cert_file`, …) and the lab's tortie.yaml use the client certificate.
   * Default false.
   */
  readonly etcdTls?: boolean;
  /**
   * Where the lab's resources live: 'etcd' (default, the lab's own etcd) or 'kubernetes'
   * (a real kube-apiserver with etcd 3.6, ./kube-lab.ts): the lab plays kubelet (Node and
   * Pod objects, CNI ADD with kubelet's arguments, pod status), the agents and the CNI
   * plugin run on the Kubernetes datastore with the ServiceAccount tokens of manifests/.
   * The agents run as processes (`agents: 'inline'` is refused).
   */
  readonly datastore?: 'etcd' | 'kubernetes';
}

/** Refuses options that cannot make a lab, before anything is made. */
export function checkUpOptions(opts: ClusterUpOptions): void {
  if (opts.nodes < 1 || opts.nodes > 50) throw new Error('nodes: 1 to 50');
  if (opts.tor === true && opts.routing !== 'bgp')
    throw new Error("tor: the external router peers over BGP: use routing 'bgp'");
  if (opts.tor === true) checkTorInstalled();
  if ((opts.persist ?? false) && opts.agents === 'inline')
    throw new Error('a persistent lab runs its agents as processes: leave agents unset');
  if (opts.datastore === 'kubernetes') {
    if (opts.agents === 'inline')
      throw new Error(
        "datastore 'kubernetes': the agents run as processes with the ServiceAccount's kubeconfig: leave agents unset",
      );
    if (opts.etcdTls === true)
      throw new Error("etcdTls: the lab's etcd is not used with datastore 'kubernetes'");
    if ((opts.etcdMembers ?? 1) !== 1)
      throw new Error("etcdMembers: the lab's etcd is not used with datastore 'kubernetes'");
    if (opts.routing === 'bgp')
      throw new Error(
        "routing 'bgp' with datastore 'kubernetes' is not built yet: use routing 'static'",
      );
  }
  const dataplane = opts.dataplane ?? 'bpf';
  if (dataplane === 'iptables' && opts.encap === 'ipip')
    throw new Error(
      "dataplane iptables cannot encapsulate IPIP (the kernel here has no ipip module): use encap 'none' or 'vxlan'",
    );
  if (dataplane === 'bpf' && opts.encap === 'vxlan')
    throw new Error("encap 'vxlan' is for dataplane 'iptables' (the BPF dataplane does IPIP)");
}
