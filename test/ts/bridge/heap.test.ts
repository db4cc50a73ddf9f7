import { trimHeap } from '../../../bridge/heap';
import { addonMissing, loadAddon } from '../../../bridge/native';
import { ExpertRuntime } from '../../../engine/kernels/experts_runtime';
import { seededFloats as rand } from '../engine/helpers';

test('the heap addon is built (make build compiles native/heap.c) and trims', () => {
  expect(addonMissing('vtpu_heap')).toBe('');
  expect(typeof trimHeap()).toBe('boolean');
});

test('a missing addon is null with the reason, not an exception', () => {
  expect(loadAddon('vtpu_absent')).toBeNull();
  expect(addonMissing('vtpu_absent')).toMatch(/vtpu_absent\.node did not load .*make build/);
});

test('the expert runtime hands pages back after building sessions and after dropping a layer', async () => {
  let calls = 0;
  const rt = new ExpertRuntime({ threads: 1, reclaim: () => { calls++; } });
  const spec = { experts: 2, hidden: 8, intermediate: 4, format: 'q4' as const, group: 2 };
  await rt.load(0, spec, 0, 1, rand(2 * 4 * 8, 1), rand(8 * 4, 2), true);
  expect(calls).toBe(0); // half a group: nothing built, nothing freed
  await rt.load(0, spec, 1, 1, rand(2 * 4 * 8, 3), rand(8 * 4, 4), false);
  expect(calls).toBe(1);
  expect(rt.drop(0)).toBe(1);
  await new Promise((r) => setTimeout(r, 50)); // sessions release asynchronously
  expect(calls).toBe(2);
});
