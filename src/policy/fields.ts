/**
 * Validating field schemas shared by the resource kinds (src/policy/resources.ts,
 * src/policy/k8s.ts). Each one refuses with a reason that names the offending value;
 * the path is added by whoever reports the issue.
 */
import { z } from 'zod';
import { PROTOCOLS, type PortMatch } from './model.js';
import { parseCidr } from './cidr.js';
import { parseSelector, SelectorError } from './selector.js';

type Ctx = z.RefinementCtx;

export function fail(ctx: Ctx, message: string, path: (string | number)[] = []): typeof z.NEVER {
  ctx.addIssue({ code: z.ZodIssueCode.custom, message, path });
  return z.NEVER;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${JSON.stringify(value)}`;
}

// --- names ----------------------------------------------------------------------------

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function isDnsLabel(s: string): boolean {
  return s.length <= 63 && DNS_LABEL.test(s);
}

export function isDnsSubdomain(s: string): boolean {
  return s.length <= 253 && s.split('.').every(isDnsLabel);
}

/** RFC 1123 label: namespaces, tiers. */
export const dnsLabel = z.string().superRefine((s, ctx) => {
  if (!isDnsLabel(s)) {
    fail(
      ctx,
      `${JSON.stringify(s)} is not a DNS label (at most 63 lower-case letters, digits and "-", starting and ending with a letter or digit)`,
    );
  }
});

/** RFC 1123 subdomain (dot-separated DNS labels): object names. */
export const dnsSubdomain = z.string().superRefine((s, ctx) => {
  if (!isDnsSubdomain(s)) {
    fail(
      ctx,
      `${JSON.stringify(s)} is not a valid name (DNS labels of lower-case letters, digits and "-", joined by ".")`,
    );
  }
});

// --- labels ---------------------------------------------------------------------------

const LABEL_NAME = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$/;

/** Kubernetes qualified name: `[prefix/]name`, prefix a DNS subdomain, name ≤ 63 characters. */
export function labelKeyProblem(key: string): string | undefined {
  const slash = key.indexOf('/');
  const prefix = slash < 0 ? undefined : key.slice(0, slash);
  const name = slash < 0 ? key : key.slice(slash + 1);
  if (prefix !== undefined && !isDnsSubdomain(prefix)) {
    return `label key ${JSON.stringify(key)} has a prefix that is not a DNS subdomain`;
  }
  if (name.length === 0 || name.length > 63 || !LABEL_NAME.test(name)) {
    return `label key ${JSON.stringify(key)} is not a qualified name (at most 63 letters, digits, "-", "_" and ".", starting and ending with a letter or digit, after an optional "prefix/")`;
  }
  return undefined;
}

export function labelValueProblem(value: string): string | undefined {
  if (value === '' || (value.length <= 63 && LABEL_NAME.test(value))) return undefined;
  return `label value ${JSON.stringify(value)} is not valid (at most 63 letters, digits, "-", "_" and ".", starting and ending with a letter or digit)`;
}

export const labels = z.record(z.string(), z.string()).superRefine((record, ctx) => {
  for (const [key, value] of Object.entries(record)) {
    const problem = labelKeyProblem(key) ?? labelValueProblem(value);
    if (problem !== undefined) fail(ctx, problem, [key]);
  }
});

// --- selectors and nets ---------------------------------------------------------------

/**
 * A selector expression; the canonical spelling is kept. `global()` parses (as in
 * Calico) but is refused here: Calico gives it a meaning only in a rule's
 * namespaceSelector, and tortie's policy does not implement that meaning yet.
 */
export const selector = z.string().transform((text, ctx) => {
  try {
    const parsed = parseSelector(text);
    if (parsed.usesGlobal) {
      return fail(
        ctx,
        `selector ${JSON.stringify(text)}: global() is not supported yet (in Calico it means "non-namespaced peers" in a rule's namespaceSelector only)`,
      );
    }
    return parsed.canonical;
  } catch (err) {
    if (err instanceof SelectorError) return fail(ctx, err.message);
    throw err;
  }
});

/** An IPv4 CIDR (or bare address), normalised with host bits masked off. */
export const cidr = z.string().transform((text, ctx) => {
  const result = parseCidr(text);
  return result.ok ? result.cidr.text : fail(ctx, result.reason);
});

