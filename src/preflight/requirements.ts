/**
 * What tortie needs from the machine, in one place: every external program that src/,
 * bench/, test/ and scripts/ run (with the Debian package that ships it), and every
 * kernel feature the agent, the CNI plugin and the lab use (with the config option that
 * provides it). `tortie node checksystem` checks exactly these lists; a new spawn of a
 * program belongs here in the same change.
 *
 * The kernel of the project's machines has no loadable modules (CONFIG_MODULES unset), so
 * a feature is built in or absent: the fix for a missing one is a kernel built with the
 * option, never modprobe.
 */

/**
 * Who needs an item: `core` a node (agent, CNI plugin, `tortie` itself), `lab` the labs
 * (`tortie lab …`, `demo`), `tests` the test suite, `bench` the benchmarks, `build` the
 * build (`npm run build`, scripts/build.mjs).
 */
export const PARTS = ['core', 'lab', 'tests', 'bench', 'build'] as const;
export type Part = (typeof PARTS)[number];

export interface CommandRequirement {
  /** Looked up on PATH as the code spells it; an absolute path is checked as it is. */
  readonly command: string;
  /** The Debian package that ships it. */
  readonly package: string;
  readonly parts: readonly Part[];
  /** Who runs it (for the reader; shown in --json). */
  readonly usedBy: string;
}

const cmd = (
  command: string,
  pkg: string,
  parts: readonly Part[],
  usedBy: string,
): CommandRequirement => ({ command, package: pkg, parts, usedBy });

