/**
 * kubeconfig files as kubectl and client-go read them: one cluster, one user, one context
 * (`current-context` set), the CA and client files referenced by absolute path, or a bearer
 * token inline. Written 0600 (a token or a key path is a credential).
 */
import { writeFileSync } from 'node:fs';
import { stringify } from 'yaml';

export interface KubeconfigUser {
  /** A client certificate and its key (files). */
  readonly clientCertificate?: string;
  readonly clientKey?: string;
  /** A bearer token (a service account's). */
  readonly token?: string;
}

/** The text of a kubeconfig for `server` (https URL) trusting `caFile`, as `user`. */
export function kubeconfigText(
  server: string,
  caFile: string,
  userName: string,
  user: KubeconfigUser,
): string {
  const u: Record<string, string> = {};
  if (user.clientCertificate !== undefined) u['client-certificate'] = user.clientCertificate;
  if (user.clientKey !== undefined) u['client-key'] = user.clientKey;
  if (user.token !== undefined) u.token = user.token;
  if (Object.keys(u).length === 0)
    throw new Error(`kubeconfig for ${userName}: give a client certificate and key, or a token`);
  const doc = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'tortie-lab', cluster: { server, 'certificate-authority': caFile } }],
    users: [{ name: userName, user: u }],
    contexts: [{ name: userName, context: { cluster: 'tortie-lab', user: userName } }],
    'current-context': userName,
    preferences: {},
  };
  return stringify(doc);
}

/** Writes `kubeconfigText(...)` to `file` (mode 0600); returns `file`. */
export function writeKubeconfig(
  file: string,
  server: string,
  caFile: string,
  userName: string,
  user: KubeconfigUser,
): string {
  writeFileSync(file, kubeconfigText(server, caFile, userName, user), { mode: 0o600 });
  return file;
}
