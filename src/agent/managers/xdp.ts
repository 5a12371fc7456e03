/**
 * The uplink's deny list in XDP (BPF mode): the doNotTrack Deny rules of the uplink's
 * host endpoint that match on the source alone (src/policy/xdp.ts) become prefixes in
 * tortie_xdp_deny, and bpf/xdp_uplink.o runs on the uplink while the list has any.
 *
 * Written as a difference against what the map holds: new and changed prefixes first,
 * then the ones that went. A prefix that stays is never taken out, not even for a
 * moment, and a restarted agent starts from what the previous one pinned (read once,
 * here), so the list in force through a restart is the old one until the first
 * reconcile brings the new one. The program is attached after the entries are written,
 * and a restart's attach replaces the running program in one step (src/loader/xdp.ts).
 *
 * A list over the map's capacity is refused whole (status error, nothing written):
 * the previous list stays in force. Failures are reported and retried; they do not hold
 * back policy.
 *
 * FelixConfiguration, live: `xdpEnabled: false` takes the program off the uplink (the
 * list is still kept, so turning it back on is one attach); `genericXDPEnabled`
 * (Felix's default false) allows the kernel's generic mode where the driver has no
 * native XDP; without it such an uplink gets no program. Either way the denies are then
 * not dropped in XDP, and the tc uplink does not enforce doNotTrack rules (yet): status
 * says so (notInXdp) rather than pretend.
 */
import type { Logger } from 'pino';
import type { XdpAttachMode, XdpDataplane } from '../../loader/index.js';
import { parseCidr, u32ToIp } from '../../maps/addr.js';
import type { XdpMode } from '../../native/types.js';
import type { Policy } from '../../policy/model.js';
import { parseResource } from '../../policy/resources.js';
import {
  compileXdpDenyList,
  XDP_RULE_ID_BASE,
  type XdpDenyList,
  type XdpHostEndpoint,
} from '../../policy/xdp.js';
import type { ClusterModel } from '../model.js';
import type {
  Manager,
  ManagerContext,
  ManagerResult,
  MetricsOut,
  Pass,
  StatusPart,
  XdpStatus,
} from '../manager.js';

/** tortie_xdp_deny and the XDP hook of the uplink (NodeDataplane's XDP half). */
export interface XdpPort {
  /** The entries the map holds: prefix ("a.b.c.d/n") → rule id. */
  entries(): Map<string, number>;
  write(cidr: string, ruleId: number): void;
  remove(cidr: string): void;
  readonly capacity: number;
  /** Native, else (allowGeneric) generic; throws when neither is to be had. */
  attach(ifindex: number, allowGeneric: boolean): XdpAttachMode;
  detach(ifindex: number): boolean;
  mode(ifindex: number): XdpMode;
}

const RETRY_MS = 2000;

export class XdpManager implements Manager {
  readonly name = 'xdp';
  private readonly log: Logger;
  /** What the map holds, as this agent wrote it (or adopted it). */
  private readonly written: Map<string, number>;
  private readonly adopted: number;
  private list: XdpDenyList | undefined;
  /** Where the program runs, as attached by this agent. */
  private attached: { ifindex: number; name: string; mode: XdpAttachMode } | undefined;
  private error: string | undefined;
  /** Why the list is not in XDP now, though it has entries (settings, no native XDP). */
  private notInXdp: string | undefined;
  /** A native-only attach the driver refused: not retried until the settings or uplink change. */
  private refused: { ifindex: number; message: string } | undefined;
  /** The hook was found empty (or emptied) with XDP disabled: not looked at again. */
  private offChecked: number | undefined;
  private readonly untrackedCache = new WeakMap<object, Policy | null>();

  constructor(
    ctx: ManagerContext,
    private readonly port: XdpPort,
    private readonly node: string,
  ) {
    this.log = ctx.log;
    this.written = port.entries();
    this.adopted = this.written.size;
  }

  /** Entries adopted from a previous agent, for the start line. */
  adoptedEntries(): number {
    return this.adopted;
  }

