/**
 * `tortie node install` and `tortie node uninstall`: this machine as a tortie node without
 * Kubernetes, the way Calico's etcd deployments run calico-node (docs/bare-metal.md).
 *
 * What install writes (paths as on the node; `--root DIR` writes them under DIR, for
 * image builds and tests, and the files still name the node's own paths):
 *
 *   /etc/tortie/tortie-agent.env              the agent's settings, as TORTIE_* variables
 *   /etc/systemd/system/tortie-agent.service  `tortie node run` with that environment
 *   /opt/cni/bin/tortie                       the CNI plugin (a shim running this build)
 *   /etc/cni/net.d/10-tortie.conflist         the network, for podman (CNI backend) and
 *                                             containerd/nerdctl alike
 *   /etc/tortie/node-install.json             what was written (path, sha256), for uninstall
 *
 * The settings are the agent's own: install offers every option of `tortie node run`
 * (taken from that command, not listed again here) plus the global etcd options, and
 * writes each given one as the variable `resolveAgentConfig` reads (ENV_NAMES). The
 * environment is checked with `resolveAgentConfig` and the conflist with the plugin's
 * parser before anything is written. A file that exists with other content is not
 * replaced without --force; an install that changes nothing writes nothing.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, rename, rmdir, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join, posix, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import type { AgentFlags } from '../agent/config.js';
import { packagePath } from '../util/package-root.js';
import { resolveConnection, type GlobalOptions } from './context.js';
import { UsageError } from './usage.js';

export const AGENT_UNIT = 'tortie-agent.service';
export const UNIT_PATH = `/etc/systemd/system/${AGENT_UNIT}`;
export const AGENT_ENV_PATH = '/etc/tortie/tortie-agent.env';
export const MANIFEST_PATH = '/etc/tortie/node-install.json';
export const DEFAULT_CNI_BIN_DIR = '/opt/cni/bin';
export const DEFAULT_CNI_CONF_DIR = '/etc/cni/net.d';

/** Options of `node run` that install does not offer: the unit's settings are its env file. */
const NOT_OFFERED = new Set(['agentConfig']);

/** One file install writes: where on the node, what, and its mode. */
export interface PlannedFile {
  readonly path: string;
  /** Text, or the bytes of an executable (the compiled CNI plugin). */
  readonly content: string | Buffer;
  readonly mode: number;
  /** What it is, for the listing. */
  readonly what: string;
}

export interface NodeInstallInput {
  /** The agent's settings as `node run` would take them (only those given). */
  readonly flags: AgentFlags;
  readonly network: string;
  readonly cniBinDir: string;
  readonly cniConfDir: string;
  /** The node binary and tortie's entry (absolute). */
  readonly nodePath: string;
  readonly mainPath: string;
  /** The CNI plugin's entry (absolute). */
  /** The compiled CNI plugin (cni/plugin/build/tortie). */
  readonly pluginPath: string;
}

interface Manifest {
  readonly writtenBy: string;
  readonly files: readonly { readonly path: string; readonly sha256: string }[];
}

/** The options of `node run` that install offers too (every one but --agent-config). */
export function offeredRunOptions(run: Command): readonly Option[] {
  return run.options.filter((o) => !NOT_OFFERED.has(o.attributeName()));
}

