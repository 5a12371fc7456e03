/**
 * Kubernetes networking.k8s.io/v1 NetworkPolicy: the spec schema and its conversion to a
 * tortie policy, as docs/policy-semantics.md ("Kubernetes NetworkPolicy → tortie policy")
 * and Calico do it.
 */
import { z } from 'zod';
import type { EntityMatch, PortMatch, Rule } from './model.js';
import { PROTOCOLS } from './model.js';
import { cidrWithin, parseCidr } from './cidr.js';
import {
  fail,
  integerIn,
  labelKeyProblem,
  labels,
  labelValueProblem,
  portNameProblem,
  uniqueList,
} from './fields.js';
import { labelSelectorToSelector, parseSelector } from './selector.js';

export const K8S_POLICY_TIER = 'default';
export const K8S_POLICY_ORDER = 1000;
export const K8S_POLICY_PREFIX = 'knp.default.';

const requirement = z
  .object({
    key: z.string().superRefine((key, ctx) => {
      const problem = labelKeyProblem(key);
      if (problem !== undefined) fail(ctx, problem);
    }),
    operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']),
    values: z.array(z.string()).optional(),
  })
  .strict()
  .superRefine((req, ctx) => {
    const values = req.values ?? [];
    if ((req.operator === 'In' || req.operator === 'NotIn') && values.length === 0) {
      fail(ctx, `operator ${req.operator} needs at least one value`, ['values']);
    }
    if ((req.operator === 'Exists' || req.operator === 'DoesNotExist') && values.length > 0) {
      fail(ctx, `operator ${req.operator} takes no values`, ['values']);
    }
    values.forEach((v, i) => {
      const problem = labelValueProblem(v);
      if (problem !== undefined) fail(ctx, problem, ['values', i]);
    });
  });

/** A LabelSelector, converted to canonical selector text (`{}` selects everything). */
const labelSelector = z
  .object({ matchLabels: labels.optional(), matchExpressions: z.array(requirement).optional() })
  .strict()
  .transform((ls) => parseSelector(labelSelectorToSelector(ls)).canonical);

const ipBlock = z
  .object({ cidr: z.string(), except: z.array(z.string()).optional() })
  .strict()
  .transform((block, ctx) => {
    const outer = parseCidr(block.cidr);
    if (!outer.ok) return fail(ctx, outer.reason, ['cidr']);
    const except: string[] = [];
    (block.except ?? []).forEach((text, i) => {
      const inner = parseCidr(text);
      if (!inner.ok) return fail(ctx, inner.reason, ['except', i]);
      if (
        !cidrWithin(inner.cidr, outer.cidr) ||
        inner.cidr.prefixLength === outer.cidr.prefixLength
      ) {
        return fail(ctx, `${inner.cidr.text} is not a strict subset of cidr ${outer.cidr.text}`, [
          'except',
          i,
        ]);
      }
      except.push(inner.cidr.text);
    });
    return { cidr: outer.cidr.text, except };
  });

const peer = z
  .object({
    podSelector: labelSelector.optional(),
    namespaceSelector: labelSelector.optional(),
    ipBlock: ipBlock.optional(),
  })
  .strict()
  .transform((p, ctx): EntityMatch => {
    if (p.ipBlock !== undefined) {
      if (p.podSelector !== undefined || p.namespaceSelector !== undefined) {
        return fail(ctx, 'ipBlock cannot be combined with podSelector or namespaceSelector', [
          'ipBlock',
        ]);
      }
      return p.ipBlock.except.length === 0
        ? { nets: [p.ipBlock.cidr] }
        : { nets: [p.ipBlock.cidr], notNets: p.ipBlock.except };
    }
    if (p.podSelector === undefined && p.namespaceSelector === undefined) {
      return fail(ctx, 'a peer needs podSelector, namespaceSelector or ipBlock');
    }
    return {
      ...(p.podSelector === undefined ? {} : { selector: p.podSelector }),
      ...(p.namespaceSelector === undefined ? {} : { namespaceSelector: p.namespaceSelector }),
    };
  });

interface K8sPort {
  readonly protocol: number;
  /** undefined: every port of the protocol. */
  readonly match?: PortMatch;
}

const K8S_PROTOCOLS = { TCP: PROTOCOLS.TCP, UDP: PROTOCOLS.UDP, SCTP: PROTOCOLS.SCTP } as const;

