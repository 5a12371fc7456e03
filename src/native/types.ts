/**
 * The native binding's surface: a thin layer over the system libbpf (native/*.cc).
 * It knows about objects, programs, maps, links and packets — never about pods or
 * policy. Every failure throws a NativeError.
 */

/** An Error from the binding: `code` is the errno name (e.g. "ENOENT"), `errno` its number. */
export interface NativeError extends Error {
  code: string;
  errno: number;
  /** The last lines libbpf logged during the failing call (verifier log excerpt etc.). */
  libbpfLog?: string;
}

export type TcDirection = 'ingress' | 'egress';

export interface OpenOptions {
  /**
   * Pin every map with a non-internal name (not .rodata/.bss/.data/.maps) at
   * `${pinRoot}/${mapName}`. A map already pinned there with a compatible definition is
   * adopted (its contents kept); an incompatible one fails the load.
   */
  pinRoot?: string;
}

export interface MapInfo {
  name: string;
  type: number; // BPF_MAP_TYPE_*
  typeName: string; // "hash", "lpm_trie", "percpu_hash", "lru_hash", "ringbuf", "array", ...
  keySize: number;
  valueSize: number; // per CPU for per-CPU maps
  maxEntries: number;
  flags: number;
  id: number;
  btfKeyTypeId: number;
  btfValueTypeId: number;
}

export interface BpfMap {
  readonly fd: number;
  info(): MapInfo;
  /** Per-CPU maps: the value is `possibleCpus * roundup(valueSize, 8)` bytes. */
  lookup(key: Buffer): Buffer | null;
  /** flags: 0 BPF_ANY, 1 BPF_NOEXIST, 2 BPF_EXIST. */
  update(key: Buffer, value: Buffer, flags?: number): void;
  /** Returns false when the key was absent. */
  delete(key: Buffer): boolean;
  /** keys and values concatenated; count = keys.length / keySize. Returns entries written. */
  updateBatch(keys: Buffer, values: Buffer, flags?: number): number;
  /** Deletes each key; absent keys are skipped. Returns entries deleted. */
  deleteBatch(keys: Buffer): number;
  /** Every entry, in map order. */
  entries(): { keys: Buffer[]; values: Buffer[] };
  /**
   * How many entries the map holds, none copied to JavaScript (batch lookup for the hash
   * family, else a key walk). A map that changes meanwhile gives a sample, not a snapshot.
   */
  count(): number;
  /** Pin this map at `path`. */
  pin(path: string): void;
  close(): void;
}

export interface BpfProgram {
  readonly name: string; // function name
  readonly section: string;
  readonly fd: number;
  pin(path: string): void;
  /** Release the program's fd (attachments made with it stay). */
  close(): void;
}

export interface TestRunOptions {
  data: Buffer;
  /** Default 1. */
  repeat?: number;
  /** Room for the output packet; default data.length + 256. */
  dataSizeOut?: number;
  /** tc programs: the __sk_buff fields to seed (ifindex selects the device). */
  ctx?: { ifindex?: number; mark?: number; ingressIfindex?: number };
}

export interface TestRunResult {
  retval: number;
  data: Buffer;
  /** Average ns per run, as the kernel measured it. */
  durationNs: number;
}

export interface BpfObject {
  readonly path: string;
  /**
   * Set a `volatile const` (.rodata) or global variable before load(): `name` is the
   * variable's name, `value` its bytes (exact size). Throws if unknown or loaded.
   */
  setGlobal(name: string, value: Buffer): void;
  load(): void;
  program(name: string): BpfProgram;
  programs(): BpfProgram[];
  map(name: string): BpfMap;
  maps(): BpfMap[];
  close(): void;
}

export interface TcAttachOptions {
  /** Default 1. */
  priority?: number;
  /** Default 1. */
  handle?: number;
  /** Replace a program already attached at (priority, handle). Default true. */
  replace?: boolean;
}

export interface TcAttachment {
  ifindex: number;
  direction: TcDirection;
  priority: number;
  handle: number;
  progId: number;
}

export interface RingBuffer {
  /** Drain what is queued now, synchronously; returns the number of records delivered. */
  consume(): number;
  /** Stop the background poller (if started) and free the buffer. */
  close(): void;
}

export interface BtfMember {
  name: string;
  offset: number; // bytes
  size: number; // bytes
}

export interface BtfStruct {
  name: string;
  size: number;
  members: BtfMember[];
}

