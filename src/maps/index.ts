/**
 * Typed views of the dataplane's maps: one codec per C struct of bpf/tortie_maps.h,
 * the enums, per-CPU decoding, and the map catalogue.
 */
export * from './addr.js';
export * from './catalog.js';
export * from './codec.js';
export * from './enums.js';
export * from './percpu.js';
export * from './policy-keys.js';
export * from './structs.js';
export * from './typed-map.js';
