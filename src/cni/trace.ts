/**
 * Phase timestamps of CNI calls, logged by the agent's CNI server (./server.ts) when it
 * runs with TORTIE_CNI_TIMING=1: where an ADD's time goes (datastore, plumbing, the
 * wait for programming). Shared by concurrent calls: read them from sequential ones.
 */
import { performance } from 'node:perf_hooks';

const marks: Array<[string, number]> = [];

export function mark(phase: string): void {
  marks.push([phase, performance.now()]);
}

/** "read 2.1, assigned 9.0, ..." in ms since `since`, and forgets them. */
export function takeMarks(since: number): string {
  const text = marks.map(([phase, at]) => `${phase} ${(at - since).toFixed(1)}`).join(', ');
  marks.length = 0;
  return text;
}
