/**
 * Service accounts and profile labels, with the meaning Calico gives them.
 *
 * Calico (libcalico-go's update processors, read for this) never matches a service account
 * directly: it turns every service-account match into an ordinary selector over endpoint
 * labels, and gives endpoints the labels those selectors look at:
 *
 * - an endpoint with `spec.serviceAccountName: S` carries the label
 *   `projectcalico.org/serviceaccount: S` (set from the spec, so a stored label cannot lie);
 * - a service account's own labels live in the Profile `ksa.<namespace>.<S>`, as its
 *   `labelsToApply`, each key prefixed `pcsa.`, plus `pcsa.projectcalico.org/name: S`
 *   (Calico's kube-controllers write exactly that Profile; tortie, without Kubernetes,
 *   reads the same Profile, written by the user or taken over from a Calico etcd);
 * - an endpoint inherits the `labelsToApply` of the profiles it lists, in order; its own
 *   labels win, then the first profile that has the key;
 * - a rule's `serviceAccounts.names` becomes `projectcalico.org/serviceaccount in {...}`,
 *   `serviceAccounts.selector` the same selector with every label key prefixed `pcsa.`,
 *   the two ANDed, and ANDed with the rule's `selector`; a policy's
 *   `serviceAccountSelector` is prefixed the same way and ANDed with its `selector`.
 *
 * Both dataplanes therefore get service accounts for free: they only ever see selectors
 * and endpoint labels.
 */
import type { Labels } from './model.js';
import { parseSelector, prefixSelectorKeys } from './selector.js';

/** The label Calico gives an endpoint from its `serviceAccountName`. */
export const SERVICE_ACCOUNT_LABEL = 'projectcalico.org/serviceaccount';
/** Prefix of a service account's labels, as endpoints inherit them. */
export const SERVICE_ACCOUNT_LABEL_PREFIX = 'pcsa.';
/** Prefix of a namespace's labels in Calico's model; stripped from an endpoint's own labels. */
export const NAMESPACE_LABEL_PREFIX = 'pcns.';
/** Calico's name of the profile that holds a service account's labels. */
export const SERVICE_ACCOUNT_PROFILE_PREFIX = 'ksa.';
/** The label that names a service account (or namespace) exactly, under its prefix. */
export const NAME_LABEL = 'projectcalico.org/name';

/** `ksa.<namespace>.<name>`: the Profile that holds service account `name`'s labels. */
export function serviceAccountProfileName(namespace: string, name: string): string {
  return `${SERVICE_ACCOUNT_PROFILE_PREFIX}${namespace}.${name}`;
}

/**
 * The service account a `ksa.` profile stands for; undefined for other names. A namespace
 * is a DNS label (no dots), so the first dot after the prefix ends it.
 */
export function serviceAccountOfProfile(
  profile: string,
): { namespace: string; name: string } | undefined {
  if (!profile.startsWith(SERVICE_ACCOUNT_PROFILE_PREFIX)) return undefined;
  const rest = profile.slice(SERVICE_ACCOUNT_PROFILE_PREFIX.length);
  const dot = rest.indexOf('.');
  if (dot <= 0 || dot === rest.length - 1) return undefined;
  return { namespace: rest.slice(0, dot), name: rest.slice(dot + 1) };
}

/** `(a) && (b)` of the parts given; undefined when none is. */
export function andSelectors(...parts: readonly (string | undefined)[]): string | undefined {
  const given = parts.filter((p): p is string => p !== undefined && p.trim() !== '');
  if (given.length === 0) return undefined;
  if (given.length === 1) return given[0];
  return given.map((p) => `(${p})`).join(' && ');
}

/** A selector over a service account's labels, as a selector over its endpoints' labels. */
export function serviceAccountLabelSelector(selector: string): string {
  return prefixSelectorKeys(selector, SERVICE_ACCOUNT_LABEL_PREFIX);
}

export interface ServiceAccountMatch {
  readonly names?: readonly string[];
  readonly selector?: string;
}

/**
 * A rule's `serviceAccounts` as a selector over endpoint labels; undefined when it
 * constrains nothing (no names and no selector, as in Calico).
 */
export function serviceAccountMatchSelector(match: ServiceAccountMatch): string | undefined {
  const bySelector =
    match.selector === undefined || match.selector.trim() === ''
      ? undefined
      : serviceAccountLabelSelector(match.selector);
  const names = match.names ?? [];
  const byName =
    names.length === 0
      ? undefined
      : parseSelector(`${SERVICE_ACCOUNT_LABEL} in {${names.map((n) => `"${n}"`).join(', ')}}`)
          .calicoForm;
  return andSelectors(bySelector, byName);
}

/** What an endpoint's labels are made of. */
export interface EndpointLabelSources {
  /** The WorkloadEndpoint's metadata labels. */
  readonly labels: Labels;
  readonly serviceAccountName?: string;
  /** Profile names, in the endpoint's order. */
  readonly profiles: readonly string[];
}

/**
 * The labels selectors see on an endpoint (besides `projectcalico.org/namespace`, which
 * the evaluator and the compiler add): its own labels without the `pcns.`/`pcsa.` keys
 * Calico reserves for inherited labels, the service-account label from the spec, then
 * each listed profile's `labelsToApply` for the keys still missing, in profile order.
 * A `ksa.` profile always applies `pcsa.projectcalico.org/name`, as Calico writes it.
 */
export function endpointLabels(
  sources: EndpointLabelSources,
  labelsToApply: (profile: string) => Labels | undefined,
): Labels {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(sources.labels)) {
    if (k.startsWith(NAMESPACE_LABEL_PREFIX) || k.startsWith(SERVICE_ACCOUNT_LABEL_PREFIX))
      continue;
    out[k] = v;
  }
  if (sources.serviceAccountName !== undefined && sources.serviceAccountName !== '')
    out[SERVICE_ACCOUNT_LABEL] = sources.serviceAccountName;
  for (const profile of sources.profiles) {
    const sa = serviceAccountOfProfile(profile);
    const applied: Labels = {
      ...(labelsToApply(profile) ?? {}),
      ...(sa === undefined ? {} : { [`${SERVICE_ACCOUNT_LABEL_PREFIX}${NAME_LABEL}`]: sa.name }),
    };
    for (const [k, v] of Object.entries(applied)) if (!Object.hasOwn(out, k)) out[k] = v;
  }
  return out;
}
