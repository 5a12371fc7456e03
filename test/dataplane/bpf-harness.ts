/**
 * What the bpf-*.test.ts files share: the real bpf/tc_policy.o loaded with a per-run
 * pin root (/sys/fs/bpf/tortie-t<6 hex>), its programs driven with BPF_PROG_TEST_RUN
 * on ifindex 1 (loopback: the "endpoint under test", or the uplink), map seeding in
 * the compiler's format, counters and ring-buffer events read back.
 *
 * Root only. Call close() in afterAll: it releases the object and removes the pins.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import {
  type Dataplane,
  type DataplaneConfig,
  loadDataplane,
  removePins,
} from '../../src/loader/index.js';
import {
  Action,
  eventCodec,
  ipToU32,
  l4Value,
  polAddrSlot,
  polL4Slot,
  RouteType,
  type EventRecord,
  type MetricsVal,
} from '../../src/maps/index.js';
import { native, packageRoot } from '../../src/native/index.js';
import type { BpfMap, RingBuffer } from '../../src/native/types.js';
import { newRunId, runPrefix } from '../helpers/netns.js';

export const LOOPBACK = 1;
/** The pod-veth programs (what the malformed-input table drives). */
export type ProgramRole = 'fromPod' | 'toPod';
/** Every program of the object. */
export type AnyProgramRole = ProgramRole | 'fromUplink' | 'toUplink';

export interface RunResult {
  retval: number;
  data: Buffer;
}

/** Builds bpf/tc_policy.o when it is missing or older than its sources (make decides). */
export function buildObject(): void {
  execFileSync('make', ['-C', join(packageRoot(), 'bpf'), '--no-print-directory', '-s'], {
    stdio: 'inherit',
  });
}

export class BpfHarness {
  readonly runId = newRunId();
  readonly pinRoot = `/sys/fs/bpf/${runPrefix(this.runId)}`;
  readonly dp: Dataplane;
  private readonly ring: RingBuffer;
  private queued: EventRecord[] = [];

  /**
   * options.objectPath: another object with the same programs and maps (a test
   * fixture built from tc_policy.c); else TORTIE_TEST_BPF_OBJECT, which runs the suite
   * against another build (e.g. a mutant); else bpf/tc_policy.o, built first.
   */
  constructor(config: DataplaneConfig = {}, options: { objectPath?: string } = {}) {
    const objectPath = options.objectPath ?? process.env.TORTIE_TEST_BPF_OBJECT;
    if (objectPath === undefined) buildObject();
    this.dp = loadDataplane({
      pinRoot: this.pinRoot,
      config,
      ...(objectPath ? { objectPath } : {}),
    });
    this.ring = native.ringBuffer(this.dp.maps.events.fd, (rec) =>
      this.queued.push(eventCodec.decode(rec)),
    );
  }

  run(role: AnyProgramRole, data: Buffer, ifindex = LOOPBACK): RunResult {
    const { retval, data: out } = native.testRun(this.dp.programs[role].fd, {
      data,
      ctx: { ifindex },
    });
    return { retval, data: out };
  }

  /** run() with more of the __sk_buff set (ingressIfindex: a forwarded packet). */
  runWith(
    role: AnyProgramRole,
    data: Buffer,
    ctx: { ingressIfindex?: number; ifindex?: number },
  ): number {
    return native.testRun(this.dp.programs[role].fd, {
      data,
      ctx: { ifindex: ctx.ifindex ?? LOOPBACK, ingressIfindex: ctx.ingressIfindex ?? 0 },
    }).retval;
  }

  /** Every event emitted since the last call. */
  events(): EventRecord[] {
    this.ring.consume();
    const out = this.queued;
    this.queued = [];
    return out;
  }

  /** Packets/bytes counted for (ep, reason, dir), summed over CPUs; zeros when absent. */
  metric(epId: number, reason: number, dir: number): MetricsVal {
    return (
      this.dp.views.metrics.lookupSum({ ep_id: epId, reason, dir }) ?? { packets: 0n, bytes: 0n }
    );
  }

