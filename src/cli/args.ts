/**
 * The argument parsers of every `tortie` command (and of `tortie bench`, bench/cli.ts):
 * each takes the text of one option or argument and returns its value, or throws
 * commander's InvalidArgumentError, whose message commander prints after the option's
 * name ("error: option '--port <port>' argument '70000' is invalid. …") before exiting 2.
 * A value is refused with what to give instead, quoting what was given.
 */
import { InvalidArgumentError } from 'commander';
import { tryParseIp } from '../ipam/ipv4.js';
import { parseParts } from '../preflight/report.js';
import type { Part } from '../preflight/requirements.js';

function refuse(message: string): never {
  throw new InvalidArgumentError(message);
}

// --- numbers -----------------------------------------------------------------------------

/** A whole number from `min` to `max` ("12", not "1e1", "2.5" or ""). */
export function intIn(min: number, max: number, what = 'a whole number') {
  return (value: string): number => {
    const n = Number(value);
    if (!/^-?\d+$/.test(value.trim()) || n < min || n > max)
      refuse(`"${value}": give ${what}, ${min}-${max}`);
    return n;
  };
}

export const port = intIn(1, 65535, 'a port');
/** A lab's node count, 1-50. */
export const nodeCount = intIn(1, 50, 'a number of nodes');

export function positiveInt(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n <= 0)
    refuse(`"${value}" is not a positive integer`);
  return n;
}

export function positiveNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0)
    refuse(`"${value}" is not a positive number`);
  return n;
}

/** Seconds, 0 or more, fractions allowed. */
export function seconds(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0)
    refuse(`"${value}" is not a number of seconds (0 or more)`);
  return n;
}

/** Whole seconds, 0 or more. */
export function wholeSeconds(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < 0)
    refuse(`"${value}" is not a whole number of seconds (0 or more)`);
  return n;
}

/** A comma-separated list of rule counts, 0 to `max`. */
export function ruleCounts(max = 100_000) {
  return (list: string): number[] =>
    list.split(',').map((r) => {
      const n = Number(r);
      if (r.trim() === '' || !Number.isInteger(n) || n < 0 || n > max)
        refuse(`--rules: "${r}" is not a rule count (0 to ${max})`);
      return n;
    });
}

export const mtu = (value: string): number => {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n < 68 || n > 65535)
    refuse(`"${value}" is not an MTU (an integer from 68 to 65535)`);
  return n;
};

/** A wait in milliseconds, 0 (do not wait) to 10 minutes. */
export function waitMs(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n > 600_000)
    refuse(
      `"${value}" is not a wait in milliseconds (an integer from 0 to 600000; 0 = do not wait)`,
    );
  return n;
}

// --- names -------------------------------------------------------------------------------

/** One of `allowed`: `"gre": use ipip, none or vxlan`. */
export function oneOf<T extends string>(...allowed: readonly T[]) {
  return (value: string): T => {
    if (!(allowed as readonly string[]).includes(value))
      refuse(`"${value}": use ${spell(allowed)}`);
    return value as T;
  };
}

/** A comma-separated list, each item one of `allowed`. */
export function listOf<T extends string>(what: string, allowed: readonly T[]) {
  return (value: string): T[] =>
    value.split(',').map((x) => {
      if (!(allowed as readonly string[]).includes(x))
        refuse(`${what}: "${x}" is not one of ${allowed.join(', ')}`);
      return x as T;
    });
}

function spell(words: readonly string[]): string {
  return words.length < 2
    ? words.join('')
    : `${words.slice(0, -1).join(', ')} or ${words[words.length - 1]}`;
}

export const protocol = oneOf('tcp', 'udp');
export const dataplane = oneOf('bpf', 'iptables');
export const encap = oneOf('ipip', 'none', 'vxlan');

/** An id of 1-`max` lower-case letters or digits (it names namespaces, links, pins). */
export function idOf(max: number) {
  return (value: string): string => {
    if (!new RegExp(`^[a-z0-9]{1,${max}}$`).test(value))
      refuse(`"${value}": use 1-${max} lower-case letters or digits`);
    return value;
  };
}

/** A one-node lab's id (demo, conformance). */
export const labId = idOf(12);
/** A multi-node lab's id: shorter, it names etcd members and links (clusterNames). */
export const CLUSTER_ID_MAX = 8;
export const clusterId = idOf(CLUSTER_ID_MAX);

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** NAMESPACE/NAME, both DNS labels (lower-case letters, digits, '-'). */
export function podKey(value: string): { namespace: string; name: string; key: string } {
  const [namespace, name, ...rest] = value.split('/');
  if (
    rest.length > 0 ||
    namespace === undefined ||
    name === undefined ||
    !DNS_LABEL.test(namespace) ||
    !DNS_LABEL.test(name)
  )
    refuse(
      `"${value}": give NAMESPACE/NAME, each 1-63 lower-case letters, digits or '-' (e.g. default/web)`,
    );
  return { namespace, name, key: `${namespace}/${name}` };
}

const LABEL_KEY =
  /^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

/** key=value,key=value in Kubernetes label syntax. */
export function labels(value: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of value.split(',').map((s) => s.trim())) {
    if (item === '') continue;
    const eq = item.indexOf('=');
    const k = eq < 0 ? item : item.slice(0, eq);
    const v = eq < 0 ? undefined : item.slice(eq + 1);
    if (v === undefined || !LABEL_KEY.test(k) || !LABEL_VALUE.test(v))
      refuse(
        `"${item}": give key=value (Kubernetes label syntax), comma-separated, e.g. app=web,tier=front`,
      );
    out[k] = v;
  }
  return out;
}

export function regex(value: string): RegExp {
  try {
    return new RegExp(value);
  } catch (e) {
    refuse(`"${value}" is not a regular expression: ${(e as Error).message}`);
  }
}

/** A repeatable IPv4 address option: every address given. */
export function ipAddresses(value: string, previous: string[] = []): string[] {
  if (tryParseIp(value) === undefined) refuse(`"${value}" is not an IPv4 address`);
  return [...previous, value];
}

/** `tortie node checksystem --for`: lab, tests, bench, build or all, comma-separated. */
export function parts(value: string): Part[] {
  const parsed = parseParts(value);
  if (parsed instanceof Error) refuse(parsed.message);
  return parsed;
}

/** A repeatable option: every value given, in order. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
