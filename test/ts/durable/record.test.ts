import { Store } from '../../../engine/store/store';
import { applyRecord, encodeWrite } from '../../../bridge/durable/codec';
import { FRAME_HEADER, checksum64, findRecord, frame, initRecords, scanRecords, scanRecordsV1 } from '../../../bridge/durable/record';
import { coord, dump, putText, tensorBatch } from './helpers';

beforeAll(() => initRecords());

describe('record framing', () => {
  const records = [Buffer.from('alpha'), Buffer.alloc(0), Buffer.from('a longer third record payload')];
  let bytes: Buffer;
  beforeAll(() => { bytes = Buffer.concat(records.map((r, i) => frame(7 + i, r))); });

  test('round trip', () => {
    const scan = scanRecords(bytes, 0, 7);
    expect(scan.torn).toBeUndefined();
    expect(scan.validBytes).toBe(bytes.length);
    expect(scan.nextSeq).toBe(10);
    expect(scan.payloads.map((p) => Buffer.from(p).toString())).toEqual(records.map((r) => r.toString()));
  });

  test('a record cut at any byte is dropped whole, earlier ones kept, and nothing intact follows it', () => {
    const lastStart = bytes.length - FRAME_HEADER - records[2].length;
    for (let cut = lastStart + 1; cut < bytes.length; cut++) {
      const scan = scanRecords(bytes.subarray(0, cut), 0, 7);
      expect(scan.payloads).toHaveLength(2);
      expect(scan.validBytes).toBe(lastStart);
      expect(scan.torn).toMatch(/short/);
      expect(findRecord(bytes.subarray(0, cut), scan.validBytes, scan.nextSeq)).toBeUndefined();
    }
  });

  test('a flipped bit anywhere in a record stops the scan there, and the next intact record is found past it', () => {
    const second = FRAME_HEADER + records[0].length;
    for (let at = 0; at < second * 8; at++) {
      const bad = Buffer.from(bytes);
      bad[at >> 3] ^= 1 << (at & 7);
      const scan = scanRecords(bad, 0, 7);
      expect(scan.payloads).toHaveLength(0);
      expect(scan.torn).toMatch(/checksum|short record|record \d+ where record 7 belongs/);
      expect(findRecord(bad, 0, 7)).toEqual({ at: second, seq: 8 });
    }
  });

  test('a record out of sequence stops the scan', () => {
    expect(scanRecords(bytes, 0, 6)).toMatchObject({ payloads: [], validBytes: 0, torn: 'record 7 where record 6 belongs, at byte 0' });
  });

  test('a length field pointing past the end is short, not read out of bounds', () => {
    const bad = Buffer.from(bytes);
    bad.writeUInt32LE(0xfffffff0, 0);
    expect(scanRecords(bad, 0, 7)).toMatchObject({ payloads: [], validBytes: 0, torn: expect.stringMatching(/short record/) });
  });

  test('format 1 records (no sequence numbers) are still read', () => {
    const v1 = Buffer.concat(records.map((r) => Buffer.concat([Buffer.from(Uint32Array.of(r.length).buffer), checksum64(r), r])));
    const scan = scanRecordsV1(v1);
    expect(scan.payloads.map((p) => Buffer.from(p).toString())).toEqual(records.map((r) => r.toString()));
    expect(scanRecordsV1(v1.subarray(0, v1.length - 1)).torn).toMatch(/short record/);
  });
});

describe('write codec', () => {
  test('every write kind replays to the same store', () => {
    const src = new Store();
    const dst = new Store();
    src.onWrite((w) => applyRecord(dst, Buffer.concat(encodeWrite(w))));
    putText(src, 1, 1, 'one');
    putText(src, 1, 2, 'two');
    src.put(coord(1, 3), 0, { kind: 3, dtype: 1, shape: [2, 1], bytes: new Uint8Array(new Float32Array([1.5, -2]).buffer) });
    src.putBatch(tensorBatch(2, 50, 7));
    putText(src, 1, 2, 'two, overwritten');
    src.delete(coord(1, 1));
    src.delete(coord(9, 9)); // absent: not logged, nothing to replay
    const del = new Uint32Array(18);
    del.set(coord(2, 1), 0);
    del.set(coord(2, 40), 9);
    src.deleteBatch(del);
    expect(dump(dst)).toEqual(dump(src));
    expect(src.size).toBe(2 + 48);
    src.clear();
    expect(dst.size).toBe(0);
  });

  test('a write the store refuses is not reported', () => {
    const s = new Store({ maxValueBytes: 4 });
    const seen: string[] = [];
    s.onWrite((w) => seen.push(w.op));
    expect(() => putText(s, 1, 1, 'too long')).toThrow(/over the limit/);
    expect(seen).toEqual([]);
  });

  test('a throwing observer aborts the write with the store unchanged', () => {
    const s = new Store();
    putText(s, 1, 1, 'kept');
    s.onWrite(() => { throw new Error('disk full'); });
    expect(() => putText(s, 1, 1, 'lost')).toThrow('disk full');
    expect(() => s.putBatch(tensorBatch(2, 3, 1))).toThrow('disk full');
    expect(() => s.delete(coord(1, 1))).toThrow('disk full');
    expect(Buffer.from(s.get(coord(1, 1))!.bytes).toString()).toBe('kept');
    expect(s.size).toBe(1);
  });
});
