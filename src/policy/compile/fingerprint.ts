/**
 * Content fingerprints: short names for long canonical spellings, so caches and id
 * tables can be keyed by content without holding the content twice.
 */
import { createHash } from 'node:crypto';

export function fingerprint(text: string): string {
  return createHash('sha1').update(text).digest('base64');
}

/** The fingerprint of a list of numbers (exact for any double). */
export function fingerprintNumbers(values: readonly number[]): string {
  return createHash('sha1').update(new Float64Array(values)).digest('base64');
}
