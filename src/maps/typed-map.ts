/**
 * A native BpfMap seen through its key and value codecs.
 */
import type { BpfMap } from '../native/types.js';
import type { MapSpec } from './catalog.js';
import { decodePerCpu, encodePerCpu, sumPerCpu } from './percpu.js';

/** BPF_ANY / BPF_NOEXIST / BPF_EXIST */
export const UpdateFlags = { ANY: 0, NOEXIST: 1, EXIST: 2 } as const;

export class TypedMap<K, V> {
  constructor(
    readonly map: BpfMap,
    readonly spec: MapSpec<K, V>,
  ) {
    if (spec.perCpu) throw new Error(`${spec.name} is per-CPU: use PerCpuMap`);
  }

  lookup(key: K): V | null {
    const raw = this.map.lookup(this.spec.key.encode(key));
    return raw === null ? null : this.spec.value.decode(raw);
  }

  update(key: K, value: V, flags: number = UpdateFlags.ANY): void {
    this.map.update(this.spec.key.encode(key), this.spec.value.encode(value), flags);
  }

  delete(key: K): boolean {
    return this.map.delete(this.spec.key.encode(key));
  }

  entries(): [K, V][] {
    const { keys, values } = this.map.entries();
    return keys.map((k, i) => [this.spec.key.decode(k), this.spec.value.decode(values[i]!)]);
  }
}

type Counter = number | bigint | { readonly [field: string]: number | bigint };

export class PerCpuMap<K, V extends Counter> {
  constructor(
    readonly map: BpfMap,
    readonly spec: MapSpec<K, V>,
  ) {
    if (!spec.perCpu) throw new Error(`${spec.name} is not per-CPU: use TypedMap`);
  }

  /** One value per possible CPU, or null when the key is absent. */
  lookupPerCpu(key: K): V[] | null {
    const raw = this.map.lookup(this.spec.key.encode(key));
    return raw === null ? null : decodePerCpu(this.spec.value, raw);
  }

  /** The values of all CPUs added up, or null when the key is absent. */
  lookupSum(key: K): V | null {
    const perCpu = this.lookupPerCpu(key);
    return perCpu === null ? null : sumPerCpu(perCpu);
  }

  /** Sets every CPU's value (one per possible CPU). */
  updatePerCpu(key: K, values: readonly V[]): void {
    this.map.update(this.spec.key.encode(key), encodePerCpu(this.spec.value, values));
  }

  delete(key: K): boolean {
    return this.map.delete(this.spec.key.encode(key));
  }

  /** Every key with its values summed over CPUs. */
  entriesSum(): [K, V][] {
    const { keys, values } = this.map.entries();
    return keys.map((k, i) => [
      this.spec.key.decode(k),
      sumPerCpu(decodePerCpu(this.spec.value, values[i]!)),
    ]);
  }
}
