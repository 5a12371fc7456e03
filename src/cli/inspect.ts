/**
 * Reading a running dataplane from its pins, without loading anything: counters and the
 * live event stream.
 */
import { join } from 'node:path';
import { MAPS, EVENTS_MAP_NAME } from '../maps/catalog.js';
import { dirName, isDrop, reasonName } from '../maps/enums.js';
import { u32ToIp } from '../maps/addr.js';
import { eventCodec } from '../maps/structs.js';
import { PerCpuMap } from '../maps/typed-map.js';
import { native } from '../native/index.js';

function openPinned(pinRoot: string, name: string) {
  try {
    return native.openPinnedMap(join(pinRoot, name));
  } catch (e) {
    throw new Error(
      `cannot open ${join(pinRoot, name)} (is a tortie dataplane pinned at ${pinRoot}?): ${(e as Error).message}`,
    );
  }
}

export function readCounters(pinRoot: string) {
  const metrics = new PerCpuMap(openPinned(pinRoot, MAPS.metrics.name), MAPS.metrics);
  return metrics
    .entriesSum()
    .map(([k, v]) => ({
      epId: k.ep_id,
      dir: dirName(k.dir),
      reason: reasonName(k.reason),
      dropped: isDrop(k.reason),
      packets: BigInt(v.packets),
      bytes: BigInt(v.bytes),
    }))
    .sort((a, b) => a.epId - b.epId || a.reason.localeCompare(b.reason));
}

const PROTO_NAMES: Record<number, string> = {
  1: 'icmp',
  6: 'tcp',
  17: 'udp',
  132: 'sctp',
  136: 'udplite',
};

export async function monitor(pinRoot: string, json: boolean): Promise<void> {
  const events = openPinned(pinRoot, EVENTS_MAP_NAME);
  const rb = native.ringBuffer(
    events.fd,
    (rec) => {
      const e = eventCodec.decode(rec);
      const row = {
        type:
          ({ 1: 'drop', 2: 'verdict', 3: 'log' } as Record<number, string>)[e.type] ??
          String(e.type),
        ep: e.ep_id,
        dir: dirName(e.dir),
        reason: reasonName(e.reason),
        proto: PROTO_NAMES[e.proto] ?? String(e.proto),
        src: `${u32ToIp(e.saddr)}:${e.sport}`,
        dst: `${u32ToIp(e.daddr)}:${e.dport}`,
        rule: e.rule_id,
      };
      console.log(
        json
          ? JSON.stringify(row)
          : `${row.type.padEnd(8)} ep ${String(row.ep).padEnd(5)} ${row.dir.padEnd(9)} ${row.proto.padEnd(5)} ${row.src.padEnd(21)} -> ${row.dst.padEnd(21)} ${row.reason}${row.rule ? ` (rule ${row.rule})` : ''}`,
      );
    },
    { poll: true },
  );
  if (!json)
    console.error(`streaming events from ${join(pinRoot, EVENTS_MAP_NAME)}; Ctrl-C to stop`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  rb.close();
}