// --- numbers --------------------------------------------------------------------------

/** An integer in [min, max]; `what` names it in the message ("port 70000 is out of range 1-65535"). */
export function integerIn(what: string, min: number, max: number) {
  return z.unknown().transform((value, ctx): number => {
    if (value === undefined) return fail(ctx, `${what} is required`);
    if (typeof value !== 'number')
      return fail(ctx, `${what} must be a number, got ${describe(value)}`);
    if (!Number.isInteger(value)) return fail(ctx, `${what} ${value} is not an integer`);
    if (value < min || value > max)
      return fail(ctx, `${what} ${value} is out of range ${min}-${max}`);
    return value;
  });
}

/** A finite number (policy and tier `order` may be fractional, as in Calico). */
export const order = z.unknown().transform((value, ctx): number => {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    return fail(ctx, `order must be a finite number, got ${describe(value)}`);
  }
  return value;
});

// --- protocols and ports --------------------------------------------------------------

const PROTOCOL_NAMES = Object.keys(PROTOCOLS) as (keyof typeof PROTOCOLS)[];

/** A protocol by name (TCP, UDP, ICMP, SCTP, UDPLite; any case) or number 1-255. */
export const protocol = z.unknown().transform((value, ctx): number => {
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 1 || value > 255) {
      return fail(ctx, `protocol ${value} is out of range 1-255`);
    }
    return value;
  }
  if (typeof value === 'string') {
    const name = PROTOCOL_NAMES.find((n) => n.toLowerCase() === value.toLowerCase());
    if (name !== undefined) return PROTOCOLS[name];
    if (value.toLowerCase() === 'icmpv6')
      return fail(
        ctx,
        'protocol ICMPv6 is IPv6: dual stack is not yet supported (tortie is IPv4 only)',
      );
  }
  return fail(
    ctx,
    `unknown protocol ${JSON.stringify(value)} (expected a number 1-255 or one of ${PROTOCOL_NAMES.join(', ')})`,
  );
});

const PORT_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

/** IANA service name, as Kubernetes requires for container port names. */
export function portNameProblem(name: string): string | undefined {
  if (name.length > 15 || !PORT_NAME.test(name) || name.includes('--') || !/[a-z]/.test(name)) {
    return `port name ${JSON.stringify(name)} is not valid (at most 15 lower-case letters, digits and "-", with at least one letter, no "--", not starting or ending with "-")`;
  }
  return undefined;
}

function portNumber(text: string, ctx: Ctx): number {
  const n = Number(text);
  if (n < 1 || n > 65535) return fail(ctx, `port ${n} is out of range 1-65535`);
  return n;
}

/** A Calico port entry: a number, a range "a:b" (inclusive), or a named port. */
export const portMatch = z.unknown().transform((value, ctx): PortMatch => {
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) return fail(ctx, `port ${value} is not an integer`);
    const n = portNumber(String(value), ctx);
    return { kind: 'range', from: n, to: n };
  }
  if (typeof value !== 'string') {
    return fail(
      ctx,
      `a port must be a number, a range "a:b" or a port name, got ${describe(value)}`,
    );
  }
  if (/^\d+$/.test(value)) {
    const n = portNumber(value, ctx);
    return { kind: 'range', from: n, to: n };
  }
  const range = /^(\d+):(\d+)$/.exec(value);
  if (range) {
    const from = portNumber(range[1]!, ctx);
    const to = portNumber(range[2]!, ctx);
    if (from > to)
      return fail(ctx, `port range ${JSON.stringify(value)} runs backwards (${from} > ${to})`);
    return { kind: 'range', from, to };
  }
  const problem = portNameProblem(value);
  return problem === undefined ? { kind: 'named', name: value } : fail(ctx, problem);
});

/** A list that must not name the same thing twice. */
export function uniqueList<T extends z.ZodTypeAny>(item: T) {
  return z.array(item).superRefine((list, ctx) => {
    list.forEach((v, i) => {
      if (list.indexOf(v) !== i) fail(ctx, `${JSON.stringify(v)} is listed twice`, [i]);
    });
  });
}
