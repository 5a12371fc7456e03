/**
 * The kernel features of requirements.ts, checked by doing them: in a throwaway network
 * namespace `tortie-chk-<pid>-<hex>` (removed at the end whatever happened; one a killed
 * check left behind is removed by the next) the check creates a veth pair, a bridge, a
 * vxlan device and a policy-routing rule, sets net.ipv4.ip_forward, loads a two-program
 * BPF object and attaches it at tc (clsact, cls_bpf direct-action) and as driver-mode
 * XDP, creates the ipset types and inserts one iptables-nft rule per match and target
 * tortie's rules use. Nothing outside that namespace is touched, and nothing is loaded
 * as a module (the project's kernels have none): a feature that fails is reported with
 * the config option that provides it.
 *
 * Cost: one namespace, one `ip -batch`, one sysctl, two `ipset restore`, one
 * `iptables-nft-restore` (one per item only when something fails), a few ms of BPF —
 * about a tenth of a second.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { native } from '../native/index.js';
import type { BpfObject } from '../native/types.js';
import { CommandError } from '../plumbing/command.js';
import { PlumbingError } from '../plumbing/errors.js';
import { createNetns, deleteNetns, netnsPath, runIn, runIpIn } from '../plumbing/netns.js';
import { writeSysctls } from '../plumbing/sysctl.js';
import { pidAlive } from '../util/proc.js';
import { whichCommand } from './commands.js';
import { PROBE_TC_PROGRAM, PROBE_XDP_PROGRAM, probeObject } from './probe-object.js';
import {
  COMMANDS,
  KERNEL_FEATURES,
  type KernelFeature,
  type KernelFeatureId,
} from './requirements.js';

export interface KernelResult {
  readonly feature: KernelFeature;
  /** true: it works; false: it is missing; undefined: it could not be checked. */
  readonly ok: boolean | undefined;
  /** When missing: what is wrong; default "kernel lacks <title> (<config>)". */
  readonly problem?: string;
  /** What failed (the kernel's or the tool's words), or why it was not checked. */
  readonly detail?: string;
  /** When missing: what to do; default a kernel built with the config option(s). */
  readonly fix?: string;
}

export interface KernelCheckOptions {
  /** Only these features (default: every one). */
  readonly features?: readonly KernelFeatureId[];
}

const NETNS_PREFIX = 'tortie-chk-';
const BPF_FS_MAGIC = 0xcafe4a11;
const XDP_FLAGS_DRV_MODE = 4;

// Fixed ifindexes (a fresh namespace has only lo, 1) spare a lookup before attaching.
const VETH = 'tchk0';
const VETH_IFINDEX = 10;
const PEER = 'tchk1';
const PEER_IFINDEX = 11;

const SET_NET = 'tortie-chk-net';

/** The `ip -batch` lines, with the feature each one shows. */
const LINK_LINES: readonly (readonly [KernelFeatureId | undefined, string])[] = [
  [undefined, 'link set lo up'],
  [
    'veth',
    `link add ${VETH} index ${VETH_IFINDEX} type veth peer name ${PEER} index ${PEER_IFINDEX}`,
  ],
  ['veth', `link set ${VETH} up`],
  ['veth', `link set ${PEER} up`],
  ['bridge', 'link add tchk-br type bridge'],
  ['vxlan', 'link add tchk-vx type vxlan id 42 dstport 4789 nolearning'],
  ['ip-rule', `rule add pref 10 iif ${VETH} prohibit`],
];

/** `ipset restore` input per set type, as src/iptables/restore.ts writes them. */
const IPSETS: readonly (readonly [KernelFeatureId, string])[] = [
  [
    'ipset-hash-net',
    [
      `create ${SET_NET} hash:net family inet hashsize 64 maxelem 16`,
      `create ${SET_NET}-t hash:net family inet hashsize 64 maxelem 16`,
      `add ${SET_NET}-t 10.0.0.0/8`,
      `swap ${SET_NET}-t ${SET_NET}`,
      `destroy ${SET_NET}-t`,
    ].join('\n'),
  ],
  [
    'ipset-hash-ip-port',
    [
      'create tortie-chk-ipport hash:ip,port family inet hashsize 64 maxelem 16',
      'add tortie-chk-ipport 10.0.0.1,tcp:80',
    ].join('\n'),
  ],
];

