/**
 * Snapshots: the whole store in one file, written atomically (temp file, fsync, rename,
 * directory fsync). The file is `VTPUSNP2`, then framed records (./record, numbered from
 * 0): a JSON header (with `records`, the sequence number of the last logged write it holds), the
 * live scrolls as Arrow IPC streams in the wire's scrolls schema (coords, kind, dtype,
 * shape, value; at most {@link CHUNK_ROWS} rows or about {@link CHUNK_BYTES} bytes each),
 * and an end record with the row count. A file missing its end record or failing a checksum
 * is refused, never half-loaded. Format 1 files (no magic, unnumbered records) are still read.
 */
import { readFileSync } from 'node:fs';
import { DIMS } from '../../engine/types';
import { VtpuError } from '../../engine/errors';
import type { Store } from '../../engine/store/store';
import { gatherEntries, META, M_LEN } from '../../engine/store/reader';
import { decodeScrolls, encodeScrolls } from '../arrow';
import { writeAll } from './log';
import { frame, scanRecords, scanRecordsV1 } from './record';
import { inDir, snapshotName, writeAtomic } from './files';

/** Rows per Arrow chunk. */
export const CHUNK_ROWS = 65_536;
/** Value bytes after which a chunk is closed early (Arrow offsets are 32-bit). */
export const CHUNK_BYTES = 64 << 20;

/** First bytes of a snapshot file. */
export const SNAPSHOT_MAGIC = Buffer.from('VTPUSNP2');
const HEAD = 0x48; // 'H'
const CHUNK = 0x43; // 'C'
const END = 0x45; // 'E'

/**
 * Writes snapshot `seq` of `store` into `dir`; `records` is the sequence number of the last
 * logged write the store holds (recovery checks the next log starts right after it).
 * Returns the rows written.
 */
export function writeSnapshot(dir: string, seq: number, store: Store, records: number): number {
  const v = store.view();
  let rows = 0;
  writeAtomic(dir, snapshotName(seq), (fd) => {
    let pos = writeAll(fd, [SNAPSHOT_MAGIC], 0);
    let index = 0;
    const put = (type: number, body: Uint8Array) => {
      pos += writeAll(fd, [frame(index++, Uint8Array.of(type), body)], pos);
    };
    put(HEAD, Buffer.from(JSON.stringify({ format: 'vtpu-snapshot', version: 2, seq, records, entries: store.size })));
    // A chunk is one putBatch at recovery, so it must fit the store's batch limit.
    const most = Math.min(CHUNK_ROWS, store.maxBatch);
    const ids = new Int32Array(most);
    let m = 0;
    let bytes = 0;
    const flush = () => {
      const b = gatherEntries(v, ids, m, new Uint32Array(m * DIMS), true, true);
      put(CHUNK, encodeScrolls(b));
      rows += m;
      m = bytes = 0;
    };
    for (let id = 0; id < v.count; id++) {
      if (v.kind[id] === 0) continue;
      ids[m++] = id;
      bytes += v.meta[id * META + M_LEN];
      if (m === most || bytes >= CHUNK_BYTES) flush();
    }
    if (m > 0) flush();
    put(END, Buffer.from(JSON.stringify({ entries: rows })));
  });
  return rows;
}

/** What {@link loadSnapshot} loaded. */
export interface SnapshotLoad {
  rows: number;
  /** Sequence number of the last logged write the snapshot holds (undefined in format 1). */
  records?: number;
}

/** Loads snapshot `seq` from `dir` into `store`. Throws on any damage, naming the byte. */
export function loadSnapshot(dir: string, seq: number, store: Store): SnapshotLoad {
  const name = snapshotName(seq);
  const bytes = readFileSync(inDir(dir, name));
  const v2 = bytes.subarray(0, SNAPSHOT_MAGIC.length).equals(SNAPSHOT_MAGIC);
  const scan = v2 ? scanRecords(bytes, SNAPSHOT_MAGIC.length, 0) : scanRecordsV1(bytes);
  const bad = (why: string) => new VtpuError('E_INTERNAL', `snapshot ${name} is damaged: ${why}`);
  if (scan.torn) throw bad(scan.torn);
  const [head, ...rest] = scan.payloads;
  const last = rest.pop();
  if (head?.[0] !== HEAD || last?.[0] !== END) throw bad('header or end record missing');
  let rows = 0;
  for (const p of rest) {
    if (p[0] !== CHUNK) throw bad(`unexpected record type ${p[0]}`);
    const b = decodeScrolls(p.subarray(1));
    store.putBatch(b);
    rows += b.n;
  }
  const end = JSON.parse(Buffer.from(last.subarray(1)).toString()) as { entries?: unknown };
  if (end.entries !== rows) throw bad(`end record says ${String(end.entries)} rows, chunks hold ${rows}`);
  const header = JSON.parse(Buffer.from(head.subarray(1)).toString()) as { records?: unknown; seq?: unknown };
  if (v2 && header.seq !== seq) throw bad(`it holds snapshot ${String(header.seq)} (renamed or copied?)`);
  if (v2 && !Number.isSafeInteger(header.records)) throw bad('its header has no record number');
  return { rows, records: v2 ? (header.records as number) : undefined };
}
