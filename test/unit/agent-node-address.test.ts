import { describe, expect, it } from 'vitest';
import { nodeAddress } from '../../src/agent/links.js';

describe("the node's underlay address", () => {
  it('the address given wins, and nothing is detected', async () => {
    let asked = false;
    const r = await nodeAddress('192.0.2.1/24', () => {
      asked = true;
      return Promise.resolve('198.51.100.1/24');
    });
    expect(r).toEqual({ address: '192.0.2.1/24' });
    expect(asked).toBe(false);
  });

  it('none found: the problem says what it means', async () => {
    const r = await nodeAddress(undefined, () => Promise.resolve(undefined));
    expect(r.address).toBeUndefined();
    expect(r.problem).toMatch(/no underlay address given \(--ip\) or found/);
    expect(r.cause).toBeUndefined();
  });

  it('detection that fails keeps its cause in what the user sees', async () => {
    const r = await nodeAddress(undefined, () =>
      Promise.reject(new Error('cannot enter namespace /run/netns/n1: No such file or directory')),
    );
    expect(r.address).toBeUndefined();
    expect(r.problem).toMatch(/could not be detected: cannot enter namespace \/run\/netns\/n1/);
    expect(r.cause).toMatch(/No such file or directory/);
  });
});
