#!/usr/bin/env node
/**
 * `tortie`: the composition root. The program of src/cli, `tortie bench` from bench/
 * (which src/ never imports), run to its exit code (src/cli/program.ts).
 */
import { registerBenchCommands } from '../bench/cli.js';
import { buildProgram, runProgram } from '../src/cli/program.js';

const program = buildProgram();
registerBenchCommands(program);
await runProgram(program);
