import { describe, expect, it } from 'vitest';
import { newPass } from '../../src/agent/manager.js';
import {
  IptablesPolicyManager,
  type IptablesPort,
} from '../../src/agent/managers/iptables-policy.js';
import {
  endpointChainName,
  type ApplyReport,
  type IptablesEndpoint,
  type KernelState,
  type RenderOptions,
} from '../../src/iptables/index.js';
import type { World } from '../../src/policy/model.js';
import { captureLogger, softContext, softLocal, softSnapshot } from '../helpers/softdataplane.js';

/** IptablesDataplane in memory: every endpoint's chains are written when first seen. */
class SoftIptables implements IptablesPort {
  chains = new Map<string, string[]>();
  sets = new Map<string, never>();
  fail: Error | undefined;
  calls: { locals: readonly IptablesEndpoint[]; extra: Partial<RenderOptions> }[] = [];
  rewrite = new Set<string>();
  async program(
    _world: World,
    locals: readonly IptablesEndpoint[],
    extra: Partial<RenderOptions>,
  ): Promise<ApplyReport> {
    if (this.fail) throw this.fail;
    this.calls.push({ locals, extra });
    const written: string[] = [];
    for (const l of locals) {
      for (const dir of ['ingress', 'egress'] as const) {
        const name = endpointChainName(l.iface, dir);
        if (!this.chains.has(name) || this.rewrite.has(l.iface)) {
          this.chains.set(name, []);
          written.push(name);
        }
      }
    }
    this.rewrite.clear();
    return {
      writtenChains: written,
      deletedChains: [],
      writtenSets: [],
      deletedSets: [],
      iptablesInput: '',
      ms: 1,
    };
  }
  current(): KernelState {
    return { chains: this.chains, hooks: new Set(), sets: this.sets };
  }
}

describe('iptables-policy manager (in memory)', () => {
  it('programs the resolved endpoints; each keeps its policyRev until its own chains change', async () => {
    const ipt = new SoftIptables();
    const m = new IptablesPolicyManager(softContext(captureLogger().log), ipt);
    const a = softLocal('a', '10.0.0.1', 10);
    const b = softLocal('b', '10.0.0.2', 11);
    const routes = {
      self: 'node-a',
      nodes: [
        { name: 'node-a', address: '192.0.2.1/24', alive: true },
        { name: 'node-b', address: '192.0.2.2/24', alive: true },
      ],
      blocks: [],
      pools: [],
    };
    const pass = newPass(softSnapshot({ locals: [a], routes }));
    expect(await m.reconcile(pass)).toEqual({ writes: 2 });
    expect(pass.programmed).toEqual([a]);
    expect(m.endpointRev(a)).toBe(1);
    expect(ipt.calls[0]!.extra.vxlanSources).toEqual(['192.0.2.2']);

    await m.reconcile(newPass(softSnapshot({ locals: [a, b], routes })));
    expect(m.endpointRev(a)).toBe(1);
    expect(m.endpointRev(b)).toBe(2);
    ipt.rewrite.add(a.interfaceName);
    await m.reconcile(newPass(softSnapshot({ locals: [a, b], routes })));
    expect(m.endpointRev(a)).toBe(3);
    expect(m.endpointRev(b)).toBe(2);
  });

  it('a failed write fails the reconcile and is counted', async () => {
    const ipt = new SoftIptables();
    const m = new IptablesPolicyManager(softContext(captureLogger().log), ipt);
    ipt.fail = new Error('iptables-restore: line 7 failed');
    const pass = newPass(softSnapshot({ locals: [softLocal('a', '10.0.0.1', 10)] }));
    await expect(m.reconcile(pass)).rejects.toThrow('line 7 failed');
    expect(pass.programmed).toEqual([]);
    const out = {
      families: [] as { name: string; samples: unknown[] }[],
      histograms: [] as unknown[],
      part: () => undefined,
    };
    m.metrics(out as never);
    expect(out.families.find((f) => f.name === 'tortie_iptables_errors_total')?.samples).toEqual([
      { value: 1 },
    ]);
    expect(out.families.find((f) => f.name === 'tortie_dataplane_packets_total')?.samples).toEqual(
      [],
    );
  });

  it('adopts what is there at start', () => {
    const ipt = new SoftIptables();
    ipt.chains.set('tortie-FORWARD', []);
    const m = new IptablesPolicyManager(softContext(captureLogger().log), ipt);
    expect(m.adopted()).toEqual({ chains: 1, sets: 0 });
  });
});
