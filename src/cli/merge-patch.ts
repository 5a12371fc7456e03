/**
 * JSON merge patch (RFC 7396), the patch `tortie patch -p` takes as `calicoctl patch`
 * and `kubectl patch --type merge` do: an object's members are merged key by key, `null`
 * removes a member, anything else (arrays included) replaces the value whole.
 */
import { UsageError } from './usage.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** RFC 7396 MergePatch(target, patch); neither argument is changed. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return patch;
  const result: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

/**
 * The text of `-p`: a JSON object (a patch of a resource merges into it; any other JSON
 * value would replace the whole resource, which is `replace`'s job).
 */
export function parseMergePatch(text: string): Record<string, Json> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`-p: not JSON: ${(e as Error).message}`);
  }
  if (!isObject(value))
    throw new UsageError(
      `-p: a merge patch is a JSON object such as '{"spec":{"disabled":true}}', not ${
        Array.isArray(value) ? 'an array' : JSON.stringify(value)
      }`,
    );
  return value as Record<string, Json>;
}
