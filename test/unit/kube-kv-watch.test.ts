/**
 * The store's watcher over a stream that merges several Kubernetes watches (one per
 * resource): an older revision of another key may follow a newer one and must still be
 * delivered; an event the watcher already has is not delivered twice. In-memory stream.
 */
import { EventEmitter } from 'node:events';
import type { IWatchResponse } from 'etcd3';
import { describe, expect, it } from 'vitest';
import {
  Datastore,
  encodeResource,
  resourceKey,
  type EtcdWatchClient,
  type WatchEvent,
} from '../../src/datastore/index.js';

const P = '/calico';

function fakeClient() {
  const streams: EventEmitter[] = [];
  const client = {
    kv: {
      range: () =>
        Promise.resolve({ header: { revision: '100' }, kvs: [], more: false, count: '0' }),
      txn: (req: { success?: unknown[] }) =>
        Promise.resolve({
          header: { revision: '100' },
          succeeded: true,
          responses: (req.success ?? []).map(() => ({ response_range: { kvs: [] } })),
        }),
    },
    watchClient: {
      watch: () => {
        const s = Object.assign(new EventEmitter(), {
          write: () => undefined,
          cancel: () => undefined,
          end: () => undefined,
        });
        streams.push(s);
        return Promise.resolve(s);
      },
    },
    close: () => undefined,
  };
  return { client: client as unknown as EtcdWatchClient, streams };
}

function put(kind: 'IPPool' | 'Tier', name: string, rev: string) {
  const key = resourceKey(kind, name, undefined, P);
  const value = encodeResource({
    apiVersion: 'projectcalico.org/v3',
    kind,
    metadata: { name, uid: `u-${name}`, creationTimestamp: 't' },
    spec: kind === 'IPPool' ? { cidr: '10.0.0.0/16' } : { order: 1 },
  });
  return {
    type: 'Put' as const,
    kv: {
      key: Buffer.from(key),
      value: Buffer.from(value),
      mod_revision: rev,
      create_revision: rev,
      version: '1',
      lease: '0',
    },
  };
}

function response(events: ReturnType<typeof put>[]): IWatchResponse {
  return {
    header: { revision: events[0]?.kv.mod_revision ?? '100' },
    created: false,
    canceled: false,
    compact_revision: '0',
    events,
  } as unknown as IWatchResponse;
}

describe('watching a merged stream', () => {
  it('delivers an older revision of another key after a newer one, and skips what it has', async () => {
    const { client, streams } = fakeClient();
    const ds = Datastore.fromClient(client, { prefix: P });
    const seen: WatchEvent[] = [];
    const w = await ds.watch(['IPPool', 'Tier'], (ev) => {
      seen.push(ev);
    });
    await new Promise((r) => setImmediate(r));
    const s = streams[0]!;
    s.emit('data', { ...response([]), created: true, header: { revision: '100' } });
    s.emit('data', response([put('IPPool', 'a', '105')]));
    s.emit('data', response([put('Tier', 'b', '103')]));
    s.emit('data', response([put('IPPool', 'a', '105')]));
    await w.idle();
    const puts = seen.flatMap((e) =>
      e.type === 'put' ? [`${e.kind} ${e.resource.metadata.name} ${e.revision}`] : [],
    );
    expect(puts).toEqual(['IPPool a 105', 'Tier b 103']);
    expect(w.revision).toBe('105');
    await w.cancel();
  });
});
