/**
 * Field schemas of the infrastructure kinds (pools, endpoints, nodes, BGP, agent
 * configuration). Name, label and selector rules come from src/policy/fields.ts so
 * every kind spells them the same way.
 */
import { z } from 'zod';
import { parseCidr } from '../../policy/cidr.js';
import { goDurationSeconds } from '../../util/duration.js';
import {
  dnsSubdomain,
  fail,
  labelKeyProblem,
  portNameProblem,
  selector,
} from '../../policy/fields.js';

export { dnsLabel, dnsSubdomain, labels, selector } from '../../policy/fields.js';

/** How every IPv6 field is refused. */
export const DUAL_STACK = 'dual stack is not yet supported (tortie is IPv4 only)';

/** An IPv6-only field (`ipv6Address`, `exportV6`…): refused whenever it is given. */
export const ipv6Only = z.unknown().superRefine((v, ctx) => {
  if (v !== undefined && v !== '' && !(Array.isArray(v) && v.length === 0))
    fail(ctx, `an IPv6 field: ${DUAL_STACK}`);
});

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${JSON.stringify(value)}`;
}

/** An integer in [min, max]: "33 is out of range 20-32". */
export function intIn(min: number, max: number) {
  return z.unknown().transform((value, ctx): number => {
    if (typeof value !== 'number') return fail(ctx, `expected a number, got ${describe(value)}`);
    if (!Number.isInteger(value)) return fail(ctx, `${value} is not an integer`);
    if (value < min || value > max) return fail(ctx, `${value} is out of range ${min}-${max}`);
    return value;
  });
}

export const port = intIn(1, 65535);

/** A 4-byte AS number (0 is reserved). */
export const asNumber = intIn(1, 4294967295);

const OCTET = /^(0|[1-9]\d{0,2})$/;

export function isIPv4(text: string): boolean {
  const parts = text.split('.');
  return parts.length === 4 && parts.every((p) => OCTET.test(p) && Number(p) <= 255);
}

/** A dotted-quad IPv4 address. */
export const ipv4Address = z.string().superRefine((text, ctx) => {
  if (text.includes(':') && !text.includes('.'))
    fail(ctx, `${JSON.stringify(text)} is IPv6: ${DUAL_STACK}`);
  else if (!isIPv4(text))
    fail(ctx, `${JSON.stringify(text)} is not an IPv4 address (expected a.b.c.d)`);
});

/** A network CIDR whose host bits must be zero ("10.0.0.1/16" is refused, not masked). */
export const networkCidr = z.string().transform((text, ctx) => {
  if (!text.includes('/'))
    return fail(ctx, `${JSON.stringify(text)} is not a CIDR (expected a.b.c.d/n)`);
  const parsed = parseCidr(text);
  if (!parsed.ok) return fail(ctx, parsed.reason);
  if (parsed.cidr.text !== text) {
    return fail(
      ctx,
      `${JSON.stringify(text)} has host bits set (did you mean ${parsed.cidr.text}?)`,
    );
  }
  return parsed.cidr.text;
});

/** An interface address with its prefix length, host bits kept: "192.168.1.10/24". */
export const interfaceAddress = z.string().superRefine((text, ctx) => {
  const [address = '', prefix, ...rest] = text.split('/');
  if (
    prefix === undefined ||
    rest.length > 0 ||
    !/^(0|[1-9]\d?)$/.test(prefix) ||
    Number(prefix) > 32 ||
    !isIPv4(address)
  ) {
    fail(
      ctx,
      `${JSON.stringify(text)} is not an IPv4 address with prefix length (expected a.b.c.d/n)`,
    );
  }
});

/** A single-address network, as workload endpoints carry them: "10.65.0.3/32". */
export const hostNetwork = z.string().superRefine((text, ctx) => {
  const [address = '', prefix, ...rest] = text.split('/');
  if (prefix !== '32' || rest.length > 0 || !isIPv4(address)) {
    fail(ctx, `${JSON.stringify(text)} is not an IPv4 /32 (expected a.b.c.d/32)`);
  }
});

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** A MAC address, lower case kept as given: "ee:ee:ee:ee:ee:ee". */
export const mac = z.string().transform((text, ctx) => {
  const lower = text.toLowerCase();
  return MAC.test(lower)
    ? lower
    : fail(ctx, `${JSON.stringify(text)} is not a MAC address (expected xx:xx:xx:xx:xx:xx)`);
});

/** A Linux interface name: 1-15 bytes, no "/", ":", whitespace; not "." or "..". */
export const interfaceName = z.string().superRefine((text, ctx) => {
  if (
    text.length === 0 ||
    text.length > 15 ||
    /[/:\s]/.test(text) ||
    text === '.' ||
    text === '..'
  ) {
    fail(
      ctx,
      `${JSON.stringify(text)} is not a Linux interface name (1-15 characters, no "/", ":" or spaces)`,
    );
  }
});

/** Names in a list that must not repeat. */
export function uniqueNames<T extends z.ZodTypeAny>(item: T, what = 'entry') {
  return z.array(item).superRefine((list, ctx) => {
    list.forEach((v, i) => {
      if (list.indexOf(v) !== i) fail(ctx, `${what} ${JSON.stringify(v)} is listed twice`, [i]);
    });
  });
}

export const profileNames = uniqueNames(dnsSubdomain, 'profile');

const portProtocol = z
  .string()
  .transform((p, ctx) => {
    const up = p.toUpperCase();
    return up === 'TCP' || up === 'UDP' || up === 'SCTP'
      ? (up as 'TCP' | 'UDP' | 'SCTP')
      : fail(ctx, `${JSON.stringify(p)} is not one of TCP, UDP, SCTP`);
  })
  .default('TCP');

function portName(unnamed: boolean) {
  const name = z.string().superRefine((n, ctx) => {
    const problem = unnamed && n === '' ? undefined : portNameProblem(n);
    if (problem !== undefined) fail(ctx, problem);
  });
  return unnamed ? name.default('') : name;
}

function portList<T extends z.ZodTypeAny>(item: T) {
  return z.array(item).superRefine((ports, ctx) => {
    ports.forEach((p: { name: string }, i) => {
      if (p.name !== '' && ports.findIndex((q: { name: string }) => q.name === p.name) !== i) {
        fail(ctx, `port name ${JSON.stringify(p.name)} is used twice`, [i, 'name']);
      }
    });
  });
}

/** A named port of a host endpoint: Calico's {name, protocol, port}. */
export const endpointPorts = portList(
  z.object({ name: portName(false), protocol: portProtocol, port }).strict(),
);

/**
 * A port of a workload endpoint: Calico's {name, protocol, port, hostPort, hostIP}. The
 * name may be empty (Calico's CNI plugin writes unnamed ports for host-port mappings):
 * such a port is no named port.
 */
export const workloadEndpointPorts = portList(
  z
    .object({
      name: portName(true),
      protocol: portProtocol,
      port,
      // Kubernetes hostPort mapping, as Calico's CNI plugin writes it; stored.
      hostPort: intIn(0, 65535).optional(),
      hostIP: z
        .string()
        .superRefine((ip, ctx) => {
          if (ip !== '' && !isIPv4(ip))
            fail(
              ctx,
              ip.includes(':')
                ? `${JSON.stringify(ip)} is IPv6: ${DUAL_STACK}`
                : `${JSON.stringify(ip)} is not an IPv4 address (expected a.b.c.d)`,
            );
        })
        .optional(),
    })
    .strict(),
);

/** Annotations: qualified keys as labels have, any string values. */
export const annotations = z.record(z.string(), z.string()).superRefine((record, ctx) => {
  for (const key of Object.keys(record)) {
    const problem = labelKeyProblem(key);
    if (problem !== undefined) fail(ctx, problem.replace('label key', 'annotation key'), [key]);
  }
});

/** A Go duration as Calico's fields take them: "90s", "1m30s", "500ms", "2h". */
export const duration = z.string().superRefine((text, ctx) => {
  if (goDurationSeconds(text) === undefined)
    fail(ctx, `${JSON.stringify(text)} is not a duration (such as "90s", "5m" or "1h30m")`);
});

/** A selector that defaults to all(). */
export const selectorOrAll = selector.default('all()');

/** `default`, or `node.<node name>` for a per-node override (Calico's convention). */
export const defaultOrNodeName = z.string().superRefine((name, ctx) => {
  if (name === 'default') return;
  if (!name.startsWith('node.') || !dnsSubdomain.safeParse(name.slice(5)).success) {
    fail(ctx, `${JSON.stringify(name)} must be "default" or "node.<node name>"`);
  }
});
