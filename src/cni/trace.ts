/**
 * Phase timestamps of one plugin call (ms since process start), printed on stderr by
 * main.ts when TORTIE_CNI_TIMING=1: where an ADD's time goes (loading, etcd, plumbing).
 */
import { performance } from 'node:perf_hooks';

const marks: Array<[string, number]> = [];

export function mark(phase: string): void {
  marks.push([phase, performance.now()]);
}

/** "loaded 310.2, assigned 338.0, ..." */
export function formatMarks(): string {
  return marks.map(([phase, at]) => `${phase} ${at.toFixed(1)}`).join(', ');
}
