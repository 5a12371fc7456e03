/**
 * The `tortie` program: every command of src/cli on one root command, and how a run
 * ends. The entry (bin/tortie.ts) adds `tortie bench` from bench/ and runs it.
 *
 * Exit codes: 0 done; 1 the command failed ("tortie: <message>", never a stack trace);
 * 2 a usage mistake ("error: <message>", usage.ts) — whether commander finds it (an
 * unknown option, a parser's InvalidArgumentError) or an action does.
 */
import { Command, CommanderError } from 'commander';
import { registerCniCommands } from './cni.js';
import { addGlobalOptions, type GlobalOptions } from './context.js';
import { registerInspectCommands } from './inspect-commands.js';
import { ipamConnection } from './ipam-connect.js';
import { registerIpamCommands } from './ipam.js';
import { registerClusterCommands } from './lab-cluster.js';
import { registerDemoCommand, registerLabCommands } from './lab.js';
import { registerNodeCommands } from './node.js';
import { registerResourceCommands } from './resources.js';
import { failUsage, isUsageMistake } from './usage.js';

/** The root command with every command of src/cli. */
export function buildProgram(): Command {
  const program = new Command();
  program
    .name('tortie')
    .description('Calico-model container networking with an eBPF dataplane')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  addGlobalOptions(program);
  registerResourceCommands(program);
  registerCniCommands(program);
  registerLabCommands(program);
  registerClusterCommands(program.commands.find((c) => c.name() === 'lab')!);
  registerNodeCommands(program);
  registerIpamCommands(
    program,
    ipamConnection(() => program.opts<GlobalOptions>()),
  );
  registerDemoCommand(program);
  registerInspectCommands(program);
  return program;
}

/**
 * The exit code for what ended a run, once it has been said: commander's own errors
 * (help, unknown options, parsers' refusals) are printed already; a usage mistake is
 * printed through `failUsage`; anything else as "tortie: <message>" (exit 1).
 */
export function exitCodeOf(program: Command, e: unknown): number {
  if (isUsageMistake(e)) {
    try {
      failUsage(program, e.message);
    } catch {
      // failUsage printed and threw commander's error, as it does under exitOverride.
    }
    return 2;
  }
  if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
  console.error(`tortie: ${(e as Error).message}`);
  return 1;
}

/** Runs the program on `argv`; a run that throws exits with `exitCodeOf`. */
export async function runProgram(program: Command, argv = process.argv): Promise<void> {
  try {
    await program.parseAsync(argv);
  } catch (e) {
    process.exit(exitCodeOf(program, e));
  }
}
