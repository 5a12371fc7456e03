/**
 * What the reference evaluator says a cluster lab's reachability matrix must be, from
 * what is in the store right now: every policy input the agents watch, and the pods'
 * WorkloadEndpoints. The agents build their World the same way (buildWorld), but the
 * verdicts here come from evaluate(), not from the compiler or the BPF maps — so a
 * matrix that agrees with this one is a check of the dataplane, not a copy of it.
 */
import { buildWorld, ClusterModel, WATCHED_KINDS } from '../../agent/model.js';
import type { Datastore } from '../../datastore/index.js';
import { judgePacket } from '../../policy/evaluate.js';

/** "from -> to" → reachable */
export type Matrix = Map<string, boolean>;

export interface PredictPod {
  /** "namespace/name" as the lab shows it. */
  readonly key: string;
  readonly ip: string;
}

/** Loads every watched kind from the store into a ClusterModel, as one snapshot. */
export async function snapshotModel(store: Datastore): Promise<ClusterModel> {
  const model = new ClusterModel();
  for (const kind of WATCHED_KINDS) {
    for (const resource of await store.list(kind)) {
      model.apply({ type: 'put', kind, resource, revision: '0' } as Parameters<
        ClusterModel['apply']
      >[0]);
    }
  }
  return model;
}

export function predictFromModel(
  model: ClusterModel,
  pods: readonly PredictPod[],
  protocol: 'tcp' | 'udp',
  port: number,
): Matrix {
  const { world, endpoints } = buildWorld(model);
  const byIp = new Map([...endpoints.values()].map((e) => [e.endpoint.ip, e.endpoint]));
  const out: Matrix = new Map();
  for (const from of pods) {
    for (const to of pods) {
      if (from === to) continue;
      const sender = byIp.get(from.ip);
      const receiver = byIp.get(to.ip);
      const { allowed } = judgePacket(
        world,
        {
          saddr: from.ip,
          daddr: to.ip,
          protocol: protocol === 'tcp' ? 6 : 17,
          sport: 40000,
          dport: port,
        },
        { ...(sender ? { sender } : {}), ...(receiver ? { receiver } : {}) },
      );
      out.set(`${from.key} -> ${to.key}`, allowed);
    }
  }
  return out;
}

export async function predictFromStore(
  store: Datastore,
  pods: readonly PredictPod[],
  protocol: 'tcp' | 'udp',
  port: number,
): Promise<Matrix> {
  return predictFromModel(await snapshotModel(store), pods, protocol, port);
}
