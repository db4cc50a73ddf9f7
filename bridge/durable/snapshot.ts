/**
 * Snapshots: the whole store in one file, written atomically (temp file, fsync, rename,
 * directory fsync). The file is a sequence of framed records (./record): a JSON header, the
 * live scrolls as Arrow IPC streams in the wire's scrolls schema (coords, kind, dtype,
 * shape, value; at most {@link CHUNK_ROWS} rows or about {@link CHUNK_BYTES} bytes each),
 * and an end record with the row count. A file missing its end record or failing a checksum
 * is refused, never half-loaded.
 */
import { readFileSync } from 'node:fs';
import { DIMS } from '../../engine/types';
import { VtpuError } from '../../engine/errors';
import type { Store } from '../../engine/store/store';
import { gatherEntries, META, M_LEN } from '../../engine/store/reader';
import { decodeScrolls, encodeScrolls } from '../arrow';
import { writeAll } from './log';
import { frame, scanRecords } from './record';
import { inDir, snapshotName, writeAtomic } from './files';

/** Rows per Arrow chunk. */
export const CHUNK_ROWS = 65_536;
/** Value bytes after which a chunk is closed early (Arrow offsets are 32-bit). */
export const CHUNK_BYTES = 64 << 20;

const HEAD = 0x48; // 'H'
const CHUNK = 0x43; // 'C'
const END = 0x45; // 'E'

/** Writes snapshot `seq` of `store` into `dir`; returns the rows written. */
export function writeSnapshot(dir: string, seq: number, store: Store): number {
  const v = store.view();
  let rows = 0;
  writeAtomic(dir, snapshotName(seq), (fd) => {
    let pos = 0;
    const put = (type: number, body: Uint8Array) => {
      pos += writeAll(fd, [frame(Uint8Array.of(type), body)], pos);
    };
    put(HEAD, Buffer.from(JSON.stringify({ format: 'vtpu-snapshot', version: 1, seq, entries: store.size })));
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

/** Loads snapshot `seq` from `dir` into `store`; returns the rows loaded. Throws on any damage. */
export function loadSnapshot(dir: string, seq: number, store: Store): number {
  const name = snapshotName(seq);
  const scan = scanRecords(readFileSync(inDir(dir, name)));
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
  return rows;
}
