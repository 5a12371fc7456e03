/**
 * ServiceAccounts as the Profiles `ksa.<namespace>.<account>` that carry their labels, as
 * Calico's Kubernetes datastore shows them: `labelsToApply` holds each label of the
 * account under `pcsa.`, plus `pcsa.projectcalico.org/name: <account>`; no rules. That is
 * where tortie already looks for a service account's labels (serviceAccountSelector,
 * src/policy/service-accounts.ts), so nothing else changes for the agent.
 *
 * This mapping holds the whole Profile range: Calico's Kubernetes datastore has no Profile
 * objects of its own either (its `kns.` profiles come from namespaces, which tortie builds
 * itself from the Namespace kind). Writes are refused: an account's labels are changed with
 * kubectl.
 */
import {
  NAME_LABEL,
  SERVICE_ACCOUNT_LABEL_PREFIX,
  serviceAccountOfProfile,
  serviceAccountProfileName,
} from '../../../policy/service-accounts.js';
import type { KeyMapping, KubeObject } from '../mapping.js';
import { coreResource, identityOf, keyParts, kv, rangeOf } from './common.js';

/** The labels endpoints of an account inherit through its profile. */
export function serviceAccountLabelsToApply(sa: KubeObject): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(sa.metadata.labels ?? {})) {
    out[`${SERVICE_ACCOUNT_LABEL_PREFIX}${k}`] = v;
  }
  out[`${SERVICE_ACCOUNT_LABEL_PREFIX}${NAME_LABEL}`] = sa.metadata.name;
  return out;
}

function objectRef(key: string, prefix: string): { name: string; namespace: string } | undefined {
  const parts = keyParts(key, rangeOf('Profile', prefix), false);
  const sa = parts === undefined ? undefined : serviceAccountOfProfile(parts.name);
  return sa === undefined ? undefined : { name: sa.name, namespace: sa.namespace };
}

function refusal(key: string, prefix: string, verb: 'write' | 'delete'): string {
  const ref = objectRef(key, prefix);
  if (ref === undefined) {
    const name = keyParts(key, rangeOf('Profile', prefix), false)?.name ?? key;
    return `Profile ${name}: on the Kubernetes datastore profiles are made from service accounts (ksa.<namespace>.<account>) and namespaces (kns.<namespace>), as in Calico's; there are no others to ${verb} (write a NetworkPolicy or GlobalNetworkPolicy instead)`;
  }
  return verb === 'write'
    ? `Profile ${serviceAccountProfileName(ref.namespace, ref.name)}: it is service account ${ref.namespace}/${ref.name}'s; change the account's labels with kubectl label serviceaccount -n ${ref.namespace} ${ref.name} KEY=VALUE`
    : `Profile ${serviceAccountProfileName(ref.namespace, ref.name)}: it is service account ${ref.namespace}/${ref.name}'s; it goes when the account does (kubectl delete serviceaccount -n ${ref.namespace} ${ref.name})`;
}

export const SERVICE_ACCOUNTS: KeyMapping = {
  resource: coreResource('serviceaccounts', 'ServiceAccount', true),
  keyPrefix: (prefix) => rangeOf('Profile', prefix),
  objectRef,
  toKv(sa: KubeObject, prefix: string) {
    const namespace = sa.metadata.namespace ?? 'default';
    const name = serviceAccountProfileName(namespace, sa.metadata.name);
    return kv(`${rangeOf('Profile', prefix)}${name}`, {
      apiVersion: 'projectcalico.org/v3',
      kind: 'Profile',
      metadata: identityOf(sa, name),
      spec: { labelsToApply: serviceAccountLabelsToApply(sa) },
    });
  },
  fromPut: (key, _value, _current, prefix) => ({ refused: refusal(key, prefix, 'write') }),
  fromDelete: (key, _current, prefix) => ({ refused: refusal(key, prefix, 'delete') }),
};
