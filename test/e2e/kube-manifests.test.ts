/**
 * manifests/ against a real kube-apiserver (src/lab/kube): `kubectl apply --dry-run=server`
 * accepts every file (before the CRDs exist and after), Calico-shaped custom objects
 * validate against the CRDs, and the tortie-node ServiceAccount's token can do what its
 * ClusterRole grants and nothing else (Forbidden). The CRDs cover every kind tortie stores.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

import { KIND_NAMES, KINDS } from '../../src/datastore/kinds.js';
import {
  KUBE_START_TIMEOUT_MS,
  startTestKubeApiserver,
  type KubeApiserver,
} from '../helpers/kube-api.js';

const MANIFESTS = fileURLToPath(new URL('../../manifests/', import.meta.url));
const CRD_FILES = ['00-crds-calico.yaml', '01-crds-tortie.yaml'].map((f) => join(MANIFESTS, f));
/** Kinds that are Kubernetes' own objects on this datastore, never custom resources. */
const NATIVE = new Set(['WorkloadEndpoint', 'Node', 'Namespace', 'K8sNetworkPolicy']);

interface Doc {
  kind: string;
  metadata: { name: string };
  spec: Record<string, unknown> & {
    group?: string;
    scope?: string;
    names?: { kind: string; plural: string };
  };
  rules?: { apiGroups: string[]; resources: string[]; verbs: string[] }[];
}

function manifestDocs(): Doc[] {
  return readdirSync(MANIFESTS)
    .filter((f) => /\.ya?ml$/.test(f))
    .flatMap((f) =>
      parseAllDocuments(readFileSync(join(MANIFESTS, f), 'utf8'))
        .map((d) => d.toJS() as Doc | null)
        .filter((d): d is Doc => d !== null),
    );
}

let api: KubeApiserver | undefined;
let nodeKubeconfig = '';

beforeAll(async () => {
  api = await startTestKubeApiserver();
}, KUBE_START_TIMEOUT_MS);

afterAll(() => api?.stop(), 60_000);

/** kubectl as the tortie-node ServiceAccount. */
const asNode = (args: string[], input?: string) =>
  api!.kubectl(args, { kubeconfig: nodeKubeconfig, ...(input === undefined ? {} : { input }) });

const ipamBlock = (name: string, spec: Record<string, unknown>) =>
  JSON.stringify({
    apiVersion: 'crd.projectcalico.org/v1',
    kind: 'IPAMBlock',
    metadata: { name },
    spec,
  });