  reconcile(pass: Pass): ManagerResult {
    const uplink = pass.uplink;
    if (uplink === undefined) return {};
    const name = [...pass.snapshot.links].find(([, i]) => i === uplink.ifindex)?.[0];
    if (name === undefined) return {};
    const world = pass.snapshot.world;
    const list = compileXdpDenyList({
      node: this.node,
      uplink: { name, ip: uplink.ip },
      hostEndpoints: hostEndpoints(pass.snapshot.model),
      untracked: this.untracked(pass.snapshot.model),
      tiers: world.tiers,
      networkSets: world.networkSets,
      endpoints: world.endpoints,
    });
    this.list = list;
    if (list.entries.size > this.port.capacity) {
      this.fail(
        `the deny list has ${list.entries.size} prefixes, tortie_xdp_deny holds ${this.port.capacity}: nothing written, the previous list stays in force`,
      );
      return {};
    }
    const settings = pass.snapshot.settings;
    const enabled = settings?.xdpEnabled ?? true;
    const allowGeneric = settings?.genericXdpEnabled ?? false;
    try {
      const { writes, deletes } = this.sync(list.entries);
      this.placeProgram(list.entries.size > 0, uplink.ifindex, name, enabled, allowGeneric);
      if (writes + deletes > 0)
        this.log.info(
          { entries: list.entries.size, writes, deletes, mode: this.attached?.mode ?? 'none' },
          'xdp deny list programmed',
        );
      this.error = undefined;
      return { writes, deletes };
    } catch (e) {
      this.fail((e as Error).message);
      return { retryMs: RETRY_MS };
    }
  }

  private fail(msg: string): void {
    if (msg !== this.error) this.log.error({ err: msg }, 'cannot program the xdp deny list');
    this.error = msg;
  }

  /** New and changed entries first, then the ones that went. */
  private sync(want: ReadonlyMap<string, number>): { writes: number; deletes: number } {
    let writes = 0;
    let deletes = 0;
    for (const [cidr, id] of want) {
      if (this.written.get(cidr) === id) continue;
      this.port.write(cidr, id);
      this.written.set(cidr, id);
      writes++;
    }
    for (const cidr of [...this.written.keys()]) {
      if (want.has(cidr)) continue;
      this.port.remove(cidr);
      this.written.delete(cidr);
      deletes++;
    }
    return { writes, deletes };
  }

  private placeProgram(
    listed: boolean,
    ifindex: number,
    name: string,
    enabled: boolean,
    allowGeneric: boolean,
  ): void {
    const here = this.attached;
    if (here !== undefined && here.ifindex !== ifindex) {
      // The uplink changed: off the old interface (which may be gone).
      try {
        this.port.detach(here.ifindex);
      } catch {
        // gone with its interface
      }
      this.attached = undefined;
    }
    if (this.refused !== undefined && (this.refused.ifindex !== ifindex || allowGeneric))
      this.refused = undefined;
    this.notInXdp = undefined;
    if (listed && !enabled)
      this.notInXdp =
        'xdpEnabled is false (FelixConfiguration): no XDP program, and the tc uplink does not enforce doNotTrack denies, so these sources are not dropped';
    if (listed && enabled) {
      // Attached once per agent even if a previous agent's program runs: the swap puts
      // this agent's program (its configuration) in place without a gap. Again when a
      // generic program is no longer allowed.
      const stale = this.attached?.mode === 'generic' && !allowGeneric;
      if ((this.attached === undefined || stale) && this.refused === undefined) {
        try {
          const mode = this.port.attach(ifindex, allowGeneric);
          this.attached = { ifindex, name, mode };
          this.offChecked = undefined;
          this.log.info({ uplink: name, mode }, 'xdp program attached to the uplink');
        } catch (e) {
          if (allowGeneric) throw e;
          // Native only, and the driver has none: not an error to retry, a setting.
          this.attached = undefined;
          this.refused = { ifindex, message: (e as Error).message };
          this.log.warn(
            { uplink: name, err: this.refused.message },
            'no native XDP on the uplink and genericXDPEnabled is false: the deny list is not in XDP',
          );
        }
      }
      if (this.refused !== undefined)
        this.notInXdp = `the uplink's driver has no native XDP and genericXDPEnabled is false (FelixConfiguration): no XDP program, and the tc uplink does not enforce doNotTrack denies, so these sources are not dropped (${this.refused.message})`;
      return;
    }
    if (this.attached !== undefined || this.adopted > 0) {
      // Nothing to drop, or XDP disabled: off the hook, as Felix does (an idle program
      // still costs a lookup per frame, and a driver may reset its rings on every attach).
      if (this.port.detach(ifindex))
        this.log.info(
          { uplink: name },
          enabled
            ? 'xdp program detached (empty deny list)'
            : 'xdp program detached (xdpEnabled false)',
        );
      this.attached = undefined;
      this.offChecked = ifindex;
      return;
    }
    if (!enabled && this.offChecked !== ifindex) {
      // A program this agent did not attach (a previous agent's, with an empty list).
      if (this.port.mode(ifindex) !== 'none') this.port.detach(ifindex);
      this.offChecked = ifindex;
    }
  }