  /** Every (ep, reason, dir) with a non-zero count, e.g. "7:DROP_POLICY:0". */
  metricKeys(): string[] {
    return this.dp.views.metrics
      .entriesSum()
      .filter(([, v]) => v.packets > 0n)
      .map(([k]) => `${k.ep_id}:${k.reason}:${k.dir}`);
  }

  /** Empties every map and the event queue: each test starts from a blank node. */
  reset(): void {
    const m = this.dp.maps;
    for (const map of [
      m.ifaces,
      m.routes,
      m.polIp32,
      m.polAddr,
      m.polPort,
      m.polL4,
      m.polDflt,
      m.polSport,
      m.ct,
      m.ctNew,
      m.ctBudget,
      m.frags,
      m.metrics,
      m.nodes,
    ])
      clearMap(map);
    this.dp.views.nodeCfg.update(0, { underlay_ip: 0, uplink_ifindex: 0 });
    this.events();
  }

  // ---- seeding, in the shapes the control plane writes -----------------------------

  endpoint(
    ifindex: number,
    ep: { ip: string; id: number; ingressSet?: number; egressSet?: number; rev?: number },
  ): void {
    this.dp.views.ifaces.update(ifindex, {
      ip: ipToU32(ep.ip),
      id: ep.id,
      ingress_set: ep.ingressSet ?? 0,
      egress_set: ep.egressSet ?? 0,
      policy_rev: ep.rev ?? 1,
      flags: 0,
    });
  }

  localRoute(ip: string, ifindex: number): void {
    this.dp.views.routes.update(
      { prefixlen: 32, addr: ipToU32(ip) },
      { type: RouteType.LOCAL_EP, ifindex, next_hop: 0, flags: 0 },
    );
  }

  /** Stage 1 of set `setId`: each CIDR ("a.b.c.d/n") → class, in the map of its length. */
  policySet(setId: number, entries: readonly { cidr: string; classId: number }[]): void {
    const v = this.dp.views;
    for (const { cidr, classId } of entries) {
      const [ip, bits] = cidr.split('/');
      const slot = polAddrSlot(setId, ipToU32(ip!), Number(bits ?? 32));
      if (slot.map === 'polIp32') v.polIp32.update(slot.key, { class_id: classId });
      else v.polAddr.update(slot.key, { class_id: classId });
    }
  }

  /**
   * Stage 2 of class `classId`, each entry in the map of its length. An entry without
   * proto is the class default (/0); with proto and no port it covers the protocol;
   * with both, one exact port.
   */
  policyClass(
    classId: number,
    entries: readonly {
      proto?: number;
      port?: number;
      action: 'allow' | 'deny';
      ruleId: number;
      log?: boolean;
    }[],
  ): void {
    for (const e of entries) {
      const bits = e.proto === undefined ? 0 : e.port === undefined ? 8 : 24;
      const slot = polL4Slot(classId, l4Value(e.proto ?? 0, e.port ?? 0), bits);
      const verdict = {
        action: e.action === 'allow' ? Action.ALLOW : Action.DENY,
        flags: e.log ? 1 : 0,
        reserved: 0,
        rule_id: e.ruleId,
      };
      const v = this.dp.views;
      if (slot.map === 'polPort') v.polPort.update(slot.key, verdict);
      else if (slot.map === 'polL4') v.polL4.update(slot.key, verdict);
      else v.polDflt.update(slot.key, verdict);
    }
  }

  close(): void {
    try {
      this.ring.close();
      this.dp.close();
    } finally {
      removePins(this.pinRoot);
    }
  }

  /** True when the pin root is gone (after close). */
  pinsRemoved(): boolean {
    return !existsSync(this.pinRoot);
  }
}

export function clearMap(map: BpfMap): void {
  for (const key of map.entries().keys) map.delete(key);
}
