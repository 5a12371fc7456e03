/**
 * AgentConfiguration: the per-node daemon's settings, "default" for every node and
 * "node.<name>" to override fields for one. Nothing is filled in at write time: a
 * field absent from the node's object falls through to "default", then to
 * AGENT_CONFIG_DEFAULTS (effectiveAgentConfig).
 */
import { z } from 'zod';
import { fail } from '../../policy/fields.js';
import { intIn, port } from './fields.js';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;

const logLevel = z.string().transform((s, ctx) => {
  const lower = s.toLowerCase() === 'warning' ? 'warn' : s.toLowerCase();
  return (LOG_LEVELS as readonly string[]).includes(lower)
    ? (lower as (typeof LOG_LEVELS)[number])
    : fail(ctx, `${JSON.stringify(s)} is not one of ${LOG_LEVELS.join(', ')}`);
});

export const agentConfigurationSpec = z
  .object({
    logLevel: logLevel.optional(),
    dataplane: z.enum(['bpf', 'iptables']).optional(),
    healthEnabled: z.boolean().optional(),
    healthPort: port.optional(),
    metricsEnabled: z.boolean().optional(),
    metricsPort: port.optional(),
    bpfLogLevel: z.enum(['Off', 'Info', 'Debug']).optional(),
    mtu: intIn(576, 65535).optional(),
    defaultEndpointToHostAction: z.enum(['Drop', 'Accept', 'Return']).optional(),
    reportingIntervalSeconds: intIn(1, 86400).optional(),
  })
  .strict()
  .superRefine((spec, ctx) => {
    if (spec.healthPort !== undefined && spec.healthPort === spec.metricsPort) {
      fail(ctx, `healthPort and metricsPort are both ${spec.healthPort}`, ['metricsPort']);
    }
  });

export type AgentConfigurationSpec = z.output<typeof agentConfigurationSpec>;

export const AGENT_CONFIG_DEFAULTS: Required<AgentConfigurationSpec> = {
  logLevel: 'info',
  dataplane: 'bpf',
  healthEnabled: true,
  healthPort: 9099,
  metricsEnabled: false,
  metricsPort: 9091,
  bpfLogLevel: 'Off',
  mtu: 1480,
  defaultEndpointToHostAction: 'Drop',
  reportingIntervalSeconds: 30,
};

/** The settings one node runs with: its own object over "default" over the built-ins. */
export function effectiveAgentConfig(
  clusterDefault: AgentConfigurationSpec | undefined,
  node: AgentConfigurationSpec | undefined,
): Required<AgentConfigurationSpec> {
  const defined = (o: AgentConfigurationSpec | undefined) =>
    Object.fromEntries(Object.entries(o ?? {}).filter(([, v]) => v !== undefined));
  return { ...AGENT_CONFIG_DEFAULTS, ...defined(clusterDefault), ...defined(node) };
}