/** One rule per match and target tortie's chains use (src/iptables/rules.ts, src/agent/nat.ts). */
const NF_RULES: readonly {
  readonly id: KernelFeatureId;
  readonly table: 'filter' | 'nat';
  readonly rules: readonly string[];
}[] = [
  { id: 'nf-tables', table: 'filter', rules: ['-j RETURN'] },
  { id: 'xt-comment', table: 'filter', rules: ['-m comment --comment "tortie check" -j RETURN'] },
  {
    id: 'xt-conntrack',
    table: 'filter',
    rules: [
      '-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
      '-m conntrack --ctstate INVALID -j DROP',
    ],
  },
  { id: 'xt-set', table: 'filter', rules: [`-m set --match-set ${SET_NET} src -j RETURN`] },
  {
    id: 'xt-multiport',
    table: 'filter',
    rules: ['-p tcp -m multiport --dports 80,8000:8080 -j RETURN'],
  },
  { id: 'nft-mark', table: 'filter', rules: ['-m mark --mark 0x10000/0x10000 -j RETURN'] },
  { id: 'xt-icmp', table: 'filter', rules: ['-p icmp -m icmp --icmp-type 8/0 -j RETURN'] },
  { id: 'xt-MARK', table: 'filter', rules: ['-j MARK --set-xmark 0x0/0x30000'] },
  { id: 'xt-LOG', table: 'filter', rules: ['-j LOG --log-prefix "tortie-chk" --log-level 5'] },
  { id: 'xt-MASQUERADE', table: 'nat', rules: ['-s 10.0.0.0/8 -j MASQUERADE'] },
];

/** The hook each table's scratch chains hang from: where tortie hangs its own. */
const HOOK = { filter: 'FORWARD', nat: 'POSTROUTING' } as const;

/**
 * Outcomes by feature. Every probe's outcome is kept (a feature nobody asked for may be
 * what another depends on: the veth for the attach probes); only the wanted are listed.
 */
class Results {
  private readonly map = new Map<KernelFeatureId, KernelResult>();

  constructor(private readonly wanted: ReadonlySet<KernelFeatureId>) {}

  /** Wanted and not decided yet. */
  needs(id: KernelFeatureId): boolean {
    return this.wanted.has(id) && !this.map.has(id);
  }

  ok(id: KernelFeatureId): void {
    if (!this.map.has(id)) this.map.set(id, { feature: featureOf(id), ok: true });
  }

  /**
   * Missing: `detail` is what the kernel (or the tool) said; `problem` and `fix` replace
   * "kernel lacks …" and the kernel config for what is not the kernel's (root, a mount).
   */
  lacks(id: KernelFeatureId, detail: string, own?: { problem: string; fix: string }): void {
    const f = featureOf(id);
    if (this.map.has(id)) return;
    this.map.set(id, {
      feature: f,
      ok: false,
      problem: own?.problem ?? `kernel lacks ${f.title} (${f.config})`,
      detail: detail.trim(),
      fix: own?.fix ?? `a kernel built with ${f.config.split(', ').join('=y, ')}=y`,
    });
  }

  skip(id: KernelFeatureId, why: string): void {
    if (!this.map.has(id)) this.map.set(id, { feature: featureOf(id), ok: undefined, detail: why });
  }

  skipRest(why: string): void {
    for (const id of this.wanted) this.skip(id, why);
  }

  has(id: KernelFeatureId): boolean | undefined {
    return this.map.get(id)?.ok;
  }