  /** The doNotTrack GlobalNetworkPolicies, converted once per stored version. */
  private untracked(model: ClusterModel): Policy[] {
    const out: Policy[] = [];
    for (const stored of model.list('GlobalNetworkPolicy')) {
      let policy = this.untrackedCache.get(stored);
      if (policy === undefined) {
        policy = null;
        try {
          const r = parseResource({
            apiVersion: stored.apiVersion,
            kind: stored.kind,
            metadata: {
              name: stored.metadata.name,
              ...(stored.metadata.labels === undefined ? {} : { labels: stored.metadata.labels }),
            },
            spec: stored.spec,
          });
          if (r.kind === 'GlobalNetworkPolicy' && r.hostEndpointsOnly === 'doNotTrack')
            policy = r.policy;
        } catch {
          // buildWorld reports resources that do not convert
        }
        this.untrackedCache.set(stored, policy);
      }
      if (policy !== null) out.push(policy);
    }
    return out;
  }

  status(): StatusPart {
    const xdp: XdpStatus = {
      mode: this.attached?.mode ?? 'none',
      ...(this.attached === undefined ? {} : { interface: this.attached.name }),
      ...(this.list?.hostEndpoint === undefined ? {} : { hostEndpoint: this.list.hostEndpoint }),
      entries: this.written.size,
      rules: this.list?.rules.length ?? 0,
      ...(this.list?.stoppedAt === undefined ? {} : { notAccelerated: this.list.stoppedAt }),
      ...(this.notInXdp === undefined ? {} : { notInXdp: this.notInXdp }),
      ...(this.error === undefined ? {} : { error: this.error }),
    };
    return { xdp };
  }

  /** Rule id → rule ref for the XDP rules (drop events name them). */
  rules(): ReadonlyMap<number, string> {
    return new Map((this.list?.rules ?? []).map((ref, i) => [XDP_RULE_ID_BASE + i, ref]));
  }

  metrics(out: MetricsOut): void {
    out.families.push({
      name: 'tortie_agent_xdp_deny_entries',
      help: "Source prefixes in the uplink's XDP deny list (tortie_xdp_deny).",
      type: 'gauge',
      samples: [{ labels: {}, value: this.written.size }],
    });
    out.families.push({
      name: 'tortie_agent_xdp_attached',
      help: "1 when the deny list's XDP program runs on the uplink, by mode (native, generic).",
      type: 'gauge',
      samples: (['native', 'generic'] as const).map((mode) => ({
        labels: { mode },
        value: this.attached?.mode === mode ? 1 : 0,
      })),
    });
  }

  stop(): void {}
}

/** The HostEndpoints of the store, as the deny list needs them. */
export function hostEndpoints(model: ClusterModel): XdpHostEndpoint[] {
  return model.list('HostEndpoint').map((h) => ({
    name: h.metadata.name,
    node: h.spec.node,
    ...(h.spec.interfaceName === undefined ? {} : { interfaceName: h.spec.interfaceName }),
    expectedIPs: h.spec.expectedIPs ?? [],
    labels: h.metadata.labels ?? {},
  }));
}

/** A prefix in the map's key form; throws on anything but an IPv4 prefix. */
export function denyKey(cidr: string): { prefixlen: number; addr: number } {
  const { addr, bits } = parseCidr(cidr);
  return { prefixlen: bits, addr };
}

/** The port over the loaded XDP object, acting in the node's namespace. */
export function xdpPort(xdp: XdpDataplane, netnsPath: string | undefined): XdpPort {
  const opts = netnsPath === undefined ? {} : { netnsPath };
  return {
    entries: () =>
      new Map(
        xdp.deny
          .entries()
          .map(([k, v]) => [`${u32ToIp(k.addr)}/${k.prefixlen}`, v.rule_id] as const),
      ),
    write: (cidr, ruleId) => xdp.deny.update(denyKey(cidr), { rule_id: ruleId }),
    remove: (cidr) => {
      xdp.deny.delete(denyKey(cidr));
    },
    capacity: xdp.denyMap.info().maxEntries,
    attach: (ifindex, allowGeneric) => xdp.attach(ifindex, { ...opts, allowGeneric }),
    detach: (ifindex) => xdp.detach(ifindex, opts),
    mode: (ifindex) => xdp.info(ifindex, opts).mode,
  };
}
