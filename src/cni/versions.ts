/**
 * The CNI spec versions tortie speaks, and what each one allows: CHECK arrived in 0.4.0,
 * STATUS and GC in 1.1.0; results before 1.0.0 carry `version` in each ips entry.
 */
import { CniCode, CniError } from './errors.js';

export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];
export const LATEST_VERSION: CniVersion = '1.1.0';

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'STATUS' | 'GC';
export const COMMANDS: readonly CniCommand[] = ['ADD', 'DEL', 'CHECK', 'VERSION', 'STATUS', 'GC'];

/** The first spec version that has the command. */
const INTRODUCED: Record<CniCommand, CniVersion> = {
  ADD: '0.3.0',
  DEL: '0.3.0',
  VERSION: '0.3.0',
  CHECK: '0.4.0',
  STATUS: '1.1.0',
  GC: '1.1.0',
};

export function isSupportedVersion(version: unknown): version is CniVersion {
  return typeof version === 'string' && (SUPPORTED_VERSIONS as readonly string[]).includes(version);
}

/** Compares two dotted versions numerically: <0, 0, >0. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** Throws "incompatible version" unless the version is supported and has the command. */
export function assertVersionFor(command: CniCommand, version: unknown): CniVersion {
  if (typeof version !== 'string' || version === '') {
    throw new CniError(
      CniCode.InvalidConfig,
      `network config has no cniVersion: set it to one of ${SUPPORTED_VERSIONS.join(', ')}`,
    );
  }
  if (!isSupportedVersion(version)) {
    throw new CniError(
      CniCode.IncompatibleVersion,
      `cniVersion ${JSON.stringify(version)} is not supported: tortie supports ${SUPPORTED_VERSIONS.join(', ')}`,
    );
  }
  const since = INTRODUCED[command];
  if (compareVersions(version, since) < 0) {
    throw new CniError(
      CniCode.IncompatibleVersion,
      `${command} needs cniVersion ${since} or later, but the network config says ${version}`,
    );
  }
  return version;
}

/** Results before 1.0.0 carry `"version": "4"` in each ips entry. */
export function ipsCarryVersion(version: CniVersion): boolean {
  return compareVersions(version, '1.0.0') < 0;
}

/** Interface MTUs are part of the result from 1.1.0. */
export function interfacesCarryMtu(version: CniVersion): boolean {
  return compareVersions(version, '1.1.0') >= 0;
}