/** Every external program tortie runs, by the name or path it is run with. */
export const COMMANDS: readonly CommandRequirement[] = [
  // A node: the agent, the CNI plugin, the plumbing they share.
  cmd(
    'ip',
    'iproute2',
    ['core', 'lab', 'tests', 'bench'],
    'plumbing (netns, veth, routes), agent (links, routes, ip monitor), CNI guard rules, lab',
  ),
  cmd('bridge', 'iproute2', ['core', 'tests'], 'agent VXLAN fdb (iptables dataplane)'),
  cmd(
    'nsenter',
    'util-linux',
    ['core', 'lab', 'tests', 'bench'],
    'every command run in another network namespace',
  ),
  cmd('sysctl', 'procps', ['core', 'lab', 'tests'], 'plumbing sysctls, lab ip_forward'),
  cmd('iptables-save', 'iptables', ['core'], 'agent natOutgoing (src/agent/nat.ts)'),
  cmd('iptables-restore', 'iptables', ['core'], 'agent natOutgoing (src/agent/nat.ts)'),
  cmd(
    'iptables-nft-save',
    'iptables',
    ['core', 'tests', 'bench'],
    'iptables dataplane (backend nft, the default)',
  ),
  cmd('iptables-nft-restore', 'iptables', ['core'], 'iptables dataplane (backend nft)'),
  cmd(
    'iptables-legacy-save',
    'iptables',
    ['core'],
    'iptables dataplane and natOutgoing with backend legacy',
  ),
  cmd(
    'iptables-legacy-restore',
    'iptables',
    ['core'],
    'iptables dataplane and natOutgoing with backend legacy',
  ),
  cmd('ipset', 'ipset', ['core'], 'iptables dataplane sets'),
  cmd('/usr/sbin/bird', 'bird2', ['core', 'tests', 'bench'], 'agent --routing bgp (src/bgp)'),
  cmd('/usr/sbin/birdc', 'bird2', ['core', 'tests', 'bench'], 'agent --routing bgp (src/bgp)'),
  // The labs.
  cmd('etcd', 'etcd-server', ['lab', 'tests', 'bench'], "the labs' etcd (src/lab/etcd.ts)"),
  cmd('/usr/lib/frr/zebra', 'frr', ['lab', 'tests'], "the lab's ToR router (lab up --tor)"),
  cmd('/usr/lib/frr/bgpd', 'frr', ['lab', 'tests'], "the lab's ToR router (lab up --tor)"),
  cmd('id', 'coreutils', ['lab', 'tests'], "the lab's ToR (frr's uid and gid)"),
  // The tests.
  cmd('birdc', 'bird2', ['tests', 'bench'], 'BGP tests and bench convergence (on PATH)'),
  cmd('vtysh', 'frr', ['tests'], 'BGP topology tests (the ToR)'),
  cmd('tc', 'iproute2', ['tests'], 'native binding tests'),
  cmd('ping', 'iputils-ping', ['tests'], 'e2e reachability'),
  cmd('tcpdump', 'tcpdump', ['tests'], 'packet captures (ipip, bgp, nat, resilience)'),
  cmd('openssl', 'openssl', ['tests'], 'etcd TLS test certificates'),
  cmd('python3', 'python3', ['tests', 'build'], 'ipip test packets; node-gyp'),
  cmd('bpftool', 'bpftool', ['tests'], 'map dumps (bpftool-dump, bpf-loader tests)'),
  cmd('podman', 'podman', ['tests'], 'the podman e2e test'),
  cmd('runc', 'runc', ['tests'], "the podman test's runtime"),
  cmd('conmon', 'conmon', ['tests'], "the podman test (podman's container monitor)"),
  cmd('dpkg-query', 'dpkg', ['tests'], "the podman test (finds busybox-static's busybox)"),
  cmd('/bin/busybox', 'busybox-static', ['tests'], "the podman test's image"),
  cmd('tar', 'tar', ['tests'], "the podman test's image"),
  cmd('umount', 'mount', ['tests'], 'leftover cleanup (test/helpers/leftovers.ts)'),
  cmd('sh', 'dash', ['tests', 'build'], 'resilience test shell; scripts/build.mjs'),
  cmd('test', 'coreutils', ['tests'], 'bpf-build test'),
  cmd('sleep', 'coreutils', ['tests'], 'leftovers test'),
  cmd('flock', 'util-linux', ['tests'], 'bench e2e tests (one bench at a time)'),
  cmd('cat', 'coreutils', ['tests'], 'bench e2e tests (the flock holder)'),
  cmd('true', 'coreutils', ['bench', 'tests'], 'bench cni (nsenter cost)'),
  cmd(
    'systemd-analyze',
    'systemd',
    ['tests'],
    'node-install e2e (verifies the tortie-agent.service it writes)',
  ),
  // Peer programs the tests drive tortie with, built by scripts/build-peers.sh (docs/peers.md).
  // Go >= 1.23.8 for calicoctl v3.28.5: the project's machines have Go 1.26 in /usr/local/go
  // (on PATH); Debian 12's golang-go is 1.19, too old (docs/peers.md says how to get one).
  cmd(
    'go',
    'golang-go',
    ['tests'],
    'scripts/build-peers.sh: builds calicoctl for the calicoctl e2e (needs Go >= 1.23.8)',
  ),
  cmd('sha256sum', 'coreutils', ['tests'], 'scripts/build-peers.sh (the cached binary check)'),
  // The benchmarks (and the e2e tests that run them at tiny sizes).
  cmd('sockperf', 'sockperf', ['bench', 'tests'], 'bench pod-to-pod'),
  cmd('iperf3', 'iperf3', ['bench', 'tests'], 'bench pod-to-pod'),
  cmd('wrk', 'wrk', ['bench', 'tests'], 'bench pod-to-pod'),
  cmd('taskset', 'util-linux', ['bench', 'tests'], 'bench pod-to-pod CPU pinning'),
  cmd('cc', 'gcc', ['bench', 'tests'], 'bench pod-to-pod (bench/conn-server.c)'),
  cmd(
    '/usr/lib/cni/bridge',
    'containernetworking-plugins',
    ['bench', 'tests'],
    'bench cni (the reference plugins)',
  ),
  cmd(
    '/usr/lib/cni/host-local',
    'containernetworking-plugins',
    ['bench', 'tests'],
    'bench cni (the reference plugins)',
  ),
  // The build.
  cmd('make', 'make', ['build', 'tests'], 'bpf/Makefile; BPF test fixtures'),
  cmd('clang', 'clang', ['build', 'tests'], 'BPF objects; BPF test fixtures'),
  cmd('llvm-strip', 'llvm', ['build'], 'checked by scripts/build.mjs'),
  cmd('g++', 'g++', ['build'], 'the native addon (node-gyp)'),
  cmd('npx', 'nodejs', ['build'], 'scripts/build.mjs (node-gyp, tsc)'),
];

export interface KernelFeature {
  readonly id: KernelFeatureId;
  /** What is checked, as a reader names it: "veth links". */
  readonly title: string;
  /** The kernel config option(s) that provide it. */
  readonly config: string;
  readonly parts: readonly Part[];
}

export type KernelFeatureId =
  | 'root'
  | 'bpffs'
  | 'btf'
  | 'netns'
  | 'veth'
  | 'bridge'
  | 'vxlan'
  | 'ip-rule'
  | 'ip-forward'
  | 'bpf-prog'
  | 'clsact'
  | 'cls-bpf'
  | 'xdp-drv'
  | 'nf-tables'
  | 'xt-comment'
  | 'xt-conntrack'
  | 'xt-set'
  | 'xt-multiport'
  | 'nft-mark'
  | 'xt-icmp'
  | 'xt-MARK'
  | 'xt-LOG'
  | 'xt-MASQUERADE'
  | 'ipset-hash-net'
  | 'ipset-hash-ip-port';

