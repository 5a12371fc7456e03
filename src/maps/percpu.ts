/**
 * Per-CPU map values: the kernel returns one value per possible CPU, each padded to a
 * multiple of 8 bytes.
 */
import type { Codec } from './codec.js';

/** Bytes one CPU's value occupies in a per-CPU lookup buffer. */
export function perCpuStride(valueSize: number): number {
  return Math.ceil(valueSize / 8) * 8;
}

/** One decoded value per CPU, in CPU order. */
export function decodePerCpu<T>(codec: Codec<T>, buf: Buffer): T[] {
  const stride = perCpuStride(codec.size);
  if (buf.length % stride !== 0) {
    throw new Error(
      `${codec.cName}: per-CPU buffer of ${buf.length} bytes is not a multiple of ${stride}`,
    );
  }
  const values: T[] = [];
  for (let at = 0; at < buf.length; at += stride) values.push(codec.decode(buf, at));
  return values;
}

/** The buffer an update of a per-CPU map expects: one value per CPU. */
export function encodePerCpu<T>(codec: Codec<T>, values: readonly T[]): Buffer {
  const stride = perCpuStride(codec.size);
  const buf = Buffer.alloc(stride * values.length);
  values.forEach((v, i) => codec.encode(v).copy(buf, i * stride));
  return buf;
}

type Summable = number | bigint | { readonly [field: string]: number | bigint };

function add<T extends number | bigint>(a: T, b: T): T {
  return (
    typeof a === 'bigint' ? (a as bigint) + (b as bigint) : (a as number) + (b as number)
  ) as T;
}

/** Field by field sum over CPUs (counters). Throws on an empty list. */
export function sumPerCpu<T extends Summable>(values: readonly T[]): T {
  const [first, ...rest] = values;
  if (first === undefined) throw new Error('sumPerCpu: no per-CPU values');
  if (typeof first !== 'object')
    return rest.reduce<T>((acc, v) => add(acc as never, v as never), first);
  const total: Record<string, number | bigint> = { ...first };
  for (const v of rest) {
    for (const [k, x] of Object.entries(v as Record<string, number | bigint>))
      total[k] = add(total[k] as never, x as never);
  }
  return total as T;
}
