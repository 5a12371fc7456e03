/**
 * CNI_ARGS: `KEY=VALUE` pairs separated by ';' ("IgnoreUnknown=1;K8S_POD_NAMESPACE=web").
 *
 * As in the reference Go plugins, a key tortie does not know is an error unless
 * `IgnoreUnknown` is true: a typo in a key must not silently lose, say, the namespace.
 */
import { CniCode, CniError } from './errors.js';

export interface CniArgs {
  /** K8S_POD_NAMESPACE */
  podNamespace?: string;
  /** K8S_POD_NAME (podman sets it to the container name) */
  podName?: string;
  /** K8S_POD_INFRA_CONTAINER_ID */
  infraContainerId?: string;
  /** K8S_POD_UID */
  podUid?: string;
}

const KNOWN: Record<string, keyof CniArgs | null> = {
  IgnoreUnknown: null,
  K8S_POD_NAMESPACE: 'podNamespace',
  K8S_POD_NAME: 'podName',
  K8S_POD_INFRA_CONTAINER_ID: 'infraContainerId',
  K8S_POD_UID: 'podUid',
};

const KEY = /^[A-Za-z0-9_]+$/;

export function parseCniArgs(raw: string | undefined): CniArgs {
  if (raw === undefined || raw.trim() === '') return {};
  const pairs: Array<[string, string]> = [];
  for (const part of raw.split(';')) {
    if (part === '') continue; // tolerate "A=1;" and ";;"
    const eq = part.indexOf('=');
    if (eq < 0) bad(`${JSON.stringify(part)} is not a KEY=VALUE pair`);
    const key = part.slice(0, eq);
    if (!KEY.test(key)) {
      bad(`key ${JSON.stringify(key)} (in ${JSON.stringify(part)}) must be letters, digits or '_'`);
    }
    pairs.push([key, part.slice(eq + 1)]);
  }
  const ignoreUnknown = pairs
    .filter(([key]) => key === 'IgnoreUnknown')
    .map(([, value]) => parseBool(value))
    .some(Boolean);
  const args: CniArgs = {};
  for (const [key, value] of pairs) {
    const field = KNOWN[key];
    if (field === undefined) {
      if (ignoreUnknown) continue;
      bad(
        `unknown key ${key} (known: ${Object.keys(KNOWN).join(', ')}; add IgnoreUnknown=1 to pass others)`,
      );
    }
    if (field !== null && value !== '') args[field] = value;
  }
  return args;
}

function parseBool(value: string): boolean {
  if (['1', 'true', 'True', 'TRUE'].includes(value)) return true;
  if (['0', 'false', 'False', 'FALSE', ''].includes(value)) return false;
  bad(`IgnoreUnknown=${JSON.stringify(value)} is not a boolean (use 1, true, 0 or false)`);
}

function bad(problem: string): never {
  throw new CniError(CniCode.InvalidEnvironment, `CNI_ARGS: ${problem}`);
}
