/**
 * In-process lanes: operations queued on the same lane run one after another, different
 * lanes run side by side. IPAM runs an Ipam instance's changes for one node in one lane,
 * as Calico's CNI plugin holds a host-wide IPAM lock: a hundred concurrent calls from one
 * process would otherwise mostly lose compare-and-swap races to each other and retry.
 * Correctness never rests on this: other processes (and other instances) still meet in
 * etcd, where the transactions decide.
 */
export class Lanes {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(lane: string, fn: () => Promise<T>): Promise<T> {
    const before = this.tails.get(lane) ?? Promise.resolve();
    const result = before.then(fn);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(lane, tail);
    void tail.then(() => {
      if (this.tails.get(lane) === tail) this.tails.delete(lane);
    });
    return result;
  }
}
