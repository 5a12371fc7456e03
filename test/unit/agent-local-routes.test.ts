import { describe, expect, it } from 'vitest';
import { newPass } from '../../src/agent/manager.js';
import { LocalRoutesManager } from '../../src/agent/managers/local-routes.js';
import { softLocal, SoftRoutesMap, softSnapshot } from '../helpers/softdataplane.js';

describe('local-routes manager (in memory)', () => {
  it('a /32 per programmed endpoint into its veth; gone endpoints lose theirs', () => {
    const map = new SoftRoutesMap();
    const m = new LocalRoutesManager(map);
    const pass = newPass(softSnapshot());
    pass.programmed = [softLocal('a', '10.0.0.1', 10), softLocal('b', '10.0.0.2', 11)];
    expect(m.reconcile(pass)).toEqual({ writes: 2, deletes: 0 });
    expect([...map.local]).toEqual([
      ['10.0.0.1', 10],
      ['10.0.0.2', 11],
    ]);
    const next = newPass(softSnapshot());
    next.programmed = [softLocal('b', '10.0.0.2', 12)];
    expect(m.reconcile(next)).toEqual({ writes: 1, deletes: 1 });
    expect([...map.local]).toEqual([['10.0.0.2', 12]]);
    expect(m.size).toBe(1);
  });

  it('routes a previous agent pinned are not written again', () => {
    const map = new SoftRoutesMap();
    map.local.set('10.0.0.1', 10);
    const m = new LocalRoutesManager(map, new Map([['10.0.0.1', 10]]));
    const pass = newPass(softSnapshot());
    pass.programmed = [softLocal('a', '10.0.0.1', 10)];
    expect(m.reconcile(pass)).toEqual({ writes: 0, deletes: 0 });
    expect(map.writes).toBe(0);
  });

  it('only endpoints whose policy is in get a route (not every resolved one)', () => {
    const map = new SoftRoutesMap();
    const m = new LocalRoutesManager(map);
    const pass = newPass(softSnapshot({ locals: [softLocal('a', '10.0.0.1', 10)] }));
    m.reconcile(pass);
    expect(map.local.size).toBe(0);
  });
});
