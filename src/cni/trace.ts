/**
 * Phase timestamps of CNI calls, logged by the agent's CNI server (./server.ts) when it
 * runs with TORTIE_CNI_TIMING=1: where an ADD's time goes (datastore, plumbing, the
 * wait for programming). Each call keeps its own (an async context), so calls that run
 * at once are told apart; a mark outside a traced call is dropped.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { performance } from 'node:perf_hooks';

const calls = new AsyncLocalStorage<Array<[string, number]>>();

export function mark(phase: string): void {
  calls.getStore()?.push([phase, performance.now()]);
}

/** Runs `call` with its own marks; then `phases` says "read 2.1, assigned 9.0, ..." in ms since its start. */
export async function traced<T>(call: () => Promise<T>): Promise<{ result: T; phases: string }> {
  const marks: Array<[string, number]> = [];
  const since = performance.now();
  const result = await calls.run(marks, call);
  const phases = marks.map(([phase, at]) => `${phase} ${(at - since).toFixed(1)}`).join(', ');
  return { result, phases };
}