const NODE: readonly Part[] = ['core'];

const feature = (
  id: KernelFeatureId,
  title: string,
  config: string,
  parts: readonly Part[] = NODE,
): KernelFeature => ({ id, title, config, parts });

/**
 * Every kernel feature checked, in the order they are reported. The netfilter ones are
 * exactly what tortie's rules use (src/iptables/rules.ts, src/agent/nat.ts), each named by
 * the config option iptables-nft 1.8 needs for it: most matches and targets go through
 * nft_compat as xt extensions; `-m mark` is translated to a native nft expression.
 * XDP is only attached by the tests (test/dataplane/native.test.ts); nothing reads the
 * kernel's own BTF yet (tortie's programs use no CO-RE), but a BPF node is expected to
 * have it.
 */
export const KERNEL_FEATURES: readonly KernelFeature[] = [
  feature('root', 'running as root', 'root or CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_BPF'),
  feature('bpffs', 'bpffs mounted at /sys/fs/bpf', 'CONFIG_BPF_SYSCALL'),
  feature('btf', 'BTF at /sys/kernel/btf/vmlinux', 'CONFIG_DEBUG_INFO_BTF'),
  feature('netns', 'network namespaces', 'CONFIG_NET_NS'),
  feature('veth', 'veth links', 'CONFIG_VETH'),
  feature('bridge', 'bridge links', 'CONFIG_BRIDGE', ['lab', 'tests', 'bench']),
  feature('vxlan', 'vxlan links', 'CONFIG_VXLAN'),
  feature('ip-rule', 'policy routing rules (CNI guard)', 'CONFIG_IP_MULTIPLE_TABLES'),
  feature(
    'ip-forward',
    'net.ipv4.ip_forward settable in a namespace',
    'CONFIG_SYSCTL, CONFIG_PROC_SYSCTL',
  ),
  feature('bpf-prog', 'BPF programs load', 'CONFIG_BPF_SYSCALL'),
  feature('clsact', 'clsact qdisc', 'CONFIG_NET_SCH_INGRESS'),
  feature(
    'cls-bpf',
    'tc BPF filter (cls_bpf, direct-action)',
    'CONFIG_NET_CLS_BPF, CONFIG_NET_CLS_ACT',
  ),
  feature('xdp-drv', 'XDP in driver mode on veth', 'CONFIG_VETH, CONFIG_BPF_SYSCALL', ['tests']),
  feature('nf-tables', 'nf_tables (iptables-nft)', 'CONFIG_NF_TABLES, CONFIG_NF_TABLES_IPV4'),
  feature(
    'xt-comment',
    'iptables -m comment',
    'CONFIG_NFT_COMPAT, CONFIG_NETFILTER_XT_MATCH_COMMENT',
  ),
  feature(
    'xt-conntrack',
    'iptables -m conntrack --ctstate',
    'CONFIG_NF_CONNTRACK, CONFIG_NETFILTER_XT_MATCH_CONNTRACK',
  ),
  feature('xt-set', 'iptables -m set --match-set', 'CONFIG_NETFILTER_XT_SET'),
  feature('xt-multiport', 'iptables -m multiport', 'CONFIG_NETFILTER_XT_MATCH_MULTIPORT'),
  feature('nft-mark', 'iptables -m mark', 'CONFIG_NF_TABLES'),
  feature('xt-icmp', 'iptables -m icmp --icmp-type', 'CONFIG_IP_NF_IPTABLES'),
  feature('xt-MARK', 'iptables -j MARK --set-xmark', 'CONFIG_NETFILTER_XT_TARGET_MARK'),
  feature('xt-LOG', 'iptables -j LOG', 'CONFIG_NETFILTER_XT_TARGET_LOG'),
  feature(
    'xt-MASQUERADE',
    'iptables -t nat -j MASQUERADE (natOutgoing)',
    'CONFIG_NF_NAT, CONFIG_NFT_NAT, CONFIG_NETFILTER_XT_TARGET_MASQUERADE',
  ),
  feature('ipset-hash-net', 'ipset hash:net (and swap)', 'CONFIG_IP_SET, CONFIG_IP_SET_HASH_NET'),
  feature('ipset-hash-ip-port', 'ipset hash:ip,port', 'CONFIG_IP_SET_HASH_IPPORT'),
];
