/**
 * IPPool: a range pods take addresses from, carved into per-node blocks of
 * `blockSize` (a /26 by default, as Calico). Stored with every default filled in, as
 * calicoctl stores them (so an exported pool carries them all), and so IPAM never guesses.
 */
import { z } from 'zod';
import { fail } from '../../policy/fields.js';
import { intIn, networkCidr, selector, selectorOrAll, uniqueNames } from './fields.js';

export const ALLOWED_USES = ['Workload', 'Tunnel', 'LoadBalancer'] as const;
export const ASSIGNMENT_MODES = ['Automatic', 'Manual'] as const;

export const ENCAP_MODES = ['Always', 'CrossSubnet', 'Never'] as const;
export type EncapMode = (typeof ENCAP_MODES)[number];

export const DEFAULT_BLOCK_SIZE = 26;

export const ipPoolSpec = z
  .object({
    cidr: networkCidr,
    blockSize: intIn(20, 32).default(DEFAULT_BLOCK_SIZE),
    ipipMode: z.enum(ENCAP_MODES).default('Never'),
    vxlanMode: z.enum(ENCAP_MODES).default('Never'),
    natOutgoing: z.boolean().default(false),
    disabled: z.boolean().default(false),
    disableBGPExport: z.boolean().default(false),
    nodeSelector: selectorOrAll,
    namespaceSelector: selector.optional(),
    allowedUses: uniqueNames(z.enum(ALLOWED_USES), 'use').default(['Workload', 'Tunnel']),
    assignmentMode: z.enum(ASSIGNMENT_MODES).default('Automatic'),
  })
  .strict()
  .superRefine((spec, ctx) => {
    // Fields refused above hold zod's placeholder, not their type: judge only real values.
    if (typeof spec.cidr !== 'string' || typeof spec.blockSize !== 'number') return;
    const prefix = Number(spec.cidr.split('/')[1]);
    if (prefix > spec.blockSize) {
      fail(
        ctx,
        `the pool ${spec.cidr} is smaller than one block (/${spec.blockSize}); use a blockSize of at least ${prefix}`,
        ['blockSize'],
      );
    }
    if (spec.ipipMode !== 'Never' && spec.vxlanMode !== 'Never') {
      fail(ctx, 'ipipMode and vxlanMode cannot both be enabled; set one of them to Never', [
        'vxlanMode',
      ]);
    }
  });

export type IPPoolSpec = z.output<typeof ipPoolSpec>;