export function registerNodeInstallCommands(node: Command): void {
  const run = node.commands.find((c) => c.name() === 'run');
  if (run === undefined) throw new Error('register `node run` before `node install`');
  const install = node
    .command('install')
    .description(
      'make this machine a node: a systemd unit for the agent (tortie-agent.service), its settings (/etc/tortie/tortie-agent.env; etcd from the global --etcd-* options), the CNI plugin and network config for podman and containerd',
    );
  for (const o of offeredRunOptions(run)) install.addOption(new Option(o.flags, o.description));
  install
    .option('--network <name>', 'CNI network name (podman run --network NAME)', 'tortie')
    .option('--cni-bin-dir <dir>', 'where runtimes look for CNI plugins', DEFAULT_CNI_BIN_DIR)
    .option(
      '--cni-conf-dir <dir>',
      'where runtimes read network configs (podman, containerd, nerdctl)',
      DEFAULT_CNI_CONF_DIR,
    )
    .option('--root <dir>', 'write the files under this directory (image builds, tests)', '/')
    .option('--dry-run', 'print every file it would write, write nothing', false)
    .option('--force', 'replace files that exist with other content', false)
    .action(async (_: unknown, cmd: Command) => {
      const o = cmd.optsWithGlobals<
        GlobalOptions &
          Record<string, unknown> & {
            network: string;
            cniBinDir: string;
            cniConfDir: string;
            root: string;
            dryRun: boolean;
            force: boolean;
          }
      >();
      const flags: Record<string, string> = {};
      for (const opt of offeredRunOptions(run)) {
        const v = o[opt.attributeName()];
        if (typeof v === 'string') flags[opt.attributeName()] = v;
      }
      // etcd as every tortie command finds it: flags, TORTIE_ETCD_*, --config / tortie.yaml.
      const etcd = await resolveConnection(o);
      flags.etcdEndpoints = etcd.endpoints.join(',');
      if (etcd.prefix !== undefined) flags.etcdPrefix = etcd.prefix;
      // TLS files by absolute path: the unit and the plugin do not run where install did.
      const { ca, cert, key } = etcd.tls ?? {};
      if (typeof ca === 'string') flags.etcdCaCert = resolve(ca);
      if (typeof cert === 'string') flags.etcdCert = resolve(cert);
      if (typeof key === 'string') flags.etcdKey = resolve(key);
      const { builtPluginPath } = await import('../cni/install.js');
      const files = await nodeInstallPlan({
        flags,
        network: o.network,
        cniBinDir: o.cniBinDir,
        cniConfDir: o.cniConfDir,
        nodePath: process.execPath,
        mainPath: packagePath('dist', 'bin', 'tortie.js'),
        pluginPath: builtPluginPath(),
      });
      for (const line of await applyInstall(o.root, files, { dryRun: o.dryRun, force: o.force }))
        console.log(line);
    });

  node
    .command('uninstall')
    .description(
      'remove the files `tortie node install` wrote (stop the agent first: systemctl disable --now tortie-agent)',
    )
    .option('--root <dir>', 'the directory install wrote under', '/')
    .option('--dry-run', 'print what it would remove, remove nothing', false)
    .option('--force', 'remove files changed since install too', false)
    .action(async (o: { root: string; dryRun: boolean; force: boolean }) => {
      for (const line of await applyUninstall(o.root, o)) console.log(line);
    });
}

/**
 * The files of an install, every one checked: the environment by the agent's own
 * resolver (as the agent will read it), the conflist by the plugin's parser, every path
 * the unit names by what systemd accepts.
 */
