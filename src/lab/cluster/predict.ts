/**
 * What the reference evaluator says a cluster lab's reachability matrix must be, from
 * what is in the store right now: every policy input the agents watch, and the pods'
 * WorkloadEndpoints. The agents build their World the same way (buildWorld), but the
 * verdicts here come from evaluate(), not from the compiler or the BPF maps — so a
 * matrix that agrees with this one is a check of the dataplane, not a copy of it.
 */
import { buildWorld, ClusterModel, WATCHED_KINDS } from '../../agent/model.js';
import type { Datastore, EtcdKvClient } from '../../datastore/index.js';
import { predictPairs, type Matrix, type PredictPod } from '../predict.js';

export type { Matrix, PredictPod };

/** Loads every watched kind from the store into a ClusterModel, as one snapshot. */
export async function snapshotModel(store: Datastore<EtcdKvClient>): Promise<ClusterModel> {
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
  return predictPairs(
    world,
    pods.map((p) => ({ key: p.key, ip: p.ip, endpoint: byIp.get(p.ip) })),
    protocol,
    port,
  );
}

export async function predictFromStore(
  store: Datastore<EtcdKvClient>,
  pods: readonly PredictPod[],
  protocol: 'tcp' | 'udp',
  port: number,
): Promise<Matrix> {
  return predictFromModel(await snapshotModel(store), pods, protocol, port);
}
