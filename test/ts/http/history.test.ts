/** The dashboard's minute of history and the registry's details. */
import { HISTORY, MetricsHistory } from '../../../bridge/http/history';
import { Metrics } from '../../../engine/metrics/registry';

test('the ring keeps the last HISTORY snapshots, oldest first, as one message', () => {
  const h = new MetricsHistory();
  for (let i = 0; i < HISTORY + 5; i++) h.push(JSON.stringify({ t: i }));
  expect(h.size).toBe(HISTORY);
  const msg = JSON.parse(h.message()) as { history: { t: number }[] };
  expect(msg.history.length).toBe(HISTORY);
  expect(msg.history[0].t).toBe(5);
  expect(msg.history[HISTORY - 1].t).toBe(HISTORY + 4);
  expect(JSON.parse(new MetricsHistory().message())).toEqual({ history: [] });
});

test('details are read on request, not carried in snapshots; empty and failing ones are left out', () => {
  const m = new Metrics();
  m.detail('load', () => ({ layers: [0], counts: [[1, 2]] }));
  m.detail('nothing', () => null);
  m.detail('broken', () => { throw new Error('gone'); });
  expect(m.readDetails()).toEqual({ load: { layers: [0], counts: [[1, 2]] } });
  expect(m.snapshot()).not.toHaveProperty('load');
});