  list(): KernelResult[] {
    return KERNEL_FEATURES.filter((f) => this.wanted.has(f.id) && this.map.has(f.id)).map((f) =>
      this.map.get(f.id)!,
    );
  }
}

function featureOf(id: KernelFeatureId): KernelFeature {
  return KERNEL_FEATURES.find((f) => f.id === id)!;
}

function firstLine(text: string): string {
  return (
    text
      .split('\n')
      .map((l) => l.trim())
      .find((l) => l !== '') ?? ''
  );
}

function errorText(err: unknown): string {
  if (err instanceof CommandError) return firstLine(err.stderr) || err.message;
  if (err instanceof PlumbingError) return firstLine(err.stderr ?? '') || err.message;
  return err instanceof Error ? err.message : String(err);
}

/** Why probes that run `command` cannot: "not checked: needs ipset (apt-get install ipset)". */
function missingTool(command: string): string | undefined {
  if (whichCommand(command, process.env.PATH ?? '') !== undefined) return undefined;
  const pkg = COMMANDS.find((c) => c.command === command)?.package ?? command;
  return `not checked: needs ${command} (apt-get install ${pkg})`;
}

/** Removes namespaces of checks whose process is gone (killed before its cleanup ran). */
async function removeStaleNamespaces(): Promise<void> {
  let names: string[];
  try {
    names = readdirSync('/run/netns');
  } catch {
    return;
  }
  for (const name of names) {
    const m = /^tortie-chk-(\d+)-[0-9a-f]+$/.exec(name);
    if (m && !pidAlive(Number(m[1]))) await deleteNetns(name).catch(() => undefined);
  }
}

function checkHost(r: Results): void {
  const uid = process.getuid?.();
  if (uid === 0) r.ok('root');
  else r.lacks('root', `uid ${uid}`, { problem: 'not running as root', fix: 'run it as root' });

  let bpffs = false;
  try {
    bpffs = statfsSync('/sys/fs/bpf').type === BPF_FS_MAGIC;
  } catch {
    /* no such directory */
  }
  let known = false;
  try {
    known = /\tbpf$/m.test(readFileSync('/proc/filesystems', 'utf8'));
  } catch {
    /* no /proc */
  }
  if (bpffs) r.ok('bpffs');
  else if (known)
    r.lacks('bpffs', '', {
      problem: 'no bpffs mounted at /sys/fs/bpf',
      fix: 'mount -t bpf bpf /sys/fs/bpf',
    });
  else r.lacks('bpffs', 'the kernel knows no bpf filesystem (/proc/filesystems)');

  if (existsSync('/sys/kernel/btf/vmlinux')) r.ok('btf');
  else r.lacks('btf', '');
}

/** One `ip -force -batch`: every line runs; "Command failed -:N" names the ones that failed. */
async function probeLinks(r: Results, ns: string): Promise<void> {
  const lines = LINK_LINES.filter(([id]) => id === undefined || id === 'veth' || r.needs(id));
  let stderr = '';
  try {
    await runIpIn({ kind: 'named', name: ns, path: netnsPath(ns) }, ['-force', '-batch', '-'], {
      stdin: lines.map(([, l]) => l).join('\n') + '\n',
    });
  } catch (err) {
    if (!(err instanceof CommandError) || err.notStarted) throw err;
    stderr = err.stderr;
  }
  const failed = new Map<number, string>();
  let said: string[] = [];
  for (const line of stderr.split('\n')) {
    const m = /^Command failed -:(\d+)/.exec(line.trim());
    if (m) {
      failed.set(Number(m[1]), said.join(' ').trim());
      said = [];
    } else if (line.trim() !== '') said.push(line.trim());
  }
  const broken = new Map<KernelFeatureId, string>();
  lines.forEach(([id, text], i) => {
    const why = failed.get(i + 1);
    if (why !== undefined && id !== undefined && !broken.has(id))
      broken.set(id, `${text}: ${why || 'failed'}`);
  });
  for (const [id] of lines) {
    if (id === undefined) continue;
    const why = broken.get(id);
    if (why === undefined) r.ok(id);
    else r.lacks(id, why);
  }
}

