import { describe, expect, it } from 'vitest';
import { newPass } from '../../src/agent/manager.js';
import { ClusterModel } from '../../src/agent/model.js';
import { NAT_RESYNC_MS, NatOutgoingManager } from '../../src/agent/managers/nat-outgoing.js';
import { captureLogger, putPool, softContext, softSnapshot } from '../helpers/softdataplane.js';

function setup() {
  const written: string[][] = [];
  let fail: Error | undefined;
  let now = 1_000_000;
  const m = new NatOutgoingManager(
    softContext(captureLogger().log),
    async (rules) => {
      if (fail) throw fail;
      written.push([...rules]);
      return rules.length === 0 ? undefined : 'plan';
    },
    () => now,
  );
  const model = new ClusterModel();
  return {
    m,
    model,
    written,
    failWith: (e: Error | undefined) => (fail = e),
    advance: (ms: number) => (now += ms),
  };
}

describe('nat-outgoing manager (in memory)', () => {
  it("the pass's settings (FelixConfiguration natOutgoingAddress) change the chain at once", async () => {
    const { m, model, written } = setup();
    putPool(model, 'p', { cidr: '10.0.0.0/16', natOutgoing: true });
    await m.reconcile(newPass(softSnapshot({ model })));
    expect(written.at(-1)!.at(-1)).toContain('-j MASQUERADE');
    await m.reconcile(
      newPass(softSnapshot({ model, settings: { natOutgoingAddress: '192.168.9.9' } })),
    );
    expect(written).toHaveLength(2);
    expect(written.at(-1)!.at(-1)).toContain('-j SNAT --to-source 192.168.9.9');
  });

  it('the chain follows the pools with natOutgoing; read again after the resync interval', async () => {
    const { m, model, written, advance } = setup();
    putPool(model, 'p', { cidr: '10.0.0.0/16', natOutgoing: true });
    await m.reconcile(newPass(softSnapshot({ model })));
    expect(written).toHaveLength(1);
    expect(written[0]!.join('\n')).toContain('10.0.0.0/16');
    expect(m.status().nat).toEqual({ rules: written[0]!.length, error: undefined });
    await m.reconcile(newPass(softSnapshot({ model })));
    expect(written).toHaveLength(1);
    advance(NAT_RESYNC_MS);
    await m.reconcile(newPass(softSnapshot({ model })));
    expect(written).toHaveLength(2);
  });

  it('a failure is shown, counted and retried', async () => {
    const { m, model, failWith } = setup();
    putPool(model, 'p', { cidr: '10.0.0.0/16', natOutgoing: true });
    failWith(new Error('iptables-restore: line 2 failed'));
    expect(await m.reconcile(newPass(softSnapshot({ model })))).toEqual({ retryMs: 2000 });
    expect(m.status().nat?.error).toBe('iptables-restore: line 2 failed');
    const out = { families: [] as never[], histograms: [], part: () => undefined };
    m.metrics(out as never);
    expect(out.families).toEqual([
      expect.objectContaining({ name: 'tortie_agent_nat_errors_total', samples: [{ value: 1 }] }),
    ]);
  });

  it('no iptables and no pool wants NAT: nothing to do, no retry', async () => {
    const { m, model, failWith } = setup();
    failWith(new Error('spawn iptables-save ENOENT'));
    expect(await m.reconcile(newPass(softSnapshot({ model })))).toEqual({});
    expect(m.status().nat?.error).toBeUndefined();
  });
});
