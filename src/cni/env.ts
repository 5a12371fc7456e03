/**
 * The CNI_* environment of one invocation, validated for its command. Every invalid or
 * missing variable is named in one error (code 4), so a runtime author fixes them at once.
 */
import { parseCniArgs, type CniArgs } from './cni-args.js';
import { CniCode, CniError } from './errors.js';
import { COMMANDS, type CniCommand } from './versions.js';

/** What identifies one attachment of a container to a network (ADD, DEL, CHECK). */
export interface AttachmentEnv {
  command: 'ADD' | 'DEL' | 'CHECK';
  containerId: string;
  /** The pod's network namespace; undefined only for DEL (containerd sends it empty). */
  netns: string | undefined;
  ifName: string;
  args: CniArgs;
  path: string[];
}

export interface NetworkEnv {
  command: 'VERSION' | 'STATUS' | 'GC';
  path: string[];
}

export type CniEnv = AttachmentEnv | NetworkEnv;

/** Spec: starts with a letter or digit, then letters, digits, '_', '.' or '-'. */
const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

export function parseCniEnv(env: NodeJS.ProcessEnv): CniEnv {
  const command = env.CNI_COMMAND;
  if (command === undefined || command === '') {
    throw invalid([`CNI_COMMAND is not set (one of ${COMMANDS.join(', ')})`]);
  }
  if (!(COMMANDS as readonly string[]).includes(command)) {
    throw invalid([
      `CNI_COMMAND=${JSON.stringify(command)} is not a CNI command (one of ${COMMANDS.join(', ')})`,
    ]);
  }
  const path = (env.CNI_PATH ?? '').split(':').filter((dir) => dir !== '');
  const cmd = command as CniCommand;
  if (cmd === 'VERSION' || cmd === 'STATUS' || cmd === 'GC') return { command: cmd, path };

  const problems: string[] = [];
  const containerId = env.CNI_CONTAINERID ?? '';
  if (containerId === '') problems.push('CNI_CONTAINERID is not set');
  else if (!CONTAINER_ID.test(containerId)) {
    problems.push(
      `CNI_CONTAINERID=${JSON.stringify(containerId)} must start with a letter or digit and contain only letters, digits, '_', '.' or '-'`,
    );
  }

  const ifName = env.CNI_IFNAME ?? '';
  const ifProblem = interfaceNameProblem(ifName);
  if (ifProblem)
    problems.push(`CNI_IFNAME${ifName === '' ? '' : `=${JSON.stringify(ifName)}`} ${ifProblem}`);

  const netnsRaw = env.CNI_NETNS ?? '';
  let netns: string | undefined;
  if (netnsRaw === '') {
    if (cmd !== 'DEL')
      problems.push(`CNI_NETNS is not set (${cmd} needs the pod's network namespace path)`);
  } else if (!netnsRaw.startsWith('/') || /[\s"'#\\]/.test(netnsRaw)) {
    problems.push(
      `CNI_NETNS=${JSON.stringify(netnsRaw)} is not an absolute path without spaces or quotes`,
    );
  } else {
    netns = netnsRaw;
  }

  let args: CniArgs = {};
  try {
    args = parseCniArgs(env.CNI_ARGS);
  } catch (err) {
    if (!(err instanceof CniError)) throw err;
    problems.push(err.details);
  }
  if (problems.length > 0) throw invalid(problems);
  return { command: cmd, containerId, netns, ifName, args, path };
}

/** Why a name cannot be a Linux interface name, or undefined when it can. */
export function interfaceNameProblem(name: string): string | undefined {
  if (name === '') return 'is not set';
  if (name.length > 15) return 'is longer than 15 characters';
  if (name === '.' || name === '..') return 'may not be "." or ".."';
  if (/[\s/:"'#\\]/.test(name)) return "may not contain '/', ':', whitespace or quotes";
  return undefined;
}

function invalid(problems: string[]): CniError {
  return new CniError(CniCode.InvalidEnvironment, problems.join('; '));
}
