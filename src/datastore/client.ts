/** Moved to ./etcd/client.ts; kept so that imports of this path still resolve. */
export type * from './etcd/client.js';
