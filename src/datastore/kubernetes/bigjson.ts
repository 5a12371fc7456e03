/**
 * JSON whose integers may pass 2^53 (an IPAM block's sequence numbers are Calico's uint64
 * nanosecond times, ~1.7e18), read and written digit for digit through the API: such an
 * integer is read as the string "\u0000<digits>" (a string no JSON text of the datastore's
 * holds otherwise) and written back as the bare digits. Everything else is JSON.parse's
 * and JSON.stringify's.
 */

const MARK = '\u0000';

/** JSON.parse, with every integer literal of 16 digits or more kept as a marked string. */
export function parseBigJson(text: string): unknown {
  let out = '';
  let copied = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') {
      inString = true;
      continue;
    }
    if (c === '-' || (c >= '0' && c <= '9')) {
      let j = i + 1;
      while (j < text.length && /[0-9.eE+-]/.test(text[j]!)) j++;
      const token = text.slice(i, j);
      if (/^-?\d{16,}$/.test(token)) {
        out += `${text.slice(copied, i)}"\\u0000${token}"`;
        copied = j;
      }
      i = j - 1;
    }
  }
  return JSON.parse(copied === 0 ? text : out + text.slice(copied));
}

/** JSON.stringify, with marked strings written as the integers they stand for. */
export function stringifyBigJson(value: unknown): string {
  return JSON.stringify(value).replace(/"\\u0000(-?\d+)"/g, '$1');
}

/** True for a string parseBigJson made of a large integer. */
export function isBigIntegerMark(v: unknown): v is string {
  return typeof v === 'string' && v.startsWith(MARK);
}
