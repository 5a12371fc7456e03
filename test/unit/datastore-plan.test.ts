/** Deciding a write from what the store held: pure, no etcd. */
import { describe, expect, it } from 'vitest';
import {
  AGENT_CONFIG_DEFAULTS,
  effectiveAgentConfig,
  validateObject,
  type ValidObject,
} from '../../src/datastore/index.js';
import { planWrites } from '../../src/datastore/write-plan.js';
import type { StoredResource } from '../../src/datastore/index.js';

function valid(o: unknown): ValidObject {
  const r = validateObject(o);
  if (!r.ok) throw new Error(r.detail.message);
  return r.object;
}
const tier = (name: string, order: number, metadata: Record<string, unknown> = {}) =>
  valid({
    apiVersion: 'tortie.io/v1',
    kind: 'Tier',
    metadata: { name, ...metadata },
    spec: { order },
  });
const stored = (
  name: string,
  order: number,
  uid = 'uid-stored',
  resourceVersion = '5',
): StoredResource => ({
  apiVersion: 'tortie.io/v1',
  kind: 'Tier',
  metadata: {
    name,
    uid,
    resourceVersion,
    creationTimestamp: '2024-01-01T00:00:00.000Z',
    labels: {},
    annotations: {},
  },
  spec: { order },
});
const base = { pools: [], now: '2025-01-01T00:00:00.000Z', uids: ['uid-new', 'uid-new-2'] };

describe('planWrites', () => {
  it('a new object gets the call uid and timestamp; an existing one keeps its own', () => {
    const plan = planWrites({
      ...base,
      mode: 'apply',
      objects: [tier('a', 1), tier('b', 2)],
      current: [undefined, stored('b', 1)],
    });
    expect(plan.refusals).toEqual([]);
    expect(
      plan.writes.map((w) => [
        w.action,
        w.resource.metadata.uid,
        w.resource.metadata.creationTimestamp,
      ]),
    ).toEqual([
      ['created', 'uid-new', '2025-01-01T00:00:00.000Z'],
      ['updated', 'uid-stored', '2024-01-01T00:00:00.000Z'],
    ]);
  });

  it('create recognises its own write from an earlier attempt by the uid', () => {
    const plan = planWrites({
      ...base,
      mode: 'create',
      objects: [tier('a', 1)],
      current: [stored('a', 1, 'uid-new')],
    });
    expect(plan.refusals).toEqual([]);
    expect(plan.writes[0]!.action).toBe('created');
  });

  it('an object equal to the stored one is unchanged', () => {
    const plan = planWrites({
      ...base,
      mode: 'apply',
      objects: [tier('a', 1)],
      current: [stored('a', 1)],
    });
    expect(plan.writes[0]!.action).toBe('unchanged');
  });

  it('a stale resourceVersion is a conflict; refusals leave nothing to write', () => {
    const plan = planWrites({
      ...base,
      mode: 'replace',
      objects: [tier('a', 1), tier('b', 2, { resourceVersion: '4' })],
      current: [stored('a', 0), stored('b', 1)],
    });
    expect(plan.writes).toEqual([]);
    expect(plan.refusals.map((r) => [r.kind, r.detail.index, r.detail.path])).toEqual([
      ['conflict', 1, 'metadata.resourceVersion'],
    ]);
  });
});

describe('agent configuration layering', () => {
  it('node over default over built-in defaults', () => {
    expect(
      effectiveAgentConfig({ logLevel: 'warn', metricsEnabled: true }, { logLevel: 'debug' }),
    ).toEqual({
      ...AGENT_CONFIG_DEFAULTS,
      logLevel: 'debug',
      metricsEnabled: true,
    });
  });
});
