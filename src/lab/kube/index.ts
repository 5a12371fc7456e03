/** A real Kubernetes API server for labs and tests (./apiserver.ts). */
export * from './apiserver.js';
export * from './binaries.js';
export * from './certs.js';
export * from './kubeconfig.js';
