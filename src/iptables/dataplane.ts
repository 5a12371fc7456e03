/**
 * The iptables dataplane of one node: renders a world into chains and ipsets and writes
 * only what changed, in the node's network namespace.
 *
 * Order of an update: `ipset restore` (new sets created full, changed sets built aside
 * and swapped in), then `iptables-restore --noflush` (changed chains flushed and
 * rewritten, unused ones removed, hooks added — one atomic transaction), then the sets
 * nothing references any more destroyed. The last written state is kept in memory; on
 * open, `iptables-save` and `ipset save` are read to adopt what a previous run left.
 */
import { CommandError } from '../plumbing/command.js';
import { runIn } from '../plumbing/netns.js';
import type { World } from '../policy/model.js';
import { render, type IptablesEndpoint, type RenderOptions, type Ruleset } from './render.js';
import {
  EMPTY_STATE,
  parseIpsetSave,
  parseIptablesSave,
  plan,
  type KernelState,
  type Plan,
} from './restore.js';

export type IptablesBackend = 'nft' | 'legacy';

export interface IptablesDataplaneOptions extends RenderOptions {
  /** The node's network namespace by path; undefined: the caller's own. */
  readonly netns?: string;
  /** iptables-nft (default; Debian 12's iptables) or iptables-legacy. */
  readonly backend?: IptablesBackend;
}

export class IptablesCommandError extends Error {
  override readonly name = 'IptablesCommandError';
}

interface Result {
  readonly stdout: string;
}

/**
 * Runs an iptables/ipset program in `netns` (plumbing's runIn), feeding `input` on stdin;
 * a failure is an IptablesCommandError that quotes the input it refused.
 */
async function run(
  netns: string | undefined,
  command: string,
  args: readonly string[],
  input = '',
): Promise<Result> {
  try {
    // A restore of tens of thousands of rules takes seconds; 10 minutes is a hang.
    return await runIn(netns, command, args, { stdin: input, timeoutMs: RESTORE_TIMEOUT_MS });
  } catch (e) {
    const said =
      e instanceof CommandError && e.exitCode !== null
        ? `${command} ${args.join(' ')} exited ${e.exitCode}: ${e.stderr.trim() || e.stdout.trim()}`
        : `${command}: ${(e as Error).message}`;
    throw new IptablesCommandError(said + (input === '' ? '' : `\n--- input ---\n${input}`), {
      cause: e,
    });
  }
}

const RESTORE_TIMEOUT_MS = 10 * 60_000;

export interface ApplyReport {
  readonly writtenChains: readonly string[];
  readonly deletedChains: readonly string[];
  readonly writtenSets: readonly string[];
  readonly deletedSets: readonly string[];
  /** The iptables-restore input written ('' when no chain changed). */
  readonly iptablesInput: string;
  readonly ms: number;
}

export class IptablesDataplane {
  private state: KernelState = EMPTY_STATE;
  private last: Ruleset | undefined;
  private readonly backend: IptablesBackend;

  private constructor(private readonly opts: IptablesDataplaneOptions) {
    this.backend = opts.backend ?? 'nft';
  }

  /** Opens the dataplane of a namespace, adopting the chains and sets found there. */
  static async open(opts: IptablesDataplaneOptions = {}): Promise<IptablesDataplane> {
    const dp = new IptablesDataplane(opts);
    await dp.resync();
    return dp;
  }

  private cmd(tool: 'restore' | 'save'): string {
    return `iptables-${this.backend}-${tool}`;
  }

  /** Reads what the kernel holds (after a crash, or to check the memory's view). */
  async resync(): Promise<KernelState> {
    const saved = await run(this.opts.netns, this.cmd('save'), ['-t', 'filter']);
    const sets = await run(this.opts.netns, 'ipset', ['save']);
    this.state = { ...parseIptablesSave(saved.stdout), sets: parseIpsetSave(sets.stdout) };
    return this.state;
  }

  /** The state the dataplane believes the kernel holds. */
  current(): KernelState {
    return this.state;
  }

  /** The last ruleset written. */
  lastRendered(): Ruleset | undefined {
    return this.last;
  }

  /**
   * Renders `world` for `locals` and writes what differs from the last state. `extra`
   * adds what changes while the node runs (the VXLAN sources) to the options given at
   * open.
   */
  async program(
    world: World,
    locals: readonly IptablesEndpoint[],
    extra: Partial<RenderOptions> = {},
  ): Promise<ApplyReport> {
    return this.write(render(world, locals, { ...this.opts, ...extra }));
  }

  async write(ruleset: Ruleset): Promise<ApplyReport> {
    const started = performance.now();
    const p: Plan = plan(ruleset, this.state);
    try {
      if (p.ipsetBefore !== '')
        await run(this.opts.netns, 'ipset', ['restore', '-exist'], p.ipsetBefore);
      if (p.iptables !== '')
        await run(this.opts.netns, this.cmd('restore'), ['--noflush', '-w', '5'], p.iptables);
      if (p.ipsetAfter !== '') await run(this.opts.netns, 'ipset', ['restore'], p.ipsetAfter);
    } catch (e) {
      // Part of it may have been applied: read back what the kernel really holds.
      await this.resync().catch(() => undefined);
      throw e;
    }
    this.state = p.next;
    this.last = ruleset;
    return {
      writtenChains: p.writtenChains,
      deletedChains: p.deletedChains,
      writtenSets: p.writtenSets,
      deletedSets: p.deletedSets,
      iptablesInput: p.iptables,
      ms: performance.now() - started,
    };
  }

  /** Removes every tortie chain, hook and set from the namespace. */
  async destroy(): Promise<void> {
    await this.resync();
    const lines = ['*filter'];
    for (const hook of this.state.hooks) {
      const [builtin, chain] = hook.split('>') as [string, string];
      lines.push(`-D ${builtin} -j ${chain}`);
    }
    for (const chain of this.state.chains.keys()) lines.push(`:${chain} - [0:0]`);
    for (const chain of this.state.chains.keys()) lines.push(`-X ${chain}`);
    lines.push('COMMIT', '');
    await run(this.opts.netns, this.cmd('restore'), ['--noflush', '-w', '5'], lines.join('\n'));
    const sets = [...this.state.sets.keys()].map((s) => `destroy ${s}`);
    if (sets.length > 0) await run(this.opts.netns, 'ipset', ['restore'], sets.join('\n') + '\n');
    this.state = EMPTY_STATE;
    this.last = undefined;
  }
}
