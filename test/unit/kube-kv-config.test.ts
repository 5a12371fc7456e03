/**
 * The Kubernetes client's connection settings as client-go reads them: a kubeconfig's
 * current context (certificates inline or as files relative to the kubeconfig, a token, a
 * token file), another context by name, and the pod's service account.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { inClusterConnection, loadKubeconfig } from '../../src/datastore/kubernetes/client.js';

const dir = mkdtempSync(join(tmpdir(), 'tortie-kubecfg-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('kubeconfig', () => {
  writeFileSync(join(dir, 'ca.pem'), 'CA-FROM-FILE');
  writeFileSync(join(dir, 'token'), 'tok-from-file\n');
  const config = join(dir, 'config');
  writeFileSync(
    config,
    [
      'apiVersion: v1',
      'kind: Config',
      'current-context: certs',
      'clusters:',
      '- name: one',
      `  cluster: {server: "https://10.0.0.1:6443/", certificate-authority-data: "${b64('CA-INLINE')}"}`,
      '- name: two',
      '  cluster: {server: "https://10.0.0.2:6443", certificate-authority: ca.pem}',
      'users:',
      `- name: admin`,
      `  user: {client-certificate-data: "${b64('CERT')}", client-key-data: "${b64('KEY')}"}`,
      '- name: bearer',
      '  user: {tokenFile: token}',
      '- name: half',
      `  user: {client-certificate-data: "${b64('CERT')}"}`,
      'contexts:',
      '- name: certs',
      '  context: {cluster: one, user: admin}',
      '- name: token',
      '  context: {cluster: two, user: bearer}',
      '- name: broken',
      '  context: {cluster: one, user: half}',
      '',
    ].join('\n'),
  );

  it('reads the current context: server, inline CA, client certificate and key', async () => {
    const c = await loadKubeconfig(config);
    expect(c.server).toBe('https://10.0.0.1:6443');
    expect(c.ca?.toString()).toBe('CA-INLINE');
    expect(c.cert?.toString()).toBe('CERT');
    expect(c.key?.toString()).toBe('KEY');
    expect(c.source).toContain('context certs');
  });

  it('reads another context, with files relative to the kubeconfig and a token file', async () => {
    const c = await loadKubeconfig(config, 'token');
    expect(c.ca?.toString()).toBe('CA-FROM-FILE');
    expect(c.tokenFile).toBe(join(dir, 'token'));
    expect(c.cert).toBeUndefined();
  });

  it('names what is wrong: an unknown context, a certificate without its key, a missing file', async () => {
    await expect(loadKubeconfig(config, 'nope')).rejects.toThrow(/no context called "nope"/);
    await expect(loadKubeconfig(config, 'broken')).rejects.toThrow(/without the other/);
    await expect(loadKubeconfig(join(dir, 'absent'))).rejects.toThrow(/kubeconfig .*absent/);
  });
});

describe('in-cluster service account', () => {
  it('uses KUBERNETES_SERVICE_HOST/PORT, the mounted CA and the token file', async () => {
    const sa = join(dir, 'sa');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(sa);
    writeFileSync(join(sa, 'ca.crt'), 'SA-CA');
    writeFileSync(join(sa, 'token'), 'sa-token');
    const saved = {
      h: process.env.KUBERNETES_SERVICE_HOST,
      p: process.env.KUBERNETES_SERVICE_PORT,
    };
    try {
      delete process.env.KUBERNETES_SERVICE_HOST;
      await expect(inClusterConnection(sa)).rejects.toThrow(/not in a pod/);
      process.env.KUBERNETES_SERVICE_HOST = '10.96.0.1';
      process.env.KUBERNETES_SERVICE_PORT = '443';
      const c = await inClusterConnection(sa);
      expect(c).toMatchObject({ server: 'https://10.96.0.1:443', tokenFile: join(sa, 'token') });
      expect(c.ca?.toString()).toBe('SA-CA');
    } finally {
      if (saved.h === undefined) delete process.env.KUBERNETES_SERVICE_HOST;
      else process.env.KUBERNETES_SERVICE_HOST = saved.h;
      if (saved.p === undefined) delete process.env.KUBERNETES_SERVICE_PORT;
      else process.env.KUBERNETES_SERVICE_PORT = saved.p;
    }
  });
});
