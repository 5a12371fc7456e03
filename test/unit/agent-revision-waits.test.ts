import { describe, expect, it } from 'vitest';
import { RevisionWaits } from '../../src/agent/revision-waits.js';

const late = () => 'late';

describe('revision waits', () => {
  it('resolves at once for a revision already programmed, later for one reached after', async () => {
    const w = new RevisionWaits('node-a');
    w.reached(5n);
    await w.wait(5n, 60_000, late);
    const pending = w.wait(7n, 60_000, late);
    w.reached(7n);
    await pending;
    expect(w.revision).toBe(7n);
  });

  it('a pending wait rejects when the agent stops', async () => {
    const w = new RevisionWaits('node-a');
    const pending = w.wait(3n, 60_000, late);
    w.stop();
    await expect(pending).rejects.toThrow('node-a: agent stopped');
  });

  it('a wait asked for after stop rejects at once, not after its timeout', async () => {
    const w = new RevisionWaits('node-a');
    w.stop();
    // The wait's own timeout (1 h) is far above vitest's test timeout: only a reject at
    // once passes.
    await expect(w.wait(3n, 3_600_000, late)).rejects.toThrow('node-a: agent stopped');
  });

  it('a revision programmed before the stop still resolves after it', async () => {
    const w = new RevisionWaits('node-a');
    w.reached(9n);
    w.stop();
    await w.wait(9n, 60_000, late);
  });

  it("rejects with the caller's message after the timeout", async () => {
    const w = new RevisionWaits('node-a');
    await expect(w.wait(3n, 1, () => 'revision 3 not programmed within 1 ms')).rejects.toThrow(
      'revision 3 not programmed within 1 ms',
    );
  });
});
