/**
 * Why a compile refused to produce map contents. Limits are correctness: a set or class
 * that does not fit is never truncated — the update fails, nothing of it is applied, and
 * the error says which endpoint, which direction and by how much.
 */
import type { Direction } from '../model.js';

export type BudgetKind = 'set' | 'class' | 'source-port class';

export class PolicyBudgetError extends Error {
  override readonly name = 'PolicyBudgetError';
  readonly kind = 'policy-budget';

  constructor(
    /** The endpoint key (`<namespace>/<name>`). */
    readonly endpoint: string,
    readonly direction: Direction,
    /** `set`: address-stage entries of the endpoint's set; `class`: l4-stage entries of one class. */
    readonly budget: BudgetKind,
    readonly entries: number,
    readonly limit: number,
  ) {
    super(
      `policy for endpoint ${endpoint} (${direction}) needs ${entries} ` +
        (budget === 'set'
          ? 'address entries in its policy set'
          : budget === 'class'
            ? 'port entries in one of its policy classes'
            : 'source-port entries in one of its source-port classes') +
        ` but the budget is ${limit} (maxEntriesPer${budget === 'set' ? 'Set' : 'Class'}); ` +
        'nothing was compiled: simplify the policies that select it or raise the budget',
    );
  }
}

/** The whole compile needs more entries than a policy map holds. */
export class PolicyMapFullError extends Error {
  override readonly name = 'PolicyMapFullError';
  readonly kind = 'policy-map-full';

  constructor(
    readonly map: 'tortie_pol_addr' | 'tortie_pol_l4' | 'tortie_pol_sprt',
    readonly entries: number,
    readonly limit: number,
  ) {
    super(`policy needs ${entries} entries in ${map}, which holds ${limit}; nothing was compiled`);
  }
}

/** The local endpoints handed to the compiler contradict each other. */
export class LocalEndpointError extends Error {
  override readonly name = 'LocalEndpointError';
  readonly kind = 'local-endpoint';
}
