import { appendFileSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Store } from '../../../engine/store/store';
import { Journal } from '../../../bridge/durable/journal';
import { FRAME_HEADER, checksum64, frame } from '../../../bridge/durable/record';
import { LOG_HEADER } from '../../../bridge/durable/log';
import { DataLossError } from '../../../bridge/durable/recover';
import { encodeWrite } from '../../../bridge/durable/codec';
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
  const whole = frame(2, Buffer.from('a record that was being written'));
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
  await expect(open()).rejects.toThrow(/log-000000000001.vlog is damaged at byte \d+: checksum mismatch .* 1 later log\(s\) \(log-000000000002.vlog\)/);
});

/** Writes `n` text scrolls 1.1.1/1.1.1/1.a.i in one session of the directory (one log, unless snapshots rotate it). */
async function session(a: number, n: number, opts: Partial<Parameters<typeof Journal.open>[1]> = {}): Promise<void> {
  const x = await open(opts);
  for (let i = 1; i <= n; i++) {
    putText(x.s, a, i, `value ${a}.${i}`);
    await new Promise((r) => setImmediate(r)); // a queued snapshot runs between writes
  }
  x.j.close();
}

test('a flipped bit in the middle of the newest log is corruption, not a torn tail: refused, naming file, byte and loss', async () => {
  await session(1, 400);
  const log = inDir(t.dir, logs()[0]);
  const bytes = readFileSync(log);
  bytes[Math.floor(bytes.length / 4)] ^= 0x10;
  writeFileSync(log, bytes);
  const err = await open().catch((e) => e);
  expect(err).toBeInstanceOf(DataLossError);
  expect(err.file).toBe(logs()[0]);
  expect(err.offset).toBeGreaterThan(0);
  expect(err.message).toMatch(new RegExp(`${logs()[0]} is damaged at byte ${err.offset}: checksum mismatch .*record \\d+ onward, intact records from \\d+ .* --recover=truncate`));
  expect(readFileSync(log)).toEqual(bytes); // refused: nothing was cut
});

test('a flipped length field mid-log is corruption too', async () => {
  await session(1, 50);
  const log = inDir(t.dir, logs()[0]);
  const bytes = readFileSync(log);
  const second = LOG_HEADER + bytes.readUInt32LE(LOG_HEADER) + FRAME_HEADER; // the second record's header
  bytes[second + 3] ^= 0x80; // its length now points far past the end
  writeFileSync(log, bytes);
  await expect(open()).rejects.toThrow(/damaged at byte \d+: short record .* intact records from 3/);
});

test('--recover=truncate keeps the intact prefix and a copy of every byte it cuts', async () => {
  await session(1, 400);
  const name = logs()[0];
  const bytes = readFileSync(inDir(t.dir, name));
  bytes[Math.floor(bytes.length / 4)] ^= 0x10;
  writeFileSync(inDir(t.dir, name), bytes);
  const offset = ((await open().catch((e) => e)) as DataLossError).offset;
  const a = await open({ recover: 'truncate' });
  const kept = a.s.size;
  expect(kept).toBeGreaterThan(50);
  expect(kept).toBeLessThan(150);
  expect(a.j.recovery.cut?.copies).toEqual([`${name}.cut-${offset}`]);
  expect(readFileSync(join(t.dir, `${name}.cut-${offset}`))).toEqual(bytes.subarray(offset));
  expect(readFileSync(inDir(t.dir, name))).toEqual(bytes.subarray(0, offset));
  putText(a.s, 2, 1, 'after the cut');
  a.j.close();
  const b = await open(); // the cut directory now starts normally
  expect(b.s.size).toBe(kept + 1);
  b.j.close();
});

test('a deleted newest snapshot is a gap: refused, naming the missing records', async () => {
  await session(1, 250, { snapshotEvery: { writes: 100 } });
  expect(snaps()).toEqual(['snapshot-000000000003.vsnap']);
  rmSync(join(t.dir, snaps()[0]));
  await expect(open()).rejects.toThrow(/log-000000000003.vlog is damaged at byte 0: records 1 to 200 are missing before it/);
  const a = await open({ recover: 'truncate' });
  expect(a.s.size).toBe(0); // nothing before the gap: an explicit, copied loss
  expect(a.j.recovery.cut?.copies).toEqual(['log-000000000003.vlog.cut-0']);
  a.j.close();
});

test('a deleted middle log is a gap: refused; truncate keeps what came before it', async () => {
  for (let a = 1; a <= 3; a++) await session(a, 100);
  expect(logs()).toHaveLength(3); // one log per session
  rmSync(join(t.dir, 'log-000000000002.vlog'));
  await expect(open()).rejects.toThrow(/log-000000000003.vlog is damaged at byte 0: records 101 to 200 are missing before it/);
  const a = await open({ recover: 'truncate' });
  expect(a.s.size).toBe(100);
  expect(a.j.recovery.cut?.copies).toEqual(['log-000000000003.vlog.cut-0']);
  a.j.close();
  const b = await open();
  expect(b.s.size).toBe(100);
  b.j.close();
});

test('a snapshot whose log is missing is refused', async () => {
  await session(1, 30, { snapshotEvery: { writes: 10 } });
  const snap = snaps()[0];
  const seq = Number(/(\d+)/.exec(snap)![1]);
  for (const l of logs()) rmSync(join(t.dir, l));
  await expect(open()).rejects.toThrow(new RegExp(`${logName(seq)} is damaged at byte 0: the file is missing`));
});

test('format 1 data directories (unnumbered records) still recover', async () => {
  const src = new Store();
  const payloads: Uint8Array[] = [];
  src.onWrite((w) => { payloads.push(Buffer.concat(encodeWrite(w))); });
  for (let i = 1; i <= 5; i++) putText(src, 1, i, `old ${i}`);
  const v1 = payloads.map((p) => Buffer.concat([Buffer.from(Uint32Array.of(p.length).buffer), checksum64(p), p]));
  writeFileSync(join(t.dir, logName(1)), Buffer.concat([Buffer.from('VTPULOG1'), ...v1]));
  const a = await open();
  expect(dump(a.s)).toEqual(dump(src));
  putText(a.s, 2, 1, 'new');
  a.j.close();
  const b = await open();
  expect(b.s.size).toBe(6);
  b.j.close();
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
