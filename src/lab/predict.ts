/**
 * What the reference evaluator says a lab's reachability matrix must be: the oracle the
 * demo and the e2e tests hold the observed matrix to.
 */
import { judgePacket } from '../policy/evaluate.js';
import type { World } from '../policy/model.js';
import type { NodeLab } from './node-lab.js';

/** "from -> to" → reachable */
export type Matrix = Map<string, boolean>;

export function predictMatrix(
  world: World,
  lab: NodeLab,
  protocol: 'tcp' | 'udp',
  port: number,
): Matrix {
  const out: Matrix = new Map();
  for (const from of lab.pods) {
    for (const to of lab.pods) {
      const { allowed } = judgePacket(
        world,
        {
          saddr: from.ip,
          daddr: to.ip,
          protocol: protocol === 'tcp' ? 6 : 17,
          sport: 40000,
          dport: port,
        },
        { sender: from.endpoint, receiver: to.endpoint },
      );
      out.set(`${from.key} -> ${to.key}`, allowed);
    }
  }
  return out;
}
