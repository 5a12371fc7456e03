/**
 * Types for the parts of iproute2's JSON output (`ip -json`) that tortie reads, checked
 * with zod at the edge. Unknown fields are ignored; missing required ones are an error
 * that names the field.
 */
import { z } from 'zod';

export const ipLinkSchema = z.object({
  ifindex: z.number().int(),
  ifname: z.string(),
  flags: z.array(z.string()).default([]),
  mtu: z.number().int(),
  operstate: z.string().optional(),
  link_type: z.string().optional(),
  address: z.string().optional(),
  /** For a veth: the peer's ifindex (in the peer's namespace). */
  link_index: z.number().int().optional(),
  /** For a veth whose peer is in another namespace: that namespace's id, as seen from here. */
  link_netnsid: z.number().int().optional(),
});
export type IpLink = z.infer<typeof ipLinkSchema>;

export const ipAddrInfoSchema = z.object({
  family: z.string(),
  local: z.string().optional(),
  prefixlen: z.number().int().optional(),
  scope: z.string().optional(),
});
export type IpAddrInfo = z.infer<typeof ipAddrInfoSchema>;

export const ipAddrSchema = z.object({
  ifindex: z.number().int(),
  ifname: z.string(),
  addr_info: z.array(ipAddrInfoSchema).default([]),
});
export type IpAddr = z.infer<typeof ipAddrSchema>;

export const ipRouteSchema = z.object({
  /** "default", an address ("10.0.0.1", i.e. /32) or a prefix ("10.0.0.0/24"). */
  dst: z.string(),
  /** Absent for unicast routes; "blackhole", "unreachable", "local", ... otherwise. */
  type: z.string().optional(),
  gateway: z.string().optional(),
  dev: z.string().optional(),
  /** Absent means global. */
  scope: z.string().optional(),
  protocol: z.string().optional(),
  flags: z.array(z.string()).default([]),
});
export type IpRoute = z.infer<typeof ipRouteSchema>;

export const ipLinksSchema = z.array(ipLinkSchema);
export const ipAddrsSchema = z.array(ipAddrSchema);
export const ipRoutesSchema = z.array(ipRouteSchema);

/**
 * Splits the stdout of `ip -json -batch -` into one value per `show` line. iproute2
 * prints each answer as a single-line JSON array.
 */
export function splitJsonOutputs(stdout: string): unknown[] {
  return stdout
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .map((line, i) => {
      try {
        return JSON.parse(line) as unknown;
      } catch (err) {
        throw new Error(`ip -json output ${i + 1} is not JSON: ${line.slice(0, 200)}`, {
          cause: err,
        });
      }
    });
}

/** Parses one JSON answer with `schema`; the error names `what` and the bad field. */
export function parseIpJson<T>(
  schema: z.ZodType<T, z.ZodTypeDef, unknown>,
  value: unknown,
  what: string,
): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const where = issue
    ? `${issue.path.join('.') || '(root)'}: ${issue.message}`
    : result.error.message;
  throw new Error(`unexpected iproute2 JSON for ${what}: ${where}`);
}