export async function nodeInstallPlan(input: NodeInstallInput): Promise<PlannedFile[]> {
  const { AgentConfigError, ENV_NAMES, resolveAgentConfig } = await import('../agent/config.js');
  const { checkWithPlugin, conflistFor, PLUGIN_BINARY } = await import('../cni/install.js');
  for (const [what, path] of [
    ['tortie', input.mainPath],
    ['the CNI plugin', input.pluginPath],
  ] as const) {
    if (!existsSync(path)) throw new Error(`${path} (${what}) does not exist: build tortie first`);
  }

  // The agent's environment, in ENV_NAMES' order, each value as systemd and sh read it.
  const env: Record<string, string> = {};
  const lines: string[] = [];
  for (const [key, name] of Object.entries(ENV_NAMES) as [keyof AgentFlags, string][]) {
    const value = input.flags[key];
    if (value === undefined) continue;
    if (!ENV_VALUE.test(value)) {
      throw new UsageError(
        `--${kebab(key)} ${JSON.stringify(value)}: only letters, digits and ${ENV_VALUE_PUNCTUATION} can go in ${AGENT_ENV_PATH}`,
      );
    }
    env[name] = value;
    lines.push(`${name}=${value}`);
  }
  let config;
  try {
    config = resolveAgentConfig({ env, hostname: hostname() });
  } catch (e) {
    if (e instanceof AgentConfigError) throw new UsageError(e.message);
    throw e;
  }

  // The network: the agent's etcd and node name, so the plugin and the agent meet.
  const conflist = conflistFor({
    binDir: input.cniBinDir,
    network: input.network,
    etcdEndpoints: config.etcd.endpoints.join(','),
    ...(config.etcd.prefix === undefined ? {} : { etcdPrefix: config.etcd.prefix }),
    ...(input.flags.etcdCaCert === undefined ? {} : { etcdCaCertFile: input.flags.etcdCaCert }),
    ...(input.flags.etcdCert === undefined ? {} : { etcdCertFile: input.flags.etcdCert }),
    ...(input.flags.etcdKey === undefined ? {} : { etcdKeyFile: input.flags.etcdKey }),
    ...(input.flags.nodeName === undefined ? {} : { node: config.nodeName }),
  });
  if (config.nodeNetns !== undefined) {
    (conflist.plugins as Record<string, unknown>[])[0]!.host_netns = config.nodeNetns;
  }
  try {
    await checkWithPlugin(conflist);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }

  for (const [what, path] of [
    ['node', input.nodePath],
    ['tortie', input.mainPath],
    ['--cni-bin-dir', input.cniBinDir],
    ['--cni-conf-dir', input.cniConfDir],
  ] as const) {
    if (!UNIT_PATH_TEXT.test(path)) {
      throw new UsageError(
        `${what} ${JSON.stringify(path)}: a path written into the unit and configs must be absolute, without spaces, quotes, '$', '%' or '\\'`,
      );
    }
  }

  const envText = [
    '# tortie agent settings, written by `tortie node install` (docs/bare-metal.md).',
    '# Read by tortie-agent.service (EnvironmentFile=) and by every `tortie` command when',
    '# loaded into a shell: set -a; . /etc/tortie/tortie-agent.env; set +a',
    '# Variables: `tortie node run --help`; after a change: systemctl restart tortie-agent',
    ...lines,
    '',
  ].join('\n');

  return [
    { path: AGENT_ENV_PATH, content: envText, mode: 0o644, what: 'agent settings' },
    {
      path: UNIT_PATH,
      content: agentUnit({
        nodePath: input.nodePath,
        mainPath: input.mainPath,
        pinRoot: config.pinRoot,
      }),
      mode: 0o644,
      what: 'systemd unit',
    },
    {
      path: posix.join(input.cniBinDir, PLUGIN_BINARY),
      content: await readFile(input.pluginPath),
      mode: 0o755,
      what: 'CNI plugin',
    },
    {
      path: posix.join(input.cniConfDir, `10-${input.network}.conflist`),
      content: JSON.stringify(conflist, null, 2) + '\n',
      mode: 0o644,
      what: 'CNI network config',
    },
  ];
}

/** Characters an env file value may have: the same in systemd's EnvironmentFile and sh. */
const ENV_VALUE_PUNCTUATION = "'_', '.', '/', ':', ',', '=', '@', '+', '-'";
const ENV_VALUE = /^[A-Za-z0-9_./:,=@+-]+$/;
/** A path systemd takes as written (no specifiers, variables, quoting or escapes). */
const UNIT_PATH_TEXT = /^\/[A-Za-z0-9_./@+-]*$/;

/**
 * The agent's unit. It runs as root: the agent loads BPF programs and maps, attaches tc
 * programs, writes routes, sysctls and (bgp) runs BIRD. Pins live on bpffs, which systemd
 * mounts at /sys/fs/bpf at boot; the ExecStartPre mounts it where it did not.
 */
