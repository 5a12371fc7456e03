/**
 * natOutgoing (../nat.ts): keeps the TORTIE-NAT-OUTGOING chain of the node's `nat` table
 * equal to the pools that ask for it. Read and diffed when the pools changed, and at most
 * every 10 s otherwise (someone may have flushed it). A failure is logged, counted, shown
 * in /status and retried; it does not hold back policy or routes.
 */
import type { Logger } from 'pino';
import type {
  ManagerContext,
  ManagerResult,
  Manager,
  MetricsOut,
  Pass,
  StatusPart,
} from '../manager.js';
import { natRules } from '../nat.js';

/** How long an unchanged chain is trusted before it is read again. */
export const NAT_RESYNC_MS = 10_000;

/** Writes the chain's rules (../nat.ts's syncNat): the plan written, undefined when none. */
export type NatSync = (rules: readonly string[]) => Promise<string | undefined>;

export class NatOutgoingManager implements Manager {
  readonly name = 'nat-outgoing';
  private readonly log: Logger;
  /** The chain's rules last synced (undefined: not yet), and when. */
  private synced: { rules: string; at: number } | undefined;
  private error: string | undefined;
  private errors = 0;

  constructor(
    ctx: ManagerContext,
    private readonly sync: NatSync,
    private readonly now: () => number = Date.now,
  ) {
    this.log = ctx.log;
  }

  async reconcile(pass: Pass): Promise<ManagerResult> {
    const settings = pass.snapshot.settings;
    const rules = natRules(
      pass.snapshot.model.list('IPPool').map((p) => ({
        name: p.metadata.name,
        cidr: p.spec.cidr,
        natOutgoing: p.spec.natOutgoing,
      })),
      {
        ...(settings?.natOutgoingAddress === undefined
          ? {}
          : { toAddress: settings.natOutgoingAddress }),
        ...(settings?.natPortRange === undefined ? {} : { portRange: settings.natPortRange }),
      },
    );
    const key = rules.join('\n');
    const last = this.synced;
    if (last !== undefined && last.rules === key && this.now() - last.at < NAT_RESYNC_MS) return {};
    try {
      const plan = await this.sync(rules);
      this.synced = { rules: key, at: this.now() };
      this.error = undefined;
      if (plan !== undefined) this.log.info({ rules }, 'natOutgoing chain written');
      return {};
    } catch (e) {
      const msg = (e as Error).message;
      this.synced = undefined;
      this.errors++;
      if (rules.length === 0 && /ENOENT|No such file|not found|could not be started/i.test(msg)) {
        // No iptables on this node and no pool wants NAT: nothing to do.
        this.synced = { rules: key, at: this.now() };
        return {};
      }
      if (msg !== this.error) this.log.error({ err: msg }, 'natOutgoing chain failed (retried)');
      this.error = msg;
      return { retryMs: 2000 };
    }
  }

  status(): StatusPart {
    return {
      nat: {
        rules: this.synced?.rules ? this.synced.rules.split('\n').length : 0,
        error: this.error,
      },
    };
  }

  metrics(out: MetricsOut): void {
    out.families.push({
      name: 'tortie_agent_nat_errors_total',
      help: 'Failures to write the natOutgoing chain (TORTIE-NAT-OUTGOING) in the node namespace.',
      type: 'counter',
      samples: [{ value: this.errors }],
    });
  }

  stop(): void {}
}