const port = z
  .object({
    protocol: z.enum(['TCP', 'UDP', 'SCTP']).optional(),
    port: z.unknown().optional(),
    endPort: integerIn('endPort', 1, 65535).optional(),
  })
  .strict()
  .transform((p, ctx): K8sPort => {
    const protocol = K8S_PROTOCOLS[p.protocol ?? 'TCP'];
    if (p.port === undefined) {
      if (p.endPort !== undefined) fail(ctx, 'endPort needs a numeric port', ['endPort']);
      return { protocol };
    }
    if (typeof p.port !== 'string' && typeof p.port !== 'number') {
      return fail(ctx, `port must be a number or a port name, got ${JSON.stringify(p.port)}`, [
        'port',
      ]);
    }
    if (typeof p.port === 'string') {
      const problem = portNameProblem(p.port);
      if (problem !== undefined) return fail(ctx, problem, ['port']);
      if (p.endPort !== undefined)
        return fail(ctx, 'endPort needs a numeric port, not a named one', ['endPort']);
      return { protocol, match: { kind: 'named', name: p.port } };
    }
    if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535) {
      return fail(ctx, `port ${p.port} is out of range 1-65535`, ['port']);
    }
    const to = p.endPort ?? p.port;
    if (to < p.port) return fail(ctx, `endPort ${to} is below port ${p.port}`, ['endPort']);
    return { protocol, match: { kind: 'range', from: p.port, to } };
  });

const ingressRule = z
  .object({ from: z.array(peer).optional(), ports: z.array(port).optional() })
  .strict();
const egressRule = z
  .object({ to: z.array(peer).optional(), ports: z.array(port).optional() })
  .strict();

/** Port entries grouped by protocol, in order of first appearance; undefined ports = all ports. */
function groupByProtocol(ports: readonly K8sPort[]): { protocol: number; ports?: PortMatch[] }[] {
  const groups = new Map<number, PortMatch[] | undefined>();
  for (const p of ports) {
    const seen = groups.has(p.protocol) ? groups.get(p.protocol) : [];
    // An entry without a port opens the whole protocol; nothing can narrow it again.
    groups.set(
      p.protocol,
      seen === undefined || p.match === undefined ? undefined : [...seen, p.match],
    );
  }
  return [...groups].map(([protocol, matches]) =>
    matches === undefined ? { protocol } : { protocol, ports: matches },
  );
}

/**
 * One Allow rule per peer (one for everybody when there are none) × per protocol group
 * of the ports (one without protocol when there are none). Ports always sit on the
 * destination side; the peer sits on `peerSide`.
 */
function allowRules(
  peers: readonly EntityMatch[] | undefined,
  ports: readonly K8sPort[] | undefined,
  peerSide: 'source' | 'destination',
): Rule[] {
  const peerMatches: EntityMatch[] = peers !== undefined && peers.length > 0 ? [...peers] : [{}];
  const groups = ports !== undefined && ports.length > 0 ? groupByProtocol(ports) : [undefined];
  const out: Rule[] = [];
  for (const peerMatch of peerMatches) {
    for (const group of groups) {
      const portMatch: EntityMatch = group?.ports === undefined ? {} : { ports: group.ports };
      const source = peerSide === 'source' ? peerMatch : {};
      const destination = peerSide === 'destination' ? { ...peerMatch, ...portMatch } : portMatch;
      out.push({
        action: 'Allow',
        ...(group === undefined ? {} : { protocol: group.protocol }),
        source,
        destination,
      });
    }
  }
  return out;
}

export interface ConvertedK8sSpec {
  readonly selector: string;
  readonly types: readonly ('Ingress' | 'Egress')[];
  readonly ingress: readonly Rule[];
  readonly egress: readonly Rule[];
}

const k8sSpecFields = {
  podSelector: labelSelector,
  policyTypes: uniqueList(z.enum(['Ingress', 'Egress'])).optional(),
  ingress: z.array(ingressRule).optional(),
  egress: z.array(egressRule).optional(),
};

/** Calico's StagedKubernetesNetworkPolicy: a Kubernetes spec plus `stagedAction`; never enforced. */
export const stagedKubernetesNetworkPolicySpec = z
  .object({
    ...k8sSpecFields,
    stagedAction: z.enum(['Set', 'Delete', 'Learn', 'Ignore']).optional(),
  })
  .strict();

export const k8sNetworkPolicySpec = z
  .object(k8sSpecFields)
  .strict()
  .transform((spec): ConvertedK8sSpec => {
    const ingress = spec.ingress ?? [];
    const egress = spec.egress ?? [];
    const types =
      spec.policyTypes !== undefined && spec.policyTypes.length > 0
        ? spec.policyTypes
        : egress.length > 0
          ? (['Ingress', 'Egress'] as const)
          : (['Ingress'] as const);
    return {
      selector: spec.podSelector,
      types,
      ingress: ingress.flatMap((r) => allowRules(r.from, r.ports, 'source')),
      egress: egress.flatMap((r) => allowRules(r.to, r.ports, 'destination')),
    };
  });
