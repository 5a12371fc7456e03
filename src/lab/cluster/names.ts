/**
 * Every name a cluster lab gives what it makes, from the lab id — so that a lab's parts,
 * its teardown (./teardown.ts) and a lab reopened by another process agree on them, and
 * `destroyClusterLab(id)` finds everything by name also after a crash:
 *
 *   namespaces   tortie-<id>-ul (underlay bridge), tortie-<id>-n<i> (nodes),
 *                tortie-<id>-tor (ToR), tortie-<id>-p-<ns>-<pod> (pods)
 *   links        t<id>p<i>, t<id>tor (the bridge ports, in the underlay namespace)
 *   bpffs        /sys/fs/bpf/tortie-<id>-n<i> (each node's pin root)
 *   etcd         members tortie-<id>-etcd<i>, key prefix /calico (the lab's etcd is its own,
 *                so it holds Calico's layout where calicoctl looks for it); on the
 *                Kubernetes datastore the API server's member tortie-kube-<id>-etcd
 *   temp dirs    $TMP/tortie-cluster-<id>-…, $TMP/tortie-etcd-<id>-…
 *   BIRD, FRR    files bird-<id>-n<i>.*, tortie-<id>-tor-*
 */
import { DEFAULT_PREFIX } from '../../datastore/kinds.js';

/** The CNI network name of every lab. */
export const NETWORK = 'tortie-lab';

/** A lab id: 1-8 lower-case letters or digits (it must fit in 15-character link names). */
export const LAB_ID = /^[a-z0-9]{1,8}$/;

export interface ClusterNames {
  /** Every namespace, bpffs directory and etcd member of the lab starts with this. */
  readonly prefix: string;
  /** The underlay bridge's namespace. */
  readonly underlay: string;
  /** Node `i`'s namespace name (its node name without the leading `tortie-`). */
  readonly node: (i: number) => string;
  /** Node `i`'s bridge port (in the underlay namespace). */
  readonly nodePort: (i: number) => string;
  /** Node `i`'s pin root. */
  readonly pinRoot: (i: number) => string;
  /** Where the agents' pin roots are: any path under it is this lab's. */
  readonly pinRootPrefix: string;
  readonly etcdPrefix: string;
  /** etcd member names start with this (`tortie-<id>-etcd<i>`). */
  readonly etcdMember: string;
  /** The Kubernetes datastore's etcd 3.6 member (`--name`, ../kube/apiserver.ts). */
  readonly kubeEtcdMember: string;
  /** The ToR's namespace and its bridge port. */
  readonly tor: string;
  readonly torPort: string;
  /** The prefix of the lab's own temp dirs (work dir, TLS files) for `mkdtemp`. */
  readonly tempDir: string;
  /** Every temp dir name prefix of the lab (its own and its etcd's). */
  readonly tempDirs: readonly string[];
  /** The directory of the agents' CNI sockets (one per node, `<dir>/<node>.sock`). */
  readonly cniSocketDir: string;
  /** What the command lines of the nodes' BIRDs and the ToR's FRR daemons contain. */
  readonly birdFiles: string;
  readonly torFiles: string;
}

export function clusterNames(id: string): ClusterNames {
  if (!LAB_ID.test(id)) {
    throw new Error(`cluster lab id "${id}": use 1-8 lower-case letters or digits`);
  }
  const prefix = `tortie-${id}-`;
  return {
    prefix,
    underlay: `${prefix}ul`,
    node: (i) => `${prefix}n${i}`,
    nodePort: (i) => `t${id}p${i}`.slice(0, 15),
    pinRoot: (i) => `/sys/fs/bpf/${prefix}n${i}`,
    pinRootPrefix: `/sys/fs/bpf/${prefix}n`,
    etcdPrefix: DEFAULT_PREFIX,
    etcdMember: `${prefix}etcd`,
    kubeEtcdMember: `tortie-kube-${id}-etcd`,
    tor: `${prefix}tor`,
    torPort: `t${id}tor`.slice(0, 15),
    tempDir: `tortie-cluster-${id}-`,
    tempDirs: [`tortie-cluster-${id}-`, `tortie-etcd-${id}-`],
    birdFiles: `/bird-${id}-n`,
    cniSocketDir: `/run/tortie/${prefix}cni`,
    torFiles: `/${prefix}tor-`,
  };
}

/** Where node `node`'s agent serves the CNI plugin (`--cni-socket`, `agent_socket`). */
export function labCniSocket(id: string, node: string): string {
  return `${clusterNames(id).cniSocketDir}/${node}.sock`;
}

/** The name of a pod's network namespace. */
export function podNetnsName(id: string, namespace: string, name: string): string {
  return `tortie-${id}-p-${namespace}-${name}`.slice(0, 60);
}

/** A node's name (what its agent and the store call it) from its namespace name. */
export function nodeName(netnsName: string): string {
  return netnsName.replace(/^tortie-/, '');
}
