/**
 * Loading bpf/xdp_uplink.o and putting it on the node's uplink: the deny list in XDP.
 *
 * Its maps are pinned under the same root as the tc programs' (bpf/lib/obs_maps.h): the
 * counters and the event ring are the tc programs' own, reused through their pins, and
 * tortie_xdp_deny is pinned beside them, so a restarted agent finds the deny list as the
 * previous one left it.
 *
 * Restart without a gap, as for tc: the attachment holds the running program, which
 * keeps dropping from the pinned list while no agent runs. A new agent loads a new
 * program on the same pins and attaches it in the mode the old one runs in, which
 * replaces it in one step (the kernel swaps the program pointer): there is no moment
 * with no program, and none with an empty list.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { native, packageRoot } from '../native/index.js';
import type { BpfMap, BpfObject, BpfProgram, XdpInfo, XdpMode } from '../native/types.js';
import { XDP_MAPS } from '../maps/catalog.js';
import { TypedMap } from '../maps/typed-map.js';
import type { XdpDenyKey, XdpDenyVal } from '../maps/structs.js';
import { inNetns, type NetnsOption } from './attach.js';
import { u32, u64 } from './config.js';
import { describe } from './dataplane.js';
import { ensurePinRoot } from './pins.js';

export const XDP_PROGRAM_NAME = 'tortie_xdp_uplink';

/** linux/if_link.h XDP_FLAGS_*: the mode an attach asks for. */
const XDP_FLAGS_SKB_MODE = 1 << 1;
const XDP_FLAGS_DRV_MODE = 1 << 2;
const MODE_FLAGS = { native: XDP_FLAGS_DRV_MODE, generic: XDP_FLAGS_SKB_MODE } as const;

/** The modes tortie attaches in: the driver's own (native), else the kernel's generic one. */
export type XdpAttachMode = keyof typeof MODE_FLAGS;

export function defaultXdpObjectPath(): string {
  return join(packageRoot(), 'bpf', 'xdp_uplink.o');
}

export interface XdpConfig {
  /** Drop events at all (tortie_cfg_drop_events, as for tc). Default true. */
  readonly dropEvents?: boolean;
  /**
   * At most one drop event per CPU per this many microseconds (0: every drop). Default
   * 1000: a flood's counters stay exact, its events are a sample (bpf/lib/xdp.h).
   */
  readonly eventIntervalUs?: number;
}

export interface XdpLoadOptions {
  readonly pinRoot: string;
  readonly objectPath?: string;
  readonly config?: XdpConfig;
}

export interface XdpDataplane {
  readonly objectPath: string;
  readonly pinRoot: string;
  readonly program: BpfProgram;
  readonly denyMap: BpfMap;
  /** tortie_xdp_deny through its codecs. */
  readonly deny: TypedMap<XdpDenyKey, XdpDenyVal>;
  /**
   * Puts the program on ifindex, replacing what is attached there in one step: in the
   * mode a program runs in already, else native, else generic (a driver without XDP).
   * With allowGeneric false, native only: a generic program found there is taken off
   * first, and an attach the driver refuses throws. Returns the mode it runs in.
   */
  attach(ifindex: number, opts?: NetnsOption & { readonly allowGeneric?: boolean }): XdpAttachMode;
  /** Takes whatever XDP program is attached off ifindex; false when there was none. */
  detach(ifindex: number, opts?: NetnsOption): boolean;
  /** What is attached at ifindex's XDP hook. */
  info(ifindex: number, opts?: NetnsOption): XdpInfo;
  /** Releases the object (an attached program and the pins stay). */
  close(): void;
}

/**
 * The attach order for a hook that currently runs in `current`; without allowGeneric
 * (Felix's genericXDPEnabled false) native only.
 */
export function attachOrder(current: XdpMode, allowGeneric = true): XdpAttachMode[] {
  // Replacing in place is only possible in the mode that runs: the kernel refuses a
  // native program while a generic one is attached, and the other way round.
  if (current === 'native') return ['native'];
  if (current === 'generic') return allowGeneric ? ['generic'] : ['native'];
  return allowGeneric ? ['native', 'generic'] : ['native'];
}

export function loadXdp(options: XdpLoadOptions): XdpDataplane {
  const objectPath = options.objectPath ?? defaultXdpObjectPath();
  if (!existsSync(objectPath)) {
    throw new Error(
      `BPF object ${objectPath} not found: build it with \`make -C bpf\` (or \`npm run build\`)`,
    );
  }
  const interval = options.config?.eventIntervalUs ?? 1000;
  if (!Number.isInteger(interval) || interval < 0) {
    throw new Error(`xdp eventIntervalUs must be a whole number ≥ 0, got ${interval}`);
  }
  const pinRoot = ensurePinRoot(options.pinRoot);
  let obj: BpfObject;
  try {
    obj = native.openObject(objectPath, { pinRoot });
  } catch (e) {
    throw new Error(`opening ${objectPath} failed: ${describe(e)}`, { cause: e });
  }
  let program: BpfProgram;
  let denyMap: BpfMap;
  try {
    obj.setGlobal('tortie_cfg_drop_events', u32(options.config?.dropEvents === false ? 0 : 1));
    obj.setGlobal('tortie_cfg_xdp_event_interval_ns', u64(BigInt(interval) * 1000n));
    obj.load();
    program = obj.program(XDP_PROGRAM_NAME);
    denyMap = obj.map(XDP_MAPS.xdpDeny.name);
  } catch (e) {
    obj.close();
    throw new Error(
      `loading ${objectPath} with maps pinned under ${pinRoot} failed: ${describe(e)}`,
      { cause: e },
    );
  }
  const deny = new TypedMap(denyMap, XDP_MAPS.xdpDeny);
  let closed = false;

  return {
    objectPath,
    pinRoot,
    program,
    denyMap,
    deny,
    attach(ifindex, opts = {}) {
      if (closed) throw new Error(`attach(${ifindex}): the XDP object ${objectPath} is closed`);
      return inNetns(opts.netnsPath, () => {
        const failures: string[] = [];
        const allowGeneric = opts.allowGeneric ?? true;
        let current = native.xdpInfo(ifindex).mode;
        if (current === 'generic' && !allowGeneric) {
          native.xdpDetach(ifindex, XDP_FLAGS_SKB_MODE);
          current = 'none';
        }
        for (const mode of attachOrder(current, allowGeneric)) {
          try {
            native.xdpAttach(ifindex, program.fd, MODE_FLAGS[mode]);
            return mode;
          } catch (e) {
            failures.push(`${mode}: ${(e as Error).message}`);
          }
        }
        throw new Error(
          `attaching tortie's XDP program to ifindex ${ifindex} failed (${failures.join('; ')})`,
        );
      });
    },
    detach(ifindex, opts = {}) {
      return inNetns(opts.netnsPath, () => {
        const info = native.xdpInfo(ifindex);
        if (info.mode === 'none') return false;
        if (info.drvProgId !== 0) native.xdpDetach(ifindex, XDP_FLAGS_DRV_MODE);
        if (info.skbProgId !== 0) native.xdpDetach(ifindex, XDP_FLAGS_SKB_MODE);
        return true;
      });
    },
    info(ifindex, opts = {}) {
      return inNetns(opts.netnsPath, () => native.xdpInfo(ifindex));
    },
    close() {
      if (closed) return;
      closed = true;
      obj.close();
    },
  };
}
