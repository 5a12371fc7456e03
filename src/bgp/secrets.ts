/**
 * BGP passwords given as Calico's `password.secretKeyRef` ({ name, key }). Calico reads a
 * Kubernetes Secret; tortie has no Kubernetes, so the agent reads a file instead:
 *
 *   <bgpSecretsDir>/<name>/<key>        (default /etc/tortie/secrets/<name>/<key>)
 *
 * — the layout of a Secret mounted as a volume, so a Secret's files can be put there as
 * they are. The file must be a regular file, owned by root or the agent's user, and
 * readable by its owner only (mode 0600 or 0400): a key others can read is refused, not
 * used. Its content is the password; one trailing line break is dropped (`echo` writes
 * one). docs/bgp.md, "Passwords".
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { SecretKeyRef } from '../datastore/schema/bgp.js';
import { secretId, type SecretValue } from './render.js';

/** The file holding `ref` under `dir`. */
export function secretPath(dir: string, ref: SecretKeyRef): string {
  return join(dir, ref.name, ref.key);
}

/** One secret, read and checked. */
export function readSecret(dir: string, ref: SecretKeyRef): SecretValue {
  const path = secretPath(dir, ref);
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR'
      ? { problem: `${path} does not exist`, missing: true }
      : { problem: `${path}: ${(e as Error).message}` };
  }
  if (!st.isFile()) return { problem: `${path} is not a regular file` };
  const uid = process.getuid?.() ?? 0;
  if (st.uid !== 0 && st.uid !== uid)
    return { problem: `${path} is owned by uid ${st.uid}, not root or the agent's user` };
  if ((st.mode & 0o077) !== 0)
    return {
      problem: `${path} can be read by others (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}): chmod 600 it`,
    };
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    return { problem: `${path}: ${(e as Error).message}` };
  }
  const value = text.replace(/\r?\n$/, '');
  if (value.length === 0 || value.length > 80)
    return { problem: `${path} holds ${value.length} characters; a BGP password has 1-80` };
  return { value };
}

/** Every secret `refs` name, by secretId (read once each). */
export function readSecrets(dir: string, refs: readonly SecretKeyRef[]): Map<string, SecretValue> {
  const out = new Map<string, SecretValue>();
  for (const ref of refs) {
    const id = secretId(ref);
    if (!out.has(id)) out.set(id, readSecret(dir, ref));
  }
  return out;
}
