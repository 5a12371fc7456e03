/**
 * The datastore choice of the agent (--datastore, --kubeconfig; Calico's environment
 * names DATASTORE_TYPE and KUBECONFIG; the file's datastoreType, kubeconfig), and what
 * each datastore can do for the agent's status and waits.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import {
  AgentConfigError,
  kubeconfigPath,
  parseAgentConfigFile,
  resolveAgentConfig,
} from '../../src/agent/config.js';
import { capabilitiesOf, describeDatastore } from '../../src/agent/datastore.js';
import { resolveDatastore } from '../../src/cli/context.js';
import { UsageError } from '../../src/cli/usage.js';

describe('agent configuration: the datastore', () => {
  it('etcd by default; a KUBECONFIG of kubectl in the environment does not change that', () => {
    const c = resolveAgentConfig({ hostname: 'h', env: { KUBECONFIG: '/root/.kube/config' } });
    expect(c.datastoreType).toBe('etcd');
    expect(c.kubeconfig).toBeUndefined();
  });

  it("Calico's environment names: DATASTORE_TYPE=kubernetes and KUBECONFIG", () => {
    const c = resolveAgentConfig({
      hostname: 'h',
      env: { DATASTORE_TYPE: 'kubernetes', KUBECONFIG: '/etc/tortie/kubeconfig' },
    });
    expect(c.datastoreType).toBe('kubernetes');
    expect(c.kubeconfig).toBe('/etc/tortie/kubeconfig');
  });

  it('a flag beats the environment, which beats the file', () => {
    const c = resolveAgentConfig({
      hostname: 'h',
      flags: { kubeconfig: '/flag/kc' },
      env: { DATASTORE_TYPE: 'Kubernetes', KUBECONFIG: '/env/kc' },
      file: { datastoreType: 'etcd', kubeconfig: '/file/kc' },
    });
    expect(c.datastoreType).toBe('kubernetes');
    expect(c.kubeconfig).toBe('/flag/kc');
    const f = resolveAgentConfig({
      hostname: 'h',
      env: {},
      file: parseAgentConfigFile(
        'datastoreType: kubernetes\nkubeconfig: /file/kc\n',
        'agent.yaml',
        parseYaml,
      ),
    });
    expect([f.datastoreType, f.kubeconfig]).toEqual(['kubernetes', '/file/kc']);
  });

  it('kubernetes without a kubeconfig: undefined, the in-cluster service account is used', () => {
    const c = resolveAgentConfig({ hostname: 'h', flags: { datastore: 'kubernetes' }, env: {} });
    expect(c.datastoreType).toBe('kubernetes');
    expect(c.kubeconfig).toBeUndefined();
    expect(describeDatastore(c)).toBe('kubernetes (in-cluster service account)');
  });

  it('KUBECONFIG as a list (as kubectl takes it): its first file', () => {
    expect(kubeconfigPath('/a/kc:/b/kc')).toBe('/a/kc');
    expect(kubeconfigPath(':/b/kc')).toBe('/b/kc');
    expect(kubeconfigPath(undefined)).toBeUndefined();
  });

  it('refused: an unknown datastore type, and a kubeconfig given to tortie on etcd, each named', () => {
    const bad = () =>
      resolveAgentConfig({
        hostname: 'h',
        flags: { datastore: 'consul', kubeconfig: '/x' },
        env: {},
      });
    expect(bad).toThrow(AgentConfigError);
    expect(bad).toThrow(/datastore type "consul" is not one of etcd, kubernetes/);
    expect(() =>
      resolveAgentConfig({ hostname: 'h', flags: { kubeconfig: '/x' }, env: {} }),
    ).toThrow(/--kubeconfig: a kubeconfig is for the Kubernetes datastore/);
    expect(() =>
      resolveAgentConfig({
        hostname: 'h',
        env: {},
        file: { kubeconfig: '/x' },
        fileName: 'a.yaml',
      }),
    ).toThrow(/a\.yaml: kubeconfig: a kubeconfig is for the Kubernetes datastore/);
  });

  it('the file refuses a misspelt key, naming the known ones (datastoreType among them)', () => {
    expect(() => parseAgentConfigFile('datastore: kubernetes\n', 'agent.yaml', parseYaml)).toThrow(
      /agent\.yaml: datastore: unknown setting \(known: .*datastoreType/,
    );
  });

  it('capabilities: etcd has leases and one revision order; Kubernetes neither', () => {
    expect(capabilitiesOf('etcd')).toEqual({ leases: true, globalRevisions: true });
    expect(capabilitiesOf('kubernetes')).toEqual({ leases: false, globalRevisions: false });
  });
});

describe('the CLI: --datastore and --kubeconfig (tortie get/apply/ipam, node status)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tortie-agent-kube-config-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  it('options (commander puts DATASTORE_TYPE and KUBECONFIG in them) over the file', async () => {
    const config = file('a.yaml', 'datastoreType: etcd\nkubeconfig: /file/kc\n');
    const s = await resolveDatastore({
      config,
      datastore: 'kubernetes',
      kubeconfig: '/a/kc:/b/kc',
    });
    expect(s.datastoreType).toBe('kubernetes');
    expect(s.kubeconfig).toBe('/a/kc');
  });

  it('the file alone: tortie.yaml can say kubernetes and its kubeconfig', async () => {
    const config = file('b.yaml', 'datastoreType: kubernetes\nkubeconfig: /file/kc\n');
    const s = await resolveDatastore({ config });
    expect([s.datastoreType, s.kubeconfig]).toEqual(['kubernetes', '/file/kc']);
  });

  it('etcd: a kubeconfig (KUBECONFIG of kubectl) is not used', async () => {
    const config = file('c.yaml', '');
    const s = await resolveDatastore({ config, kubeconfig: '/root/.kube/config' });
    expect([s.datastoreType, s.kubeconfig]).toEqual(['etcd', undefined]);
  });

  it('an unknown type is a usage mistake naming the choices', async () => {
    const config = file('d.yaml', '');
    await expect(resolveDatastore({ config, datastore: 'consul' })).rejects.toThrow(UsageError);
    await expect(resolveDatastore({ config, datastore: 'consul' })).rejects.toThrow(
      '--datastore "consul": use etcd or kubernetes',
    );
  });
});