export function agentUnit(o: { nodePath: string; mainPath: string; pinRoot: string }): string {
  const bpffs = bpffsMountOf(o.pinRoot);
  return [
    '# Written by `tortie node install` (docs/bare-metal.md); settings: ' + AGENT_ENV_PATH,
    '[Unit]',
    "Description=tortie agent: this node's eBPF dataplane, kept equal to the etcd store",
    'Wants=network-online.target',
    // After this host's etcd when it runs one (an ordering on an absent unit is ignored).
    'After=network-online.target etcd.service',
    `RequiresMountsFor=${bpffs}`,
    // Keep restarting: a node without its agent stops following the store.
    'StartLimitIntervalSec=0',
    '',
    '[Service]',
    'Type=simple',
    'User=root',
    `EnvironmentFile=${AGENT_ENV_PATH}`,
    `ExecStartPre=/bin/sh -c "mountpoint -q ${bpffs} || mount -t bpf bpf ${bpffs}"`,
    `ExecStart=${o.nodePath} ${o.mainPath} node run`,
    // SIGTERM: the agent stops and leaves the dataplane on its pins (a restart adopts it).
    'KillSignal=SIGTERM',
    'TimeoutStopSec=15',
    'Restart=always',
    'RestartSec=2',
    'LimitMEMLOCK=infinity',
    'LimitNOFILE=65536',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

/** The bpffs mount holding the pin root: /sys/fs/bpf for /sys/fs/bpf/tortie. */
function bpffsMountOf(pinRoot: string): string {
  return pinRoot.startsWith('/sys/fs/bpf/') || pinRoot === '/sys/fs/bpf'
    ? '/sys/fs/bpf'
    : posix.dirname(pinRoot);
}

function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

function sha256(content: string | Buffer): string {
  return createHash('sha256').update(content).digest('hex');
}

async function readIfPresent(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

async function writeAtomically(
  path: string,
  content: string | Buffer,
  mode: number,
): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temporary = `${path}.tmp-${process.pid}`;
  await writeFile(temporary, content, { mode });
  await chmod(temporary, mode);
  await rename(temporary, path);
}

async function readManifest(root: string): Promise<Manifest | undefined> {
  const bytes = await readIfPresent(join(root, MANIFEST_PATH));
  if (bytes === undefined) return undefined;
  try {
    const m = JSON.parse(bytes.toString('utf8')) as Manifest;
    if (!Array.isArray(m.files)) throw new Error('no files');
    return m;
  } catch (e) {
    throw new Error(`${join(root, MANIFEST_PATH)} is not install's manifest: ${String(e)}`);
  }
}

const NEXT_STEPS = [
  'next: systemctl daemon-reload && systemctl enable --now tortie-agent',
  '      then: tortie node status (with the settings: set -a; . /etc/tortie/tortie-agent.env; set +a)',
];

/**
 * Writes the plan under `root`: nothing when a file differs and there is no --force
 * (every such file named), else every file that is new or changed, then the manifest.
 * Files of an earlier install that this one no longer writes are removed when unchanged.
 */
export async function applyInstall(
  root: string,
  files: readonly PlannedFile[],
  o: { dryRun: boolean; force: boolean },
): Promise<string[]> {
  const manifest: Manifest = {
    writtenBy: 'tortie node install',
    files: files.map((f) => ({ path: f.path, sha256: sha256(f.content) })),
  };
  const all: PlannedFile[] = [
    ...files,
    {
      path: MANIFEST_PATH,
      content: JSON.stringify(manifest, null, 2) + '\n',
      mode: 0o644,
      what: 'what install wrote (for uninstall)',
    },
  ];
  const previous = await readManifest(root);
  const states = await Promise.all(
    all.map(async (f) => {
      const now = await readIfPresent(join(root, f.path));
      return now === undefined
        ? 'new'
        : now.equals(Buffer.from(f.content))
          ? 'unchanged'
          : 'differs';
    }),
  );
  // The manifest differs whenever a file does: it is not a user's file to protect.
  const differing = all.filter((f, i) => states[i] === 'differs' && f.path !== MANIFEST_PATH);
  // Files an earlier install wrote that this one does not (another --network, bin dir).
  const stale = (previous?.files ?? []).filter((p) => !files.some((f) => f.path === p.path));
  if (o.dryRun) {
    const out: string[] = [];
    all.forEach((f, i) => {
      const state = states[i] === 'differs' ? (o.force ? 'replaced' : 'DIFFERS') : states[i];
      out.push(`# ${f.path} (${f.what}; mode ${f.mode.toString(8)}; ${state})`);
      out.push(
        typeof f.content === 'string'
          ? f.content.trimEnd()
          : `(an executable of ${f.content.length} bytes, sha256 ${sha256(f.content)})`,
      );
      out.push('');
    });
    for (const s of stale) out.push(`# ${s.path} (written by an earlier install: removed)`);
    out.push(`# dry run: nothing written under ${root}`);
    return out;
  }
  if (differing.length > 0 && !o.force) {
    throw new Error(
      `not writing anything: ${differing.map((f) => join(root, f.path)).join(', ')} ${differing.length === 1 ? 'exists' : 'exist'} with other content (--dry-run shows what would be written, --force replaces)`,
    );
  }
  const out: string[] = [];
  for (const [i, f] of all.entries()) {
    const target = join(root, f.path);
    if (states[i] === 'unchanged') {
      if (f.path !== MANIFEST_PATH) out.push(`unchanged ${target}`);
      continue;
    }
    await writeAtomically(target, f.content, f.mode);
    if (f.path !== MANIFEST_PATH)
      out.push(`${states[i] === 'new' ? 'wrote' : 'replaced'} ${target}`);
  }
  for (const s of stale) {
    const target = join(root, s.path);
    const text = await readIfPresent(target);
    if (text === undefined) continue;
    if (sha256(text) === s.sha256) {
      await unlink(target);
      out.push(`removed ${target} (an earlier install's)`);
    } else {
      out.push(`left ${target}: written by an earlier install, changed since`);
    }
  }
  if (states.every((s) => s === 'unchanged')) out.push('nothing to do: installed as asked');
  else out.push(...NEXT_STEPS);
  return out;
}

/**
 * Removes what the manifest lists, and the manifest: nothing when a file was changed
 * since install and there is no --force (every such file named).
 */
export async function applyUninstall(
  root: string,
  o: { dryRun: boolean; force: boolean },
): Promise<string[]> {
  const manifest = await readManifest(root);
  if (manifest === undefined) {
    throw new Error(`nothing to uninstall: ${join(root, MANIFEST_PATH)} does not exist`);
  }
  const present = (
    await Promise.all(
      manifest.files.map(async (f) => {
        const text = await readIfPresent(join(root, f.path));
        return text === undefined ? [] : [{ ...f, changed: sha256(text) !== f.sha256 }];
      }),
    )
  ).flat();
  const changed = present.filter((f) => f.changed);
  if (o.dryRun) {
    return [
      ...present.map(
        (f) => `would remove ${join(root, f.path)}${f.changed ? ' (changed since install)' : ''}`,
      ),
      `would remove ${join(root, MANIFEST_PATH)}`,
    ];
  }
  if (changed.length > 0 && !o.force) {
    throw new Error(
      `not removing anything: ${changed.map((f) => join(root, f.path)).join(', ')} changed since install (--force removes them too)`,
    );
  }
  const out: string[] = [];
  for (const f of present) {
    await unlink(join(root, f.path));
    out.push(`removed ${join(root, f.path)}`);
  }
  await unlink(join(root, MANIFEST_PATH));
  out.push(`removed ${join(root, MANIFEST_PATH)}`);
  // /etc/tortie is install's own directory: gone when nothing else is in it.
  await rmdir(join(root, dirname(MANIFEST_PATH))).catch(() => undefined);
  out.push(
    'the BPF pins stay (the dataplane keeps its last state): tortie node run would adopt them',
  );
  return out;
}
