/** Per-CPU values: one per possible CPU, each padded to 8 bytes; sums over CPUs. */
import { describe, expect, it } from 'vitest';

import {
  decodePerCpu,
  encodePerCpu,
  metricsValCodec,
  perCpuStride,
  sumPerCpu,
  u32Codec,
  u64Codec,
} from '../../src/maps/index.js';

describe('per-CPU values', () => {
  it('pads every CPU slot to a multiple of 8 bytes', () => {
    expect([perCpuStride(4), perCpuStride(8), perCpuStride(12), perCpuStride(16)]).toEqual([
      8, 8, 16, 16,
    ]);
  });

  it('decodes one value per CPU from slots of the padded size', () => {
    const buf = Buffer.alloc(24);
    buf.writeUInt32LE(1, 0);
    buf.writeUInt32LE(2, 8);
    buf.writeUInt32LE(3, 16);
    expect(decodePerCpu(u32Codec, buf)).toEqual([1, 2, 3]);
  });

  it('round-trips per-CPU counters and sums them field by field', () => {
    const perCpu = [
      { packets: 1n, bytes: 100n },
      { packets: 2n, bytes: 50n },
    ];
    const buf = encodePerCpu(metricsValCodec, perCpu);
    expect(buf.length).toBe(32);
    expect(decodePerCpu(metricsValCodec, buf)).toEqual(perCpu);
    expect(sumPerCpu(perCpu)).toEqual({ packets: 3n, bytes: 150n });
  });

  it('sums bare scalars', () => {
    expect(sumPerCpu(decodePerCpu(u64Codec, encodePerCpu(u64Codec, [5n, 6n, 7n])))).toBe(18n);
    expect(sumPerCpu([1, 2])).toBe(3);
  });

  it('refuses a buffer that is not a whole number of CPU slots', () => {
    expect(() => decodePerCpu(metricsValCodec, Buffer.alloc(20))).toThrow(
      /tortie_metrics_val: per-CPU buffer of 20 bytes/,
    );
    expect(() => sumPerCpu([])).toThrow(/no per-CPU values/);
  });
});
