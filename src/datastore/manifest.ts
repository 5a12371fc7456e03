/**
 * Manifests: the text of `apply -f FILE` into objects. YAML with any number of
 * `---`-separated documents, or JSON (one object, or an array of them); a `List` or
 * `<Kind>List` document (what `get -o yaml` prints) contributes its items. Every object
 * remembers where it came from, so errors can point at "pools.yaml document 2".
 */
import { parseAllDocuments } from 'yaml';

export interface ManifestObject {
  readonly object: unknown;
  /** "pools.yaml document 2", "pools.yaml document 1 item 3". */
  readonly source: string;
}

export class ManifestError extends Error {
  override readonly name = 'ManifestError';
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isList(v: Record<string, unknown>): boolean {
  return typeof v.kind === 'string' && /List$/.test(v.kind) && Array.isArray(v.items);
}

function expand(value: unknown, where: string, out: ManifestObject[]): void {
  if (value === null || value === undefined) return; // an empty document
  if (Array.isArray(value)) {
    value.forEach((item, i) => expand(item, `${where} item ${i + 1}`, out));
    return;
  }
  if (!isRecord(value)) {
    throw new ManifestError(
      `${where}: expected an object with apiVersion, kind, metadata and spec, got ${typeof value === 'string' ? 'text' : typeof value}`,
    );
  }
  if (isList(value)) {
    (value.items as unknown[]).forEach((item, i) => {
      if (!isRecord(item)) throw new ManifestError(`${where} item ${i + 1}: expected an object`);
      out.push({ object: item, source: `${where} item ${i + 1}` });
    });
    return;
  }
  out.push({ object: value, source: where });
}

/** Parses one file's text; `name` is how messages call the file ("-" is stdin). */
export function parseManifest(text: string, name: string): ManifestObject[] {
  const shown = name === '-' ? 'stdin' : name;
  const out: ManifestObject[] = [];
  const docs = parseAllDocuments(text, { uniqueKeys: true });
  const list = Array.isArray(docs) ? docs : [docs];
  list.forEach((doc, i) => {
    const where = list.length > 1 ? `${shown} document ${i + 1}` : shown;
    const error = doc.errors[0];
    if (error !== undefined) {
      const pos = error.linePos?.[0];
      const at = pos ? ` at line ${pos.line}, column ${pos.col}` : '';
      throw new ManifestError(
        `${where}: not valid YAML or JSON${at}: ${error.message.split('\n')[0]}`,
      );
    }
    expand(doc.toJS({ maxAliasCount: 100 }), where, out);
  });
  return out;
}
