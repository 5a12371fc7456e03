/**
 * What the reference evaluator says a lab's reachability matrix must be: the oracle the
 * demos and the e2e tests hold the observed matrix to.
 */
import { judgePacket, type EndpointToHostAction } from '../policy/evaluate.js';
import type { Endpoint, World } from '../policy/model.js';
import type { NodeLab } from './node-lab.js';

/** "from -> to" → reachable */
export type Matrix = Map<string, boolean>;

export interface PredictPod {
  /** "namespace/name" as the lab shows it. */
  readonly key: string;
  readonly ip: string;
  /** The pod's endpoint in `world`; undefined: no policy applies to it (a bare address). */
  readonly endpoint?: Endpoint | undefined;
}

/**
 * Every ordered pair of `pods` judged by evaluate(): the sender's egress, then the
 * receiver's ingress, for one packet from an ephemeral port. `self` includes a pod's
 * pair with itself (the one-node lab probes those too).
 */
export function predictPairs(
  world: World,
  pods: readonly PredictPod[],
  protocol: 'tcp' | 'udp',
  port: number,
  opts: { self?: boolean } = {},
): Matrix {
  const out: Matrix = new Map();
  for (const from of pods) {
    for (const to of pods) {
      if (from === to && opts.self !== true) continue;
      const { allowed } = judgePacket(
        world,
        {
          saddr: from.ip,
          daddr: to.ip,
          protocol: protocol === 'tcp' ? 6 : 17,
          sport: 40000,
          dport: port,
        },
        {
          ...(from.endpoint ? { sender: from.endpoint } : {}),
          ...(to.endpoint ? { receiver: to.endpoint } : {}),
        },
      );
      out.set(`${from.key} -> ${to.key}`, allowed);
    }
  }
  return out;
}

/**
 * Each pod's new TCP/UDP flow to an address of its own node (`nodeIp`), judged by
 * evaluate(): the pod's egress, then the node's defaultEndpointToHostAction. A pod with no
 * endpoint in `world` has no egress policy: the action alone decides.
 */
export function predictToHost(
  world: World,
  pods: readonly PredictPod[],
  nodeIp: string,
  protocol: 'tcp' | 'udp',
  port: number,
  action: EndpointToHostAction,
): Matrix {
  const out: Matrix = new Map();
  for (const from of pods) {
    const packet = {
      saddr: from.ip,
      daddr: nodeIp,
      protocol: protocol === 'tcp' ? 6 : 17,
      sport: 40000,
      dport: port,
    };
    const allowed =
      from.endpoint === undefined
        ? action !== 'Drop'
        : judgePacket(world, packet, { sender: from.endpoint, toHost: action }).allowed;
    out.set(`${from.key} -> node ${nodeIp}`, allowed);
  }
  return out;
}

export function predictMatrix(
  world: World,
  lab: NodeLab,
  protocol: 'tcp' | 'udp',
  port: number,
): Matrix {
  return predictPairs(world, lab.pods, protocol, port, { self: true });
}
