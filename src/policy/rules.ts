/**
 * tortie (Calico-shaped) policy rules: the schema of one rule and its conversion to the
 * model's Rule. Used by NetworkPolicy, GlobalNetworkPolicy and Profile.
 */
import { z } from 'zod';
import { PORT_PROTOCOLS, PROTOCOLS, type EntityMatch, type IcmpMatch, type Rule } from './model.js';
import { cidr, dnsSubdomain, fail, integerIn, portMatch, protocol, selector } from './fields.js';
import { andSelectors, serviceAccountMatchSelector } from './service-accounts.js';

const ACTIONS = ['Allow', 'Deny', 'Pass', 'Log'] as const;

const action = z.unknown().transform((value, ctx): Rule['action'] => {
  if (value === undefined) return fail(ctx, `action is required (one of ${ACTIONS.join(', ')})`);
  if (typeof value === 'string' && (ACTIONS as readonly string[]).includes(value))
    return value as Rule['action'];
  return fail(
    ctx,
    `unknown action ${JSON.stringify(value)} (expected one of ${ACTIONS.join(', ')})`,
  );
});

const ipVersion = z.unknown().transform((value, ctx): 4 => {
  if (value === 4) return 4;
  if (value === 6)
    return fail(ctx, 'ipVersion 6: dual stack is not yet supported (tortie is IPv4 only)');
  return fail(ctx, `ipVersion must be 4, got ${JSON.stringify(value)}`);
});

const icmp = z
  .object({
    type: integerIn('icmp type', 0, 254),
    code: integerIn('icmp code', 0, 255).optional(),
  })
  .strict()
  .transform((m): IcmpMatch =>
    m.code === undefined ? { type: m.type } : { type: m.type, code: m.code },
  );

/** A field tortie refuses whenever it is given, saying why. */
function refused(why: string) {
  return z.unknown().superRefine((v, ctx) => {
    if (v !== undefined) fail(ctx, why);
  });
}

/** Calico's ServiceAccountMatch: service accounts by name and/or by their labels. */
const serviceAccountMatch = z
  .object({ names: z.array(dnsSubdomain).optional(), selector: selector.optional() })
  .strict();

const entity = z
  .object({
    nets: z.array(cidr).optional(),
    notNets: z.array(cidr).optional(),
    selector: selector.optional(),
    notSelector: selector.optional(),
    namespaceSelector: selector.optional(),
    ports: z.array(portMatch).optional(),
    notPorts: z.array(portMatch).optional(),
    serviceAccounts: serviceAccountMatch.optional(),
    services: refused(
      'services matches are not supported (tortie has no Kubernetes Service endpoints to resolve)',
    ),
  })
  .strict();

/**
 * Drops absent fields and empty lists (an empty list constrains nothing). A
 * serviceAccounts match becomes part of the selector, as Calico compiles it:
 * `(service accounts) && (selector)` (./service-accounts.ts).
 */
function entityMatch(e: z.infer<typeof entity> | undefined): EntityMatch {
  const out: Record<string, unknown> = {};
  const { serviceAccounts, ...rest } = e ?? {};
  for (const [key, value] of Object.entries(rest)) {
    if (value === undefined || (Array.isArray(value) && value.length === 0)) continue;
    out[key] = value;
  }
  const selector = andSelectors(
    serviceAccounts === undefined ? undefined : serviceAccountMatchSelector(serviceAccounts),
    rest.selector,
  );
  if (selector !== undefined) out.selector = selector;
  return out as EntityMatch;
}

const PORT_PROTOCOL_NAMES = 'TCP, UDP, SCTP or UDPLite';

export const rule = z
  .object({
    action,
    ipVersion: ipVersion.optional(),
    protocol: protocol.optional(),
    notProtocol: protocol.optional(),
    icmp: icmp.optional(),
    notICMP: icmp.optional(),
    source: entity.optional(),
    destination: entity.optional(),
    // Calico keeps rule annotations for people reading the policy; they do not match anything.
    metadata: z
      .object({ annotations: z.record(z.string(), z.string()).optional() })
      .strict()
      .optional(),
    http: refused(
      'http matches are not supported (they need an application-layer proxy; tortie matches L3/L4 only)',
    ),
  })
  .strict()
  .transform((r, ctx): Rule => {
    const source = entityMatch(r.source);
    const destination = entityMatch(r.destination);
    // Calico's rule: ports on either side need a protocol that carries ports.
    for (const field of ['ports', 'notPorts'] as const) {
      for (const [side, match] of [
        ['source', source],
        ['destination', destination],
      ] as const) {
        if (
          match[field] !== undefined &&
          (r.protocol === undefined || !PORT_PROTOCOLS.has(r.protocol))
        ) {
          fail(ctx, `${field} need protocol ${PORT_PROTOCOL_NAMES}`, [side, field]);
        }
      }
    }
    for (const field of ['icmp', 'notICMP'] as const) {
      if (r[field] !== undefined && r.protocol !== PROTOCOLS.ICMP) {
        fail(ctx, `${field} needs protocol ICMP`, [field]);
      }
    }
    return {
      action: r.action,
      ...(r.protocol === undefined ? {} : { protocol: r.protocol }),
      ...(r.notProtocol === undefined ? {} : { notProtocol: r.notProtocol }),
      ...(r.icmp === undefined ? {} : { icmp: r.icmp }),
      ...(r.notICMP === undefined ? {} : { notICMP: r.notICMP }),
      source,
      destination,
    };
  });

export const rules = z.array(rule);