describe('manifests/', () => {
  it('has a CRD for every kind tortie stores, with its group, plural and scope', () => {
    const crds = manifestDocs().filter((d) => d.kind === 'CustomResourceDefinition');
    const byName = new Map(crds.map((c) => [c.metadata.name, c]));
    for (const k of KIND_NAMES.filter((n) => !NATIVE.has(n))) {
      const info = KINDS[k];
      const group = info.apiVersions.includes('crd.projectcalico.org/v1')
        ? 'crd.projectcalico.org'
        : 'tortie.io';
      const crd = byName.get(`${info.plural}.${group}`);
      expect(crd, `CRD for ${k}`).toBeDefined();
      expect(crd!.spec.names).toMatchObject({ kind: info.kind, plural: info.plural });
      expect(crd!.spec.scope).toBe(info.namespaced ? 'Namespaced' : 'Cluster');
    }
    for (const name of [
      'ipamblocks.crd.projectcalico.org',
      'blockaffinities.crd.projectcalico.org',
      'ipamhandles.crd.projectcalico.org',
      'ipamconfigs.crd.projectcalico.org',
      'tortiestatuses.tortie.io',
    ])
      expect(byName.get(name), name).toBeDefined();
    // The node role reads every Calico resource the manifests define.
    const role = manifestDocs().find((d) => d.kind === 'ClusterRole')!;
    const readable = new Set(
      role.rules!.filter((r) => r.verbs.includes('list')).flatMap((r) => r.resources),
    );
    for (const c of crds) expect(readable, c.metadata.name).toContain(c.spec.names!.plural);
  });

  it('kubectl apply --dry-run=server accepts every file before the CRDs exist', async () => {
    const out = await api!.kubectlOk(['apply', '--dry-run=server', '-f', MANIFESTS]);
    console.log(`kubectl apply --dry-run=server -f manifests/ (no CRDs yet):\n${out}`);
    expect(out).toMatch(/daemonset\.apps\/tortie-node created \(server dry run\)/);
    expect(out).toMatch(/clusterrole\.rbac\.authorization\.k8s\.io\/tortie-node created/);
  });

  it('validates custom objects against the CRDs once they are applied', async () => {
    await api!.kubectlOk(['apply', ...CRD_FILES.flatMap((f) => ['-f', f])]);
    await api!.kubectlOk([
      'wait',
      '--for=condition=Established',
      '--timeout=120s',
      'crd',
      '-l',
      'app.kubernetes.io/part-of=tortie',
    ]);
    const out = await api!.kubectlOk(['apply', '--dry-run=server', '-f', MANIFESTS]);
    console.log(`kubectl apply --dry-run=server -f manifests/ (CRDs applied):\n${out}`);
    expect(out).toMatch(
      /customresourcedefinition\.apiextensions\.k8s\.io\/ippools\.crd\.projectcalico\.org unchanged \(server dry run\)/,
    );
    // A block in Calico's shape (nulls where Calico's client writes them) validates.
    const good = ipamBlock('10-65-0-0-26', {
      cidr: '10.65.0.0/26',
      affinity: 'host:node-1',
      allocations: [0, null, null],
      unallocated: [1, 2],
      attributes: [{ handle_id: 'k8s-pod-network.c1', secondary: { node: 'node-1' } }],
      strictAffinity: false,
      deleted: false,
      sequenceNumber: 1733000000000000000,
    });
    await api!.kubectlOk(['create', '--dry-run=server', '-f', '-'], { input: good });
    // A wrong type is refused naming the field.
    const bad = await api!.kubectl(['create', '--dry-run=server', '-f', '-'], {
      input: ipamBlock('10-65-0-64-26', { cidr: '10.65.0.64/26', allocations: ['x'] }),
    });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/spec\.allocations\[0\]/);
  });

  it("the tortie-node ServiceAccount's token gets what the role grants, and Forbidden for the rest", async () => {
    await api!.kubectlOk(['apply', '-f', MANIFESTS]);
    nodeKubeconfig = await api!.serviceAccountKubeconfig('kube-system', 'tortie-node');
    await api!.kubectlOk(['create', 'namespace', 'rbac-probe']);
    await api!.kubectlOk(['create', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: 'rbac-node' },
      }),
    });

    // Granted: reading policy inputs, annotating a node, IPAM blocks, status records.
    for (const args of [
      ['get', 'pods', '-A'],
      ['get', 'namespaces'],
      ['get', 'networkpolicies.networking.k8s.io', '-A'],
      ['get', 'globalnetworkpolicies.crd.projectcalico.org'],
      ['annotate', 'node', 'rbac-node', 'projectcalico.org/IPv4Address=192.0.2.1/24'],
    ]) {
      const r = await asNode(args);
      expect(r.stderr, args.join(' ')).not.toMatch(/forbidden|error/i);
      expect(r.code, args.join(' ')).toBe(0);
    }
    const created = await asNode(
      ['create', '-f', '-'],
      ipamBlock('10-66-0-0-26', {
        cidr: '10.66.0.0/26',
        affinity: 'host:rbac-node',
        allocations: [null],
        unallocated: [0],
        attributes: [],
        strictAffinity: false,
      }),
    );
    expect(created.code, created.stderr).toBe(0);
    const status = await asNode(
      ['create', '-f', '-'],
      JSON.stringify({
        apiVersion: 'tortie.io/v1',
        kind: 'TortieStatus',
        metadata: { name: 'heartbeat-rbac-node' },
        spec: { path: 'heartbeat/rbac-node', data: { alive: true } },
      }),
    );
    expect(status.code, status.stderr).toBe(0);

    // Not granted: each refused by RBAC, as Forbidden.
    const refusals: [string, string[], string?][] = [
      ['delete namespaces', ['delete', 'namespace', 'rbac-probe']],
      [
        'create networkpolicies',
        ['create', '-n', 'rbac-probe', '-f', '-'],
        JSON.stringify({
          apiVersion: 'networking.k8s.io/v1',
          kind: 'NetworkPolicy',
          metadata: { name: 'x', namespace: 'rbac-probe' },
          spec: { podSelector: {} },
        }),
      ],
      [
        'create globalnetworkpolicies',
        ['create', '-f', '-'],
        JSON.stringify({
          apiVersion: 'crd.projectcalico.org/v1',
          kind: 'GlobalNetworkPolicy',
          metadata: { name: 'default.x' },
          spec: {},
        }),
      ],
      ['read secrets', ['get', 'secrets', '-n', 'kube-system']],
      ['delete nodes', ['delete', 'node', 'rbac-node']],
      [
        'delete clusterinformations',
        ['delete', 'clusterinformations.crd.projectcalico.org', 'default'],
      ],
    ];
    const seen: string[] = [];
    for (const [what, args, input] of refusals) {
      const r = await asNode(args, input);
      expect(r.code, what).not.toBe(0);
      expect(r.stderr, what).toMatch(/Forbidden|forbidden/);
      seen.push(`${what}: ${r.stderr.trim().split('\n')[0]}`);
    }
    console.log(`refused for system:serviceaccount:kube-system:tortie-node:\n${seen.join('\n')}`);
    // The namespace and node are still there: nothing refused happened.
    await api!.kubectlOk(['get', 'namespace', 'rbac-probe']);
    await api!.kubectlOk(['get', 'node', 'rbac-node']);
  });
});
