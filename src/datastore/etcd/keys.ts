/**
 * Key ranges as etcd takes them: a prefix is the range [prefix, prefixEnd(prefix)).
 */

/** The first key after every key that starts with `prefix` ("\0" — every key — for a prefix of 0xff bytes). */
export function prefixEnd(prefix: string | Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}
