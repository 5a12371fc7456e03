/**
 * BGP routing (`routing: bgp`): this node's BIRD, configured from the store
 * (../../bgp/render.ts) — started when none runs (also after it died), reloaded when the
 * text changed, left alone otherwise; the routes BIRD installed in the kernel (`proto
 * bird`), which the remote-routes manager follows (this manager is its RouteSource); and
 * BIRD's sessions, read every second and whenever the route monitor sees a learned route
 * change.
 *
 * A failure is logged (at warn or error, once per different message), shown in /status
 * and retried; it holds back nothing else (the route map keeps following the kernel).
 */
import type { Logger } from 'pino';
import type { ApplyResult, BgpSession, BirdPaths } from '../../bgp/bird.js';
import { renderBird, type BgpTimers, type SecretValue } from '../../bgp/render.js';
import { readSecrets } from '../../bgp/secrets.js';
import type { SecretKeyRef } from '../../datastore/schema/bgp.js';
import type { ClusterModel } from '../model.js';
import type { NodeNetns } from '../links.js';
import type {
  BgpStatus,
  ManagerContext,
  ManagerResult,
  Manager,
  MetricsOut,
  Pass,
  StatusPart,
} from '../manager.js';
import {
  BIRD_ROUTE_PROTO,
  IPIP_OVERHEAD,
  IPIP_ROUTE_MTU,
  learnedRoutes,
  tunnelMtu,
  type DesiredRoute,
  type KernelRoute,
  type RouteInputs,
} from '../routes.js';
import type { RouteSource } from './remote-routes.js';

/** How often the learned kernel routes and BIRD's sessions are read. */
export const BGP_POLL_MS = 1000;

/** BIRD as this manager drives it (../../bgp/bird.ts's Bird). */
export interface BirdPort {
  readonly paths: BirdPaths;
  pid(): number | undefined;
  apply(text: string): Promise<ApplyResult>;
  sessions(): Promise<BgpSession[]>;
}

/** Something that calls back when BIRD's kernel routes change (../route-monitor.ts). */
export interface Watcher {
  start(): void;
  stop(): void;
}

export interface BgpOptions {
  readonly bird: BirdPort;
  readonly netns: NodeNetns;
  /** The route monitor, given its callbacks. */
  readonly monitor: (onChange: () => void, onProblem: (message: string) => void) => Watcher;
  readonly asNumber: number | undefined;
  readonly holdTimeSeconds: number | undefined;
  readonly runDir: string;
  /** BGP passwords given as secretKeyRef: `<secretsDir>/<name>/<key>` (../../bgp/secrets.ts). */
  readonly secretsDir: string;
}

/** Every secretKeyRef the BGP resources name (BGPPeer password, nodeMeshPassword). */
export function secretRefs(model: ClusterModel): SecretKeyRef[] {
  const refs: SecretKeyRef[] = [];
  const mesh = model.get('BGPConfiguration', 'default')?.spec.nodeMeshPassword;
  if (mesh !== undefined) refs.push(mesh.secretKeyRef);
  for (const p of model.list('BGPPeer'))
    if (p.spec.password !== undefined && typeof p.spec.password !== 'string')
      refs.push(p.spec.password.secretKeyRef);
  return refs;
}

/** What was read, as one string (compared, never logged: it holds the passwords). */
function secretsKey(secrets: ReadonlyMap<string, SecretValue>): string {
  return JSON.stringify([...secrets]);
}

export class BgpManager implements Manager, RouteSource {
  readonly name = 'bgp';
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;
  private soon: NodeJS.Timeout | undefined;
  private monitor: Watcher | undefined;
  private polling = false;
  private repoll = false;
  private stopped = false;
  private learned: KernelRoute[] = [];
  private learnedKey = '';
  private sessions: BgpSession[] = [];
  private error: string | undefined;
  private problems: string[] = [];
  private notImplemented: string[] = [];
  /** The secrets the last render used (refs and what was read), to notice a file change. */
  private secretsSeen: { refs: SecretKeyRef[]; key: string } = { refs: [], key: '' };
  private birdGoneLogged = false;
  /** The last poll failure logged (undefined: the last poll worked). */
  private pollError: string | undefined;