const BPF_FEATURES = ['bpf-prog', 'clsact', 'cls-bpf', 'xdp-drv'] as const;

/** Loads the probe object, attaches it at tc ingress and as driver-mode XDP on the veth. */
function probeBpf(r: Results, ns: string): void {
  const wantsAttach = r.needs('clsact') || r.needs('cls-bpf') || r.needs('xdp-drv');
  if (!r.needs('bpf-prog') && !wantsAttach) return;
  const file = join(tmpdir(), `${ns}.o`);
  let object: BpfObject | undefined;
  try {
    try {
      native.libbpfVersion();
    } catch (err) {
      for (const id of BPF_FEATURES) r.skip(id, `not checked: ${(err as Error).message}`);
      return;
    }
    try {
      writeFileSync(file, probeObject());
      object = native.openObject(file);
      object.load();
      r.ok('bpf-prog');
    } catch (err) {
      const text = (err as Error).message;
      r.lacks('bpf-prog', text);
      for (const id of BPF_FEATURES) r.skip(id, 'not checked: no BPF program loads');
      return;
    }
    if (!wantsAttach) return;
    if (r.has('veth') !== true) {
      for (const id of BPF_FEATURES) r.skip(id, 'not checked: needs a veth');
      return;
    }
    const tcFd = object.program(PROBE_TC_PROGRAM).fd;
    const xdpFd = object.program(PROBE_XDP_PROGRAM).fd;
    const previous = native.enterNetns(netnsPath(ns));
    try {
      if (r.needs('clsact') || r.needs('cls-bpf')) {
        try {
          native.tcAttach(VETH_IFINDEX, 'ingress', tcFd);
          r.ok('clsact');
          r.ok('cls-bpf');
        } catch (err) {
          // The binding says which step failed: creating the clsact hook, or the filter.
          const text = (err as Error).message;
          if (/bpf_tc_hook_create/.test(text)) {
            r.lacks('clsact', text);
            r.skip('cls-bpf', 'not checked: no clsact qdisc');
          } else {
            r.ok('clsact');
            r.lacks('cls-bpf', text);
          }
        }
      }
      if (r.needs('xdp-drv')) {
        try {
          native.xdpAttach(VETH_IFINDEX, xdpFd, XDP_FLAGS_DRV_MODE);
          if (native.xdpQuery(VETH_IFINDEX, XDP_FLAGS_DRV_MODE) === 0)
            r.lacks('xdp-drv', 'attached, but no driver-mode program is reported');
          else r.ok('xdp-drv');
        } catch (err) {
          r.lacks('xdp-drv', (err as Error).message);
        }
      }
    } finally {
      native.restoreNetns(previous);
    }
  } finally {
    object?.close();
    rmSync(file, { force: true });
  }
}

async function probeIpForward(r: Results, ns: string): Promise<void> {
  if (!r.needs('ip-forward')) return;
  const tool = missingTool('sysctl') ?? missingTool('nsenter');
  if (tool !== undefined) return r.skip('ip-forward', tool);
  try {
    await writeSysctls({ kind: 'path', path: netnsPath(ns) }, [['net.ipv4.ip_forward', '1']]);
    r.ok('ip-forward');
  } catch (err) {
    r.lacks('ip-forward', errorText(err));
  }
}

async function probeIpsets(r: Results, ns: string): Promise<void> {
  const wanted = IPSETS.filter(
    ([id]) => r.needs(id) || (id === 'ipset-hash-net' && r.needs('xt-set')),
  );
  const tool = missingTool('ipset');
  if (tool !== undefined) {
    for (const [id] of wanted) r.skip(id, tool);
    return;
  }
  await Promise.all(
    wanted.map(async ([id, input]) => {
      try {
        await runIn({ kind: 'path', path: netnsPath(ns) }, 'ipset', ['restore'], {
          stdin: input + '\n',
        });
        r.ok(id);
      } catch (err) {
        r.lacks(id, errorText(err));
      }
    }),
  );
}

