/**
 * The arrows of docs/architecture.md are lint rules (eslint.config.js): an import that
 * points the wrong way — static, re-exported, dynamic or as a type — fails `npm run lint`,
 * one that follows the arrows passes. Each case lints a scratch text as if it were a file
 * at that path (nothing is written).
 */
import { join } from 'node:path';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const eslint = new ESLint({ cwd: ROOT });

/** The arrow rules' messages for `code` at `path`. */
async function arrowProblems(path: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: join(ROOT, path) });
  return result!.messages
    .filter((m) => m.ruleId === 'no-restricted-imports' || m.ruleId === 'no-restricted-syntax')
    .map((m) => m.message);
}

describe('imports that point the wrong way are refused', () => {
  it.each([
    ['maps importing the agent', 'src/maps/x.ts', "import { Agent } from '../agent/index.js';"],
    [
      'the policy compiler importing native',
      'src/policy/x.ts',
      "export * from '../native/index.js';",
    ],
    [
      'the policy compiler importing maps',
      'src/policy/compile/x.ts',
      "import type { MapSpec } from '../../maps/catalog.js';",
    ],
    [
      'the lab importing the CLI',
      'src/lab/cluster/x.ts',
      "import { port } from '../../cli/args.js';",
    ],
    ['the agent importing the lab', 'src/agent/x.ts', "const m = await import('../lab/demo.js');"],
    [
      'the agent importing preflight',
      'src/agent/x.ts',
      "import { checkSystem } from '../preflight/index.js';",
    ],
    [
      'the CNI plugin importing the agent',
      'src/cni/x.ts',
      "import { Agent } from '../agent/agent.js';",
    ],
    [
      'the datastore importing IPAM (sideways)',
      'src/datastore/x.ts',
      "import { Ipam } from '../ipam/index.js';",
    ],
    [
      'src importing bench (static)',
      'src/cli/x.ts',
      "import { registerBenchCommands } from '../../bench/cli.js';",
    ],
    [
      'src importing bench (dynamic)',
      'src/cli/x.ts',
      "const { runVerdictBench } = await import('../../bench/verdict.js');",
    ],
    [
      'src importing a test helper',
      'src/lab/x.ts',
      "import { newRunId } from '../../test/helpers/netns.js';",
    ],
    ['src importing bin', 'src/util/x.ts', "export type T = typeof import('../../bin/tortie.js');"],
    [
      'src reaching in through ../src',
      'src/maps/x.ts',
      "import { Agent } from '../../src/agent/index.js';",
    ],
    ['bench importing the entry', 'bench/x.ts', "import '../bin/tortie.js';"],
    [
      'the entry importing more than cli and bench',
      'bin/x.ts',
      "import { ClusterLab } from '../src/lab/cluster/cluster-lab.js';",
    ],
  ])('%s', async (_what, path, code) => {
    const problems = await arrowProblems(path, code);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/docs\/architecture\.md, "Arrows"/);
  });

  it('names what the folder may import', async () => {
    expect(
      await arrowProblems('src/maps/x.ts', "import { Agent } from '../agent/index.js';"),
    ).toEqual([
      '\'../agent/index.js\' import is restricted from being used by a pattern. src/maps may import src/native, src/util (docs/architecture.md, "Arrows"), and nothing outside src/',
    ]);
  });
});

describe('imports that follow the arrows pass', () => {
  it.each([
    ['maps importing native', 'src/maps/x.ts', "import { native } from '../native/index.js';"],
    [
      'the CLI importing the lab',
      'src/cli/x.ts',
      "const { ClusterLab } = await import('../lab/cluster/cluster-lab.js');",
    ],
    [
      'the lab importing the agent',
      'src/lab/cluster/x.ts',
      "import type { AgentConfig } from '../../agent/index.js';",
    ],
    [
      'a folder importing itself',
      'src/lab/cluster/x.ts',
      "import { readState } from './state.js'; import { drawMatrix } from '../demo.js';",
    ],
    [
      'the CNI plugin waiting on the agent status (named debt)',
      'src/cni/x.ts',
      "import { waitForEndpointProgrammed } from '../agent/status.js';",
    ],
    ['bench importing src', 'bench/x.ts', "import { positiveInt } from '../src/cli/args.js';"],
    [
      'the entry importing cli and bench',
      'bin/x.ts',
      "import '../src/cli/program.js'; import '../bench/cli.js';",
    ],
    [
      'a test importing anything',
      'test/unit/x.test.ts',
      "import '../../bench/cli.js'; import '../../src/agent/index.js';",
    ],
    ['a package', 'src/policy/x.ts', "import { z } from 'zod';"],
  ])('%s', async (_what, path, code) => {
    expect(await arrowProblems(path, code)).toEqual([]);
  });
});
