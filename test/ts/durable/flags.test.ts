import { parseServeFlags } from '../../../bridge/cli';

test('serve --data, --fsync and --snapshot-every', () => {
  expect(parseServeFlags(['--data', 'd']).durable).toEqual({ dir: 'd' });
  expect(parseServeFlags(['--data=d', '--fsync', '10', '--snapshot-every', '30s']).durable)
    .toEqual({ dir: 'd', fsync: 10, snapshotEvery: { seconds: 30 } });
  expect(parseServeFlags(['--data', 'd', '--fsync=always', '--snapshot-every=500']).durable)
    .toEqual({ dir: 'd', fsync: 'always', snapshotEvery: { writes: 500 } });
  expect(parseServeFlags(['--data', 'd', '--recover=truncate']).durable).toEqual({ dir: 'd', recover: 'truncate' });
  expect(parseServeFlags([]).durable).toBeUndefined();
});

test.each([
  [['--fsync', '10'], /--fsync needs --data DIR/],
  [['--data', 'd', '--fsync', '0'], /positive whole number/],
  [['--data', 'd', '--fsync', 'sometimes'], /positive whole number/],
  [['--data', 'd', '--snapshot-every', '10m'], /N \(writes\) or Ns/],
  [['--data', ''], /must name a directory/],
  [['--data'], /needs a value/],
  [['--data', 'd', '--recover', 'skip'], /--recover must be refuse or truncate/],
  [['--recover', 'truncate'], /needs --data/],
])('bad durable flags %p', (args, msg) => {
  expect(() => parseServeFlags(args)).toThrow(msg);
});
