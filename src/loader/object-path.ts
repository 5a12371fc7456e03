/** Where the compiled tc programs live: bpf/tc_policy.o under the package root. */
import { join } from 'node:path';
import { packageRoot } from '../native/index.js';

export function defaultObjectPath(): string {
  return join(packageRoot(), 'bpf', 'tc_policy.o');
}
