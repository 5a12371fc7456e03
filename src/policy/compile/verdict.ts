/**
 * A stage-2 verdict packed into one number, so that l4 functions compare and hash
 * cheaply: code = ruleId * 4 + (logged ? 2 : 0) + (action - 1).
 */

export const ACTION_ALLOW = 1;
export const ACTION_DENY = 2;
export type MapAction = typeof ACTION_ALLOW | typeof ACTION_DENY;
/**
 * A stage-2 entry whose verdict depends on the source port: its rule id field names the
 * source-port class that decides (stage 3, bpf/tortie_maps.h).
 */
export const ACTION_BY_SPORT = 3;
export type L4Action = MapAction | typeof ACTION_BY_SPORT;
export const FLAG_LOG = 1;

export type VerdictCode = number;

export function verdictCode(action: MapAction, logged: boolean, ruleId: number): VerdictCode {
  return ruleId * 4 + (logged ? 2 : 0) + (action - 1);
}

export interface MapVerdict {
  readonly action: MapAction;
  /** TORTIE_VERDICT_F_* bits. */
  readonly flags: number;
  readonly ruleId: number;
}

export function decodeVerdict(code: VerdictCode): MapVerdict {
  return {
    action: code % 2 === 0 ? ACTION_ALLOW : ACTION_DENY,
    flags: Math.floor(code / 2) % 2 === 1 ? FLAG_LOG : 0,
    ruleId: Math.floor(code / 4),
  };
}
