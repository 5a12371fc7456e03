/** kubeconfig files of the lab's API server (src/lab/kube/kubeconfig.ts). */
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

import { kubeconfigText } from '../../src/lab/kube/kubeconfig.js';

describe('kubeconfigText', () => {
  it('writes one cluster, user and context, the context current', () => {
    const doc = parse(
      kubeconfigText('https://127.0.0.1:6443', '/d/ca.pem', 'tortie-admin', {
        clientCertificate: '/d/admin.pem',
        clientKey: '/d/admin.key',
      }),
    ) as Record<string, unknown>;
    expect(doc).toMatchObject({
      apiVersion: 'v1',
      kind: 'Config',
      'current-context': 'tortie-admin',
      clusters: [
        {
          name: 'tortie-lab',
          cluster: { server: 'https://127.0.0.1:6443', 'certificate-authority': '/d/ca.pem' },
        },
      ],
      users: [
        {
          name: 'tortie-admin',
          user: { 'client-certificate': '/d/admin.pem', 'client-key': '/d/admin.key' },
        },
      ],
      contexts: [
        { name: 'tortie-admin', context: { cluster: 'tortie-lab', user: 'tortie-admin' } },
      ],
    });
  });

  it('carries a bearer token inline', () => {
    const doc = parse(
      kubeconfigText('https://127.0.0.1:6443', '/d/ca.pem', 'system:serviceaccount:a:b', {
        token: 'eyJ.x.y',
      }),
    ) as { users: { user: Record<string, string> }[] };
    expect(doc.users[0]!.user).toEqual({ token: 'eyJ.x.y' });
  });

  it('refuses a user with neither a certificate nor a token, naming the user', () => {
    expect(() => kubeconfigText('https://127.0.0.1:1', '/ca', 'nobody', {})).toThrow(
      /kubeconfig for nobody: give a client certificate and key, or a token/,
    );
  });

  it('refuses a certificate without its key', () => {
    expect(() =>
      kubeconfigText('https://127.0.0.1:1', '/ca', 'u', { clientCertificate: '/u.pem' }),
    ).toThrow(/kubeconfig for u: a client certificate needs its key/);
  });
});
