/**
 * The one error type of src/plumbing. `step` says what was being done ("add the /32
 * route to the pod"), `ifName` which interface it concerned, `stderr` what iproute2 or
 * sysctl said. The message combines them so that a user can act on it alone.
 */
export type PlumbingErrorKind =
  /** An argument is malformed (bad IPv4 address, interface name too long, ...). */
  | 'invalid-argument'
  /** Something the step needs is absent (a network namespace, a device). */
  | 'not-found'
  /** The interface (or route, or namespace) to create is already there. */
  | 'already-exists'
  /** Any other failure of an external command. */
  | 'command-failed';

export interface PlumbingErrorDetails {
  kind: PlumbingErrorKind;
  step: string;
  ifName?: string;
  stderr?: string;
  cause?: unknown;
}

export class PlumbingError extends Error {
  override readonly name = 'PlumbingError';
  readonly kind: PlumbingErrorKind;
  readonly step: string;
  readonly ifName: string | undefined;
  readonly stderr: string | undefined;

  constructor(message: string, details: PlumbingErrorDetails) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.kind = details.kind;
    this.step = details.step;
    this.ifName = details.ifName;
    this.stderr = details.stderr;
  }
}

/** Classifies iproute2 / sysctl stderr into a kind. */
export function kindFromStderr(stderr: string): PlumbingErrorKind {
  if (/File exists/i.test(stderr)) return 'already-exists';
  if (
    /No such file|Cannot find device|does not exist|No such device|Invalid "netns" value/i.test(
      stderr,
    )
  ) {
    return 'not-found';
  }
  return 'command-failed';
}
