import { describe, expect, it } from 'vitest';

import { conntrackFamilies, conntrackSummary } from '../../src/agent/conntrack.js';
import { renderMetrics } from '../../src/agent/metrics.js';
import { conntrackLines } from '../../src/cli/node.js';
import type { ConntrackPressure } from '../../src/dataplane/node-dataplane.js';

const pressure: ConntrackPressure = {
  entries: 200_000,
  capacity: 262_144,
  created: 250_030n,
  removed: 50_030n,
  byEndpoint: [
    { epId: 0, created: 10n },
    { epId: 3, created: 20n },
    { epId: 9, created: 250_000n },
  ],
  countMs: 172,
};
const names = new Map([[9, 'x/scanner']]);

describe('conntrack pressure as the agent reports it', () => {
  it('/metrics: entries, capacity, created per endpoint (named when known), removed, count time', () => {
    const text = renderMetrics(conntrackFamilies(pressure, names));
    expect(text).toContain(
      '# TYPE tortie_conntrack_entries gauge\ntortie_conntrack_entries 200000\n',
    );
    expect(text).toContain('tortie_conntrack_capacity 262144\n');
    expect(text).toContain('# TYPE tortie_conntrack_created_total counter\n');
    expect(text).toContain(
      'tortie_conntrack_created_total{endpoint="x/scanner",endpoint_id="9"} 250000\n',
    );
    expect(text).toContain('tortie_conntrack_created_total{endpoint="id 3",endpoint_id="3"} 20\n');
    expect(text).toContain('tortie_conntrack_created_total{endpoint="none",endpoint_id="0"} 10\n');
    expect(text).toContain('tortie_conntrack_removed 50030\n');
    expect(text).toContain('tortie_conntrack_count_seconds 0.172\n');
  });

  it('status: the biggest creators first, and the line `tortie node status` prints', () => {
    const s = conntrackSummary(pressure, names, 2);
    expect(s).toEqual({
      entries: 200_000,
      capacity: 262_144,
      created: 250_030,
      removed: 50_030,
      topCreators: [
        { endpoint: 'x/scanner', created: 250_000 },
        { endpoint: 'id 3', created: 20 },
      ],
    });
    const lines = conntrackLines(s);
    expect(lines[0]).toBe(
      'conntrack         200000 of 262144 entries (76.3%), 250030 created, 50030 removed (evicted, revoked, expired and reused)',
    );
    expect(lines[1]).toMatch(/^ {2}x\/scanner +250000 created$/);
    expect(conntrackLines(undefined)).toEqual([]);
  });
});