function restoreInput(items: readonly (typeof NF_RULES)[number][]): string {
  const out: string[] = [];
  for (const table of ['filter', 'nat'] as const) {
    const mine = items.filter((i) => i.table === table);
    if (mine.length === 0) continue;
    out.push(`*${table}`);
    mine.forEach((item) => out.push(`:tortie-chk-${item.id} - [0:0]`));
    mine.forEach((item) => {
      out.push(`-A ${HOOK[table]} -j tortie-chk-${item.id}`);
      for (const rule of item.rules) out.push(`-A tortie-chk-${item.id} ${rule}`);
    });
    out.push('COMMIT');
  }
  return out.join('\n') + '\n';
}

/**
 * All rules in one iptables-nft-restore; only when that fails, each alone, to name every
 * missing match (a restore stops at its first error).
 */
async function probeNetfilter(r: Results, ns: string): Promise<void> {
  await probeIpsets(r, ns);
  if (r.has('ipset-hash-net') !== true) r.skip('xt-set', 'not checked: needs an ipset hash:net');
  const runnable = NF_RULES.filter((i) => r.needs(i.id));
  if (runnable.length === 0) return;
  const tool = missingTool('iptables-nft-restore');
  if (tool !== undefined) {
    for (const i of runnable) r.skip(i.id, tool);
    return;
  }
  const restore = (some: readonly (typeof NF_RULES)[number][]) =>
    runIn({ kind: 'path', path: netnsPath(ns) }, 'iptables-nft-restore', ['-w', '5'], {
      stdin: restoreInput(some),
    });
  try {
    await restore(runnable);
    for (const i of runnable) r.ok(i.id);
    return;
  } catch {
    /* find which */
  }
  const base = NF_RULES[0]!;
  try {
    await restore([base]);
    r.ok(base.id);
  } catch (err) {
    r.lacks(base.id, errorText(err));
    for (const i of runnable) r.skip(i.id, 'not checked: nf_tables does not work');
    return;
  }
  for (const i of runnable.filter((x) => x.id !== base.id)) {
    try {
      await restore([i]);
      r.ok(i.id);
    } catch (err) {
      r.lacks(i.id, errorText(err));
    }
  }
}

/** Checks the kernel features (all, or `features`); never throws for a missing one. */
export async function checkKernel(opts: KernelCheckOptions = {}): Promise<KernelResult[]> {
  const r = new Results(new Set(opts.features ?? KERNEL_FEATURES.map((f) => f.id)));
  checkHost(r);
  if (r.has('root') === false) {
    r.skipRest('not checked: needs root');
    return r.list();
  }
  const tool = missingTool('ip') ?? missingTool('nsenter');
  if (tool !== undefined) {
    r.skipRest(tool);
    return r.list();
  }
  await removeStaleNamespaces();
  const ns = `${NETNS_PREFIX}${process.pid}-${randomBytes(3).toString('hex')}`;
  try {
    await createNetns(ns);
  } catch (err) {
    r.lacks('netns', errorText(err));
    r.skipRest('not checked: no network namespace');
    return r.list();
  }
  r.ok('netns');
  try {
    await probeLinks(r, ns);
    // The sysctl and netfilter probes are processes; start them, then do the BPF part
    // (synchronous, on this thread) while they run.
    const spawned = Promise.all([probeIpForward(r, ns), probeNetfilter(r, ns)]);
    try {
      probeBpf(r, ns);
    } finally {
      await spawned;
    }
  } finally {
    // A namespace that cannot be removed now is removed by the next check (its pid is gone).
    await deleteNetns(ns).catch(() => undefined);
  }
  r.skipRest('not checked');
  return r.list();
}
