/**
 * The lab's real Kubernetes API server (src/lab/kube): etcd 3.6 and kube-apiserver 1.34
 * started by the test, the admin's kubectl, a ServiceAccount's token, a restart that keeps
 * the objects, a detached one driven from its directory, and stop() leaving nothing.
 */
import { existsSync } from 'node:fs';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { attachKubeApiserver, KUBE_RELEASE } from '../../src/lab/kube/index.js';
import { pidAlive } from '../../src/util/proc.js';
import {
  KUBE_START_TIMEOUT_MS,
  startTestKubeApiserver,
  type KubeApiserver,
} from '../helpers/kube-api.js';

let api: KubeApiserver | undefined;
let detached: KubeApiserver | undefined;

/** Who a kubeconfig authenticates as: a SelfSubjectReview (what `kubectl auth whoami` sends,
 *  written out so that an older kubectl, such as Debian's, runs it too). */
async function whoami(kubeconfig: string): Promise<{ username: string; groups: string[] }> {
  const review = { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' };
  const out = await api!.kubectlOk(['create', '--validate=false', '-f', '-', '-o', 'json'], {
    kubeconfig,
    input: JSON.stringify(review),
  });
  return (JSON.parse(out) as { status: { userInfo: { username: string; groups: string[] } } })
    .status.userInfo;
}

beforeAll(async () => {
  const started = Date.now();
  api = await startTestKubeApiserver();
  console.log(`etcd + kube-apiserver ready in ${Date.now() - started} ms (certificates included)`);
}, KUBE_START_TIMEOUT_MS);

afterAll(async () => {
  await api?.stop();
  await detached?.stop();
}, 60_000);

describe('startKubeApiserver', () => {
  it('serves the admin kubectl (system:masters) with its namespaces', async () => {
    const out = await api!.kubectlOk(['get', 'ns', '-o', 'name']);
    expect(out.split('\n')).toEqual(
      expect.arrayContaining(['namespace/default', 'namespace/kube-system']),
    );
    const me = await whoami(api!.adminKubeconfig);
    expect(me.username).toBe('tortie-admin');
    expect(me.groups).toContain('system:masters');
  });

  it('is the pinned release (scripts/build-peers.sh)', async () => {
    const version = await api!.request<{ gitVersion: string }>('GET', '/version');
    expect(version.body.gitVersion).toBe(KUBE_RELEASE);
  });

  it('mints a ServiceAccount token whose kubeconfig authenticates as the account, with RBAC enforced', async () => {
    await api!.ensureNamespace('tortie-sa-test');
    await api!.ensureServiceAccount('tortie-sa-test', 'reader');
    const kubeconfig = await api!.serviceAccountKubeconfig('tortie-sa-test', 'reader');
    expect((await whoami(kubeconfig)).username).toBe('system:serviceaccount:tortie-sa-test:reader');
    // No role binds it: listing pods is Forbidden.
    const denied = await api!.kubectl(['get', 'pods', '-n', 'tortie-sa-test'], { kubeconfig });
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(/Forbidden/);
  });

  it('keeps every object across an API server restart (etcd keeps running)', async () => {
    await api!.kubectlOk(['create', 'configmap', 'kept', '-n', 'default', '--from-literal=a=1']);
    const before = JSON.parse(
      await api!.kubectlOk(['get', 'configmap', 'kept', '-n', 'default', '-o', 'json']),
    ) as { metadata: { uid: string; resourceVersion: string } };
    const oldPid = api!.state().apiserverPid;
    const restarted = Date.now();
    await api!.restart();
    console.log(`kube-apiserver restarted and ready in ${Date.now() - restarted} ms`);
    expect(api!.state().apiserverPid).not.toBe(oldPid);
    expect(pidAlive(oldPid)).toBe(false);
    expect(await api!.ready()).toBe(true);
    const after = JSON.parse(
      await api!.kubectlOk(['get', 'configmap', 'kept', '-n', 'default', '-o', 'json']),
    ) as { metadata: { uid: string; resourceVersion: string } };
    expect(after.metadata).toMatchObject({
      uid: before.metadata.uid,
      resourceVersion: before.metadata.resourceVersion,
    });
  });

  it('runs detached, is driven again from its directory, and stop() leaves nothing', async () => {
    detached = await startTestKubeApiserver({ detached: true });
    const { dir } = detached;
    const state = detached.state();
    expect(pidAlive(state.apiserverPid)).toBe(true);
    expect(pidAlive(state.etcdPid)).toBe(true);
    const again = attachKubeApiserver(dir);
    expect(again.url).toBe(detached.url);
    expect(await again.ready()).toBe(true);
    expect(await again.kubectlOk(['get', 'ns', 'default', '-o', 'name'])).toContain(
      'namespace/default',
    );
    await again.stop();
    detached = undefined;
    expect(pidAlive(state.apiserverPid)).toBe(false);
    expect(pidAlive(state.etcdPid)).toBe(false);
    expect(existsSync(dir)).toBe(false);
  });
});
