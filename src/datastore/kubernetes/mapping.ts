/**
 * The Kubernetes datastore's contract: how the etcd key layout the store, IPAM and the
 * agent speak (`${prefix}/resources/v3/…`, `${prefix}/ipam/v2/…`, `${prefix}/tortie/…`)
 * is carried by objects of the Kubernetes API.
 *
 * tortie's datastore, IPAM and agent are written against etcd's KV calls (range, txn,
 * watch: ../etcd/client.ts). On Kubernetes those calls are served by a client that maps
 * each key range onto one API resource (./kv.ts), as Calico's libcalico-go maps its model
 * keys onto CRDs and Kubernetes' own objects in its "kubernetes" backend. A mapping says,
 * for one key range, which resource holds it and how an object and a stored value are
 * converted each way. Revisions are the API's resourceVersions (etcd revisions of the API
 * server's own etcd, compared as integers; the client checks they parse as such).
 *
 * Two families implement it:
 *   - CRD-backed ranges, where tortie owns the objects (./crds.ts): Calico's kinds as
 *     `crd.projectcalico.org/v1` objects in Calico's shapes, IPAM's blocks, affinities,
 *     handles and config, tortie's own kinds and status records (group `tortie.io`);
 *   - Kubernetes' own objects, read (and where Calico does, annotated), never owned
 *     (./native/): Pods as WorkloadEndpoints, Namespaces, ServiceAccounts,
 *     NetworkPolicies, Nodes.
 */

/** One resource of the API: `/apis/<group>/<version>/[namespaces/<ns>/]<plural>`. */
export interface KubeResource {
  /** '' for the core group (`/api/v1`). */
  readonly group: string;
  readonly version: string;
  readonly plural: string;
  readonly kind: string;
  readonly namespaced: boolean;
}

export interface KubeObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  creationTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [field: string]: unknown;
}

/** An object as the API serves it. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: KubeObjectMeta;
  [field: string]: unknown;
}

/** What a put of a stored value at a key becomes in the API. */
export type KubeWrite =
  /** A whole object, created (the key does not exist) or replaced (resourceVersion-guarded). */
  | { readonly object: KubeObject }
  /** A JSON merge patch of an object tortie does not own (a Pod's annotations, a Node's). */
  | { readonly mergePatch: Record<string, unknown> }
  /** The key cannot be written on this datastore; the text says why (shown to the user). */
  | { readonly refused: string };

/** What a delete of a key becomes in the API. */
export type KubeDelete =
  | { readonly delete: true }
  | { readonly mergePatch: Record<string, unknown> }
  | { readonly refused: string };

export interface KeyMapping {
  /** The resource that holds this range. */
  readonly resource: KubeResource;
  /** The key range this mapping owns, under the store's prefix (ends with "/"). */
  keyPrefix(prefix: string): string;
  /** The object's name and namespace for a key of the range; undefined: not a key of it. */
  objectRef(key: string, prefix: string): { name: string; namespace?: string } | undefined;
  /**
   * The key and stored value (JSON text, as the etcd datastore stores it) of an object the
   * API served; undefined when the object has no counterpart in the range (a pod that has
   * no address yet).
   */
  toKv(object: KubeObject, prefix: string): { key: string; value: string } | undefined;
  /** How a put of `value` at `key` is written, given the object as it is now (if any). */
  fromPut(key: string, value: string, current: KubeObject | undefined, prefix: string): KubeWrite;
  /** How a delete of `key` is written, given the object as it is now. */
  fromDelete(key: string, current: KubeObject, prefix: string): KubeDelete;
}
