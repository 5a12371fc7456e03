/**
 * IPReservation (addresses IPAM must never hand out) and IPAMConfiguration (the cluster's
 * IPAM options, the singleton "default"), as Calico defines them.
 */
import { z } from 'zod';
import { fail } from '../../policy/fields.js';
import { parseCidr } from '../../policy/cidr.js';
import { intIn } from './fields.js';

/** A CIDR or a bare address (a /32), host bits masked as Calico does. */
const reservedCidr = z.string().transform((text, ctx) => {
  const parsed = parseCidr(text);
  return parsed.ok ? parsed.cidr.text : fail(ctx, parsed.reason);
});

export const ipReservationSpec = z
  .object({ reservedCIDRs: z.array(reservedCidr).default([]) })
  .strict();

export type IPReservationSpec = z.output<typeof ipReservationSpec>;

export const ipamConfigurationSpec = z
  .object({
    strictAffinity: z.boolean().default(false),
    maxBlocksPerHost: intIn(0, 2147483647).optional(),
    autoAllocateBlocks: z.boolean().default(true),
    kubeVirtVMAddressPersistence: z.enum(['Enabled', 'Disabled']).optional(),
    ipCooldownSeconds: intIn(0, 2147483647).optional(),
  })
  .strict();

export type IPAMConfigurationSpec = z.output<typeof ipamConfigurationSpec>;

/** IPAMConfiguration is a singleton, as in Calico. */
export const ipamConfigurationName = z.string().superRefine((name, ctx) => {
  if (name !== 'default')
    fail(ctx, `${JSON.stringify(name)}: the IPAMConfiguration must be called "default"`);
});
