/**
 * Go's duration syntax, as Calico's fields and Kubernetes take it: "90s", "1m30s",
 * "500ms", "1.5h", or "0". The one reader of it: the schema checks with it, the agent's
 * FelixConfiguration and the BGP renderer convert with it.
 */

const UNIT_SECONDS: Readonly<Record<string, number>> = {
  ns: 1e-9,
  us: 1e-6,
  µs: 1e-6,
  ms: 1e-3,
  s: 1,
  m: 60,
  h: 3600,
};

/** The duration in seconds (fractions kept); undefined for text that is not one. */
export function goDurationSeconds(text: string): number | undefined {
  if (text === '0') return 0;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let end = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    total += Number(m[1]) * UNIT_SECONDS[m[2]!]!;
    end = re.lastIndex;
  }
  return end === text.length && end > 0 ? total : undefined;
}