  constructor(
    private readonly ctx: ManagerContext,
    private readonly opts: BgpOptions,
  ) {
    this.log = ctx.log;
  }

  start(): void {
    const bird = this.opts.bird;
    this.log.info(
      { runDir: this.opts.runDir, birdPid: bird.pid() },
      bird.pid() === undefined
        ? 'routing: bgp (BIRD is started at the first sync)'
        : 'routing: bgp (a running BIRD is adopted)',
    );
    this.timer = setInterval(() => void this.poll(), BGP_POLL_MS);
    this.monitor = this.opts.monitor(
      () => this.pollSoon(),
      (message) => this.log.warn({ err: message }, 'route monitor (retried)'),
    );
    this.monitor.start();
  }

  /** RouteSource: the route map follows what BIRD installed in the kernel. */
  async wanted(inputs: RouteInputs): Promise<DesiredRoute[]> {
    try {
      this.learned = await this.opts.netns.listKernelRoutes(BIRD_ROUTE_PROTO);
      this.learnedKey = JSON.stringify(this.learned);
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'cannot read the learned routes');
    }
    return learnedRoutes(this.learned, inputs);
  }

  async reconcile(pass: Pass): Promise<ManagerResult> {
    const bird = this.opts.bird;
    const { model, address, routes: inputs, links } = pass.snapshot;
    const self = this.ctx.node;
    try {
      const nodes = model.list('Node').map((n) => ({
        name: n.metadata.name,
        address:
          n.metadata.name === self ? (n.spec.bgp?.ipv4Address ?? address) : n.spec.bgp?.ipv4Address,
        asNumber: n.spec.bgp?.asNumber,
        labels: n.metadata.labels ?? {},
        routeReflectorClusterID: n.spec.bgp?.routeReflectorClusterID,
      }));
      if (!nodes.some((n) => n.name === self))
        nodes.push({
          name: self,
          address,
          asNumber: this.opts.asNumber,
          labels: {},
          routeReflectorClusterID: undefined,
        });
      const hold = this.opts.holdTimeSeconds;
      const timers: BgpTimers | undefined =
        hold === undefined
          ? undefined
          : {
              holdTime: hold,
              startDelayTime: 1,
              connectRetryTime: Math.max(1, Math.floor(hold / 3)),
              errorWaitTime: [1, hold],
            };
      const uplink =
        pass.uplink === undefined
          ? undefined
          : [...links].find(([, i]) => i === pass.uplink!.ifindex)?.[0];
      const config = model.get('BGPConfiguration', 'default')?.spec;
      // The port each node's BIRD listens on: its own BGPConfiguration, else the default's.
      const withPorts = nodes.map((n) => ({
        ...n,
        listenPort:
          model.get('BGPConfiguration', `node.${n.name}`)?.spec.listenPort ?? config?.listenPort,
      }));
      const refs = secretRefs(model);
      const secrets = readSecrets(this.opts.secretsDir, refs);
      this.secretsSeen = { refs, key: secretsKey(secrets) };
      const rendered = renderBird({
        self,
        nodes: withPorts,
        config,
        nodeConfig: model.get('BGPConfiguration', `node.${self}`)?.spec,
        peers: model.list('BGPPeer').map((p) => ({ name: p.metadata.name, spec: p.spec })),
        filters: model.list('BGPFilter').map((f) => ({ name: f.metadata.name, spec: f.spec })),
        secrets,
        pools: model.list('IPPool').map((p) => ({
          cidr: p.spec.cidr,
          ipipMode: p.spec.ipipMode,
          vxlanMode: p.spec.vxlanMode,
          disableBGPExport: p.spec.disableBGPExport,
        })),
        blocks: inputs.blocks,
        uplink,
        // BIRD's kernel routes to IPIP blocks: ipipMTU, else the uplink's MTU − 20.
        ipipMtu: tunnelMtu(
          pass.snapshot.settings?.ipipMtu,
          uplink === undefined ? undefined : await this.opts.netns.linkMtu(uplink),
          IPIP_OVERHEAD,
          IPIP_ROUTE_MTU,
        ),
        logFile: bird.paths.log,
        timers,
      });
      if (rendered.problems.join('\n') !== this.problems.join('\n'))
        for (const p of rendered.problems)
          this.log.error({ problem: p }, 'BGP configuration not applied as written');
      this.problems = [...rendered.problems];
      this.notImplemented = [...rendered.notImplemented];
      const result = await bird.apply(rendered.text);
      if (result !== 'unchanged') {
        this.log.info(
          {
            result,
            birdPid: bird.pid(),
            config: bird.paths.conf,
            peers: rendered.peers.map((p) => p.name),
            originated: rendered.originated,
          },
          result === 'started' ? 'BIRD started' : 'BIRD reconfigured',
        );
        this.birdGoneLogged = false;
        void this.poll();
      }
      this.error = undefined;
      return {};
    } catch (e) {
      const msg = (e as Error).message;
      if (msg !== this.error) this.log.error({ err: msg }, 'BIRD configuration failed (retried)');
      this.error = msg;
      this.ctx.tally.routeErrors++;
      return { retryMs: 2000 };
    }
  }

  /** A learned route changed: read them now (coalesced; poll skips while one runs). */
  private pollSoon(): void {
    if (this.soon !== undefined || this.stopped) return;
    this.soon = setTimeout(() => {
      this.soon = undefined;
      void this.poll();
    }, 5);
  }

  /**
   * Every second: the learned routes (a change triggers a reconcile, which refills the
   * route map), BIRD's sessions (for /status and the heartbeat), and whether BIRD still
   * runs (if not, a reconcile starts it again).
   */
  async poll(): Promise<void> {
    if (this.stopped) return;
    if (this.polling) {
      this.repoll = true;
      return;
    }
    this.polling = true;
    const bird = this.opts.bird;
    try {
      const learned = await this.opts.netns.listKernelRoutes(BIRD_ROUTE_PROTO);
      const key = JSON.stringify(learned);
      if (key !== this.learnedKey && this.ctx.programmed()) {
        this.learnedKey = key;
        this.ctx.trigger();
      }
      this.sessions = await bird.sessions();
      // A password file changed (written, fixed, removed): render again.
      const seen = this.secretsSeen;
      if (
        seen.refs.length > 0 &&
        secretsKey(readSecrets(this.opts.secretsDir, seen.refs)) !== seen.key &&
        this.ctx.programmed()
      )
        this.ctx.trigger();
      if (bird.pid() === undefined && this.ctx.programmed()) {
        if (!this.birdGoneLogged)
          this.log.warn({ config: bird.paths.conf }, 'BIRD is not running: starting it again');
        this.birdGoneLogged = true;
        this.ctx.trigger();
      }
      if (this.pollError !== undefined) this.log.info('BGP poll works again');
      this.pollError = undefined;
    } catch (e) {
      // At warn, once per different failure (it repeats every second while it lasts).
      const msg = (e as Error).message;
      if (msg !== this.pollError)
        this.log.warn(
          { err: msg, config: bird.paths.conf },
          'BGP poll failed: sessions and learned routes are stale (retried every second)',
        );
      this.pollError = msg;
    } finally {
      this.polling = false;
      // A change seen while this read ran gets one more read.
      if (this.repoll && !this.stopped) {
        this.repoll = false;
        this.pollSoon();
      }
    }
  }

  /** For the heartbeat. */
  bgpSessions(): readonly BgpSession[] {
    return this.sessions;
  }

  status(): StatusPart {
    const bird = this.opts.bird;
    const bgp: BgpStatus = {
      routing: 'bgp',
      birdPid: bird.pid(),
      configFile: bird.paths.conf,
      socket: bird.paths.ctl,
      sessions: this.sessions,
      learned: this.learned,
      error: this.error,
      problems: this.problems,
      notImplemented: this.notImplemented,
    };
    return { bgp };
  }

  metrics(_out: MetricsOut): void {}

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.soon);
    this.monitor?.stop();
  }
}
