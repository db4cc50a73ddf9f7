import { appendFileSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Store } from '../../../engine/store/store';
import { Journal } from '../../../bridge/durable/journal';
import { frame } from '../../../bridge/durable/record';
import { inDir, logName, processIdentity } from '../../../bridge/durable/files';
import * as arrow from '../../../bridge/arrow';
import { coord, dump, putText, tensorBatch, tempDir } from './helpers';

let t: ReturnType<typeof tempDir>;
beforeEach(() => { t = tempDir(); });
afterEach(() => t.done());

/** Opens a fresh store on the directory (recovering it). */
async function open(opts: Partial<Parameters<typeof Journal.open>[1]> = {}): Promise<{ s: Store; j: Journal }> {
  const s = new Store();
  const j = await Journal.open(s, { dir: t.dir, ...opts });
  return { s, j };
}

const logs = () => readdirSync(t.dir).filter((f) => f.endsWith('.vlog')).sort();
const snaps = () => readdirSync(t.dir).filter((f) => f.endsWith('.vsnap')).sort();

test('writes survive a reopen through the log alone', async () => {
  const a = await open();
  putText(a.s, 1, 1, 'one');
  a.s.putBatch(tensorBatch(2, 100, 3));
  a.s.delete(coord(2, 7));
  const want = dump(a.s);
  a.j.close();
  const b = await open();
  expect(b.j.recovery).toMatchObject({ snapshotRows: 0, logRecords: 3, tornBytes: 0 });
  expect(dump(b.s)).toEqual(want);
  b.j.close();
});

test('snapshots bound the log: old files pruned, snapshot + later log replayed', async () => {
  const a = await open({ snapshotEvery: { writes: 10 } });
  for (let i = 1; i <= 25; i++) {
    putText(a.s, 1, i, `v${i}`);
    await new Promise((r) => setImmediate(r)); // let a queued snapshot run between writes
  }
  expect(snaps()).toHaveLength(1);
  expect(logs().length).toBeLessThanOrEqual(2);
  const want = dump(a.s);
  a.j.close();
  const b = await open();
  expect(b.j.recovery.snapshotRows).toBe(20);
  expect(b.j.recovery.logRecords).toBe(5);
  expect(dump(b.s)).toEqual(want);
  b.j.close();
});

test('a torn final record is dropped and cut off; the write before it is kept', async () => {
  const a = await open();
  putText(a.s, 1, 1, 'acknowledged');
  a.j.close();
  const log = inDir(t.dir, logs()[logs().length - 1]);
  const whole = frame(Buffer.from('a record that was being written'));
  appendFileSync(log, whole.subarray(0, whole.length - 3));
  const size = statSync(log).size;
  const b = await open();
  expect(b.j.recovery.tornBytes).toBe(whole.length - 3);
  expect(statSync(log).size).toBe(size - (whole.length - 3));
  expect(dump(b.s)).toEqual(new Map([['1.1.1.1.1.1.1.1.1', `1/0//${Buffer.from('acknowledged').toString('hex')}`]]));
  putText(b.s, 1, 2, 'after');
  b.j.close();
  const c = await open();
  expect(c.s.size).toBe(2);
  c.j.close();
});

test('a damaged log followed by later logs is refused, not skipped', async () => {
  const a = await open();
  putText(a.s, 1, 1, 'x');
  a.j.close();
  const first = inDir(t.dir, logs()[0]);
  const b = await open(); // starts the next log
  putText(b.s, 1, 2, 'y');
  b.j.close();
  const bytes = readFileSync(first);
  bytes[bytes.length - 1] ^= 1;
  writeFileSync(first, bytes);
  await expect(open()).rejects.toThrow(/damaged .* later logs exist/);
});

test('a damaged snapshot is refused', async () => {
  const a = await open({ snapshotEvery: { writes: 2 } });
  putText(a.s, 1, 1, 'x');
  putText(a.s, 1, 2, 'y');
  await new Promise((r) => setImmediate(r));
  a.j.close();
  const snap = inDir(t.dir, snaps()[0]);
  const bytes = readFileSync(snap);
  bytes[Math.floor(bytes.length / 2)] ^= 0xff;
  writeFileSync(snap, bytes);
  await expect(open()).rejects.toThrow(/snapshot .* is damaged/);
});

test('a leftover temp snapshot is ignored and removed', async () => {
  const a = await open();
  putText(a.s, 1, 1, 'x');
  a.j.close();
  writeFileSync(join(t.dir, 'snapshot-000000000009.vsnap.tmp'), 'half written');
  const b = await open();
  expect(b.s.size).toBe(1);
  expect(readdirSync(t.dir).some((f) => f.endsWith('.tmp'))).toBe(false);
  b.j.close();
});

