/** Kubernetes objects for tests, as a user would write them. */

/** A networking.k8s.io/v1 NetworkPolicy in `namespace`. */
export function k8sPolicy(namespace: string, name: string, spec: object) {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name, namespace },
    spec,
  };
}