export interface NativeBinding {
  openObject(path: string, options?: OpenOptions): BpfObject;
  /** Open a pinned map (bpf_obj_get). */
  openPinnedMap(path: string): BpfMap;
  /** Open a pinned program; returns its fd wrapper. */
  openPinnedProgram(path: string): BpfProgram;
  /** Creates the clsact qdisc when needed. Runs in the calling thread's network namespace. */
  tcAttach(
    ifindex: number,
    direction: TcDirection,
    progFd: number,
    opts?: TcAttachOptions,
  ): TcAttachment;
  /** Returns false when nothing was attached there. */
  tcDetach(
    ifindex: number,
    direction: TcDirection,
    opts?: { priority?: number; handle?: number },
  ): boolean;
  /** What is attached at (priority, handle), or null. */
  tcQuery(
    ifindex: number,
    direction: TcDirection,
    opts?: { priority?: number; handle?: number },
  ): TcAttachment | null;
  /** flags: XDP_FLAGS_* (e.g. 2 = SKB mode, 4 = DRV mode). */
  xdpAttach(ifindex: number, progFd: number, flags?: number): void;
  xdpDetach(ifindex: number, flags?: number): void;
  /** The attached XDP program id, or 0. */
  xdpQuery(ifindex: number, flags?: number): number;
  /** What sits at the device's XDP hook and in which mode (bpf_xdp_query). */
  xdpInfo(ifindex: number): XdpInfo;
  testRun(progFd: number, opts: TestRunOptions): TestRunResult;
  /**
   * Records are delivered to `onRecord` on the JS thread. With `poll: true` a
   * background thread waits on the buffer (epoll) and wakes the event loop; without it
   * the caller drains with consume().
   */
  ringBuffer(
    mapFd: number,
    onRecord: (record: Buffer) => void,
    opts?: { poll?: boolean },
  ): RingBuffer;
  /** Structs (named, with members) from an ELF object's or a loaded object's BTF. */
  btfStructs(objectPath: string): BtfStruct[];
  /** Enter the network namespace at `path` on the calling (main) thread; returns an fd of the previous one for restoreNetns(fd). */
  enterNetns(path: string): number;
  /** Return to the namespace held by `fd` (from enterNetns) and close it. */
  restoreNetns(fd: number): void;
  /**
   * A pod's network in one call, through rtnetlink (native/netlink.cc): the veth pair
   * (peer straight into `podNetns`), host end up with `hostMac`, no IPv6 address, the
   * /32 route and proxy ARP; pod end with `ip`/32, lo up, routes via `gateway`. Throws
   * an errno error with `step` naming what failed; partial work is the caller's to undo.
   * Runs on a worker thread (the event loop stays free meanwhile).
   */
  podNetworkCreate(options: {
    hostNetns?: string;
    podNetns: string;
    hostIfName: string;
    podIfName: string;
    hostMac: string;
    ip: string;
    gateway: string;
    mtu?: number;
    /** tortie_from_pod / tortie_to_pod: attached to the host end before it is up (both or neither). */
    fromPodFd?: number;
    toPodFd?: number;
  }): Promise<{ hostIfindex: number; podIfindex: number; podMac: string }>;
  /**
   * Deletes the link `name` in the namespace at `netns` (undefined: the caller's), on a
   * worker thread (the kernel's unregister is slow); resolves false if it was absent.
   */
  linkDelete(netns: string | undefined, name: string): Promise<boolean>;
  /**
   * Adds (idempotent) or deletes (absent is fine) `pref P iif X prohibit` for each of
   * `iifs` and `pref P to D/32 prohibit` for each of `dsts`, in the namespace at `netns`.
   */
  prohibitRules(
    netns: string | undefined,
    add: boolean,
    pref: number,
    iifs: readonly string[],
    dsts: readonly string[],
  ): void;
  /** Every link of the namespace at `netns` (undefined: the caller's), by rtnetlink dump. */
  linkDump(
    netns: string | undefined,
  ): Array<{ name: string; ifindex: number; up: boolean; mtu: number }>;
  /** Every IPv4 address of the namespace (scope: the kernel's number, 0 global, 254 host). */
  addressDump(
    netns: string | undefined,
  ): Array<{ ifindex: number; address: string; prefixlen: number; scope: number }>;
  /** The IPv4 routes of the main table with protocol `proto` (dst absent: the default route). */
  routeDump(
    netns: string | undefined,
    proto: number,
  ): Array<{
    dst?: string;
    prefixlen: number;
    gateway?: string;
    oif?: number;
    mtu?: number;
    prefsrc?: string;
  }>;
  /** Number of possible CPUs (per-CPU map value layout). */
  possibleCpus(): number;
  /** libbpf version string, e.g. "1.1". */
  libbpfVersion(): string;
}

/** The XDP attach modes bpf_xdp_query reports; "native" is driver mode, "generic" skb mode. */
export type XdpMode = 'none' | 'native' | 'generic' | 'offload' | 'multi';

export interface XdpInfo {
  readonly mode: XdpMode;
  /** The program of the single attached mode, or 0. */
  readonly progId: number;
  readonly drvProgId: number;
  readonly skbProgId: number;
  readonly hwProgId: number;
}