test('group commit (fsync every N ms) logs every write before it returns', async () => {
  const a = await open({ fsync: 5 });
  for (let i = 1; i <= 50; i++) putText(a.s, 1, i, `v${i}`);
  // No close: what a killed process leaves is what was written so far.
  const b = new Store();
  const copy = tempDir();
  try {
    for (const f of readdirSync(t.dir)) if (f !== 'LOCK') writeFileSync(join(copy.dir, f), readFileSync(join(t.dir, f)));
    const j = await Journal.open(b, { dir: copy.dir });
    expect(b.size).toBe(50);
    j.close();
  } finally {
    copy.done();
    a.j.close();
  }
});

test('one directory, one sidecar: a live lock is refused', async () => {
  const a = await open();
  await expect(open()).rejects.toThrow(/already open in this process/);
  a.j.close();
  (await open()).j.close();
});

test('a LOCK left by a live process is refused; one left by a dead process is taken over', async () => {
  writeFileSync(join(t.dir, 'LOCK'), `${process.ppid}\n${processIdentity(process.ppid)}\n`);
  await expect(open()).rejects.toThrow(/in use by process/);
  writeFileSync(join(t.dir, 'LOCK'), '999999999\n');
  (await open()).j.close();
});

test('a LOCK whose pid now belongs to another process is stale; one that cannot be proven stale says how to clear it', async () => {
  // The pid is alive (our parent) but started at another time than the LOCK records: a reused pid.
  writeFileSync(join(t.dir, 'LOCK'), `${process.ppid}\nnot-this-boot:1\n`);
  const a = await open();
  expect(readFileSync(join(t.dir, 'LOCK'), 'utf8')).toBe(`${process.pid}\n${processIdentity(process.pid)}\n`);
  a.j.close();
  // A LOCK without an identity (an older sidecar's) naming a live pid cannot be proven stale.
  writeFileSync(join(t.dir, 'LOCK'), `${process.ppid}\n`);
  await expect(open()).rejects.toThrow(new RegExp(`delete ${join(t.dir, 'LOCK')}`));
});

test('a snapshot that fails (e.g. a full disk) removes its temp file at once and loses nothing', async () => {
  const a = await open();
  for (let i = 1; i <= 5; i++) putText(a.s, 1, i, `v${i}`);
  const warn = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
  const fail = jest.spyOn(arrow, 'encodeScrolls').mockImplementation(() => { throw new Error('ENOSPC: no space left on device, write'); });
  let warnings: unknown[][];
  try {
    a.j.snapshot();
  } finally {
    warnings = warn.mock.calls.slice();
    fail.mockRestore();
    warn.mockRestore();
  }
  expect(warnings).toEqual([[expect.stringMatching(/snapshot .* failed: ENOSPC/)]]);
  expect(readdirSync(t.dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  expect(snaps()).toEqual([]);
  putText(a.s, 1, 6, 'v6');
  const want = dump(a.s);
  a.j.close();
  const b = await open();
  expect(dump(b.s)).toEqual(want);
  b.j.close();
});

test('options are checked at the boundary', async () => {
  await expect(Journal.open(new Store(), { dir: t.dir, fsync: 0 })).rejects.toThrow(TypeError);
  await expect(Journal.open(new Store(), { dir: t.dir, snapshotEvery: { writes: -1 } })).rejects.toThrow(/snapshotEvery/);
  await expect(Journal.open(new Store(), { dir: '' })).rejects.toThrow(/durable.dir/);
});

test('data file names cannot leave the directory', () => {
  for (const bad of ['..', '../x', '/etc/passwd', 'a/b', '']) expect(() => inDir(t.dir, bad)).toThrow(/leave the data directory/);
  expect(inDir(t.dir, logName(3))).toBe(join(t.dir, 'log-000000000003.vlog'));
});

test('snapshot chunks fit the store batch limit, so a small --max-batch still recovers', async () => {
  const s = new Store({ maxBatch: 7 });
  const j = await Journal.open(s, { dir: t.dir, snapshotEvery: { writes: 30 } });
  for (let i = 1; i <= 30; i++) putText(s, 1, i, `v${i}`);
  j.snapshot();
  j.close();
  const s2 = new Store({ maxBatch: 7 });
  const j2 = await Journal.open(s2, { dir: t.dir });
  expect(j2.recovery.snapshotRows).toBe(30);
  expect(dump(s2)).toEqual(dump(s));
  j2.close();
});
