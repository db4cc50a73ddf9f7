/**
 * Arrow IPC stream codecs for the three body schemas in protocol.json: coords, scrolls
 * and shards. Decoding returns typed-array views into the received bytes (no per-row
 * work beyond one validation pass over offsets); encoding wraps the caller's arrays in
 * arrow-js Data and lets the stream writer lay them out (one copy into the frame).
 */
import {
  Field, RecordBatch, RecordBatchReader, RecordBatchStreamWriter, Schema, Struct, Table, makeData, tableToIPC,
} from 'apache-arrow';
import type { Binary, Data, FixedSizeList, List, Uint32, Uint8 } from 'apache-arrow';
import { DIMS, type ScrollBatch } from '../engine/types';
import { VtpuError } from '../engine/errors';
import { checkArrowFraming } from './arrow_guard';
import { BODY_FIELDS, field, specOf, typeOf, typeSpelling, type BodySchema } from './arrow_schema';

/** Which body schema a decoded stream matched. */
export type ArrowBody =
  | { schema: 'coords'; coords: Uint32Array }
  | { schema: 'scrolls'; scrolls: ScrollBatch }
  | { schema: 'shards'; shards: Uint32Array };

const EOS = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
// Types from protocol.json's Arrow schemas (bridge/arrow_schema.ts).
const u8 = () => typeOf('scrolls', 'kind') as Uint8;
const u32 = () => typeOf('shards', 'shard') as Uint32;
const binary = () => typeOf('scrolls', 'value') as Binary;
const coordsType = () => typeOf('coords', 'coords') as FixedSizeList<Uint32>;
const shapeType = () => typeOf('scrolls', 'shape') as List<Uint32>;

// ---------------------------------------------------------------------------- encode

/** Encodes n*9 uint32 components as an Arrow "coords" stream. */
export function encodeCoords(coords: Uint32Array): Uint8Array {
  const n = rowsOf(coords);
  return writeStream([field('coords', 'coords')], n, [coordsData(coords, n)]);
}

/** Encodes a ScrollBatch as an Arrow "scrolls" stream (with coords when the batch has them). */
export function encodeScrolls(b: ScrollBatch): Uint8Array {
  return tableToIPC(scrollsTable(b), 'stream');
}

/**
 * The same stream as {@link encodeScrolls} in its pieces, not joined: the writer's
 * metadata and views of the batch's own arrays. A reply copied into a shared-memory
 * block is then copied once, not joined into a fresh buffer first. Copy the pieces
 * before the batch's arrays change.
 */
export function encodeScrollsParts(b: ScrollBatch): Uint8Array[] {
  const t = scrollsTable(b);
  // arrow-js keeps a finished stream's chunks in its byte queue (the pinned 21.x layout);
  // anything else falls back to the joined stream.
  const w = RecordBatchStreamWriter.writeAll(t) as unknown as { _sink?: { _values?: unknown } };
  const parts = w._sink?._values;
  return Array.isArray(parts) && parts.every((p) => p instanceof Uint8Array) ? (parts as Uint8Array[]) : [tableToIPC(t, 'stream')];
}

/** A ScrollBatch as an arrow-js Table of the "scrolls" schema (views of its arrays, no copies). */
export function scrollsTable(b: ScrollBatch): Table {
  const n = b.n;
  const fields: Field[] = [];
  const cols: Data[] = [];
  if (b.coords) {
    fields.push(field('scrolls', 'coords'));
    cols.push(coordsData(b.coords, n));
  }
  fields.push(field('scrolls', 'kind'), field('scrolls', 'dtype'), field('scrolls', 'shape'), field('scrolls', 'value'));
  cols.push(
    makeData({ type: u8(), length: n, nullCount: 0, data: b.kind.subarray(0, n) }),
    makeData({ type: u8(), length: n, nullCount: 0, data: b.dtype.subarray(0, n) }),
    makeData({
      type: shapeType(), length: n, nullCount: 0, valueOffsets: b.shapeOffsets.subarray(0, n + 1),
      child: makeData({ type: u32(), length: b.shapeValues.length, nullCount: 0, data: b.shapeValues }),
    }),
    makeData({ type: binary(), length: n, nullCount: 0, valueOffsets: b.valueOffsets.subarray(0, n + 1), data: b.values }),
  );
  return table(fields, n, cols);
}

/** Encodes one uint32 shard id per row as an Arrow "shards" stream. */
export function encodeShards(shards: Uint32Array): Uint8Array {
  const n = shards.length;
  return writeStream([field('shards', 'shard')], n, [makeData({ type: u32(), length: n, nullCount: 0, data: shards })]);
}

function coordsData(coords: Uint32Array, n: number): Data {
  const child = makeData({ type: u32(), length: n * DIMS, nullCount: 0, data: coords.subarray(0, n * DIMS) });
  return makeData({ type: coordsType(), length: n, nullCount: 0, child });
}

function table(fields: Field[], n: number, cols: Data[]): Table {
  const schema = new Schema(fields);
  const root = makeData({ type: new Struct(fields), length: n, nullCount: 0, children: cols });
  return new Table([new RecordBatch(schema, root)]);
}

function writeStream(fields: Field[], n: number, cols: Data[]): Uint8Array {
  return tableToIPC(table(fields, n, cols), 'stream');
}

function rowsOf(coords: Uint32Array): number {
  if (coords.length % DIMS !== 0) throw new VtpuError('E_INTERNAL', `coords length ${coords.length} is not a multiple of ${DIMS}`);
  return coords.length / DIMS;
}

// ---------------------------------------------------------------------------- decode

/** Decodes an Arrow "coords" stream into n*9 uint32 (a view when the stream has one batch). */
export function decodeCoords(bytes: Uint8Array): Uint32Array {
  const body = decodeBody(bytes);
  if (body.schema !== 'coords') throw frame(`expected an Arrow coords body, got ${body.schema}`);
  return body.coords;
}

/** Decodes an Arrow "scrolls" stream (coords optional) into a ScrollBatch. */
export function decodeScrolls(bytes: Uint8Array): ScrollBatch {
  const body = decodeBody(bytes);
  if (body.schema !== 'scrolls') throw frame(`expected an Arrow scrolls body, got ${body.schema}`);
  return body.scrolls;
}

/** Decodes an Arrow "shards" stream into one uint32 per row. */
export function decodeShards(bytes: Uint8Array): Uint32Array {
  const body = decodeBody(bytes);
  if (body.schema !== 'shards') throw frame(`expected an Arrow shards body, got ${body.schema}`);
  return body.shards;
}

/**
 * Decodes any of the three body schemas, telling them apart by field names. Every
 * structural fault — unreadable bytes, a missing end-of-stream marker (truncation),
 * unknown or mistyped fields, nulls, offsets outside their buffers — is E_FRAME.
 * Several record batches are concatenated.
 */
export function decodeBody(bytes: Uint8Array): ArrowBody {
  const { schema, batches } = readStream(bytes);
  const names = schema.fields.map((f) => f.name);
  const kind: BodySchema = names.includes('shard') ? 'shards' : names.includes('kind') ? 'scrolls' : 'coords';
  // protocol.json's fields of that schema: every required one, and the optional ones sent.
  const expect = BODY_FIELDS[kind].filter((f) => !f.optional || names.includes(f.name)).map((f) => f.name);
  if (names.length !== expect.length || expect.some((e) => !names.includes(e))) {
    throw frame(`Arrow fields [${names.join(', ')}] match no body schema (expected [${expect.join(', ')}])`);
  }
  const col = (b: RecordBatch, name: string) => b.data.children[names.indexOf(name)];
  for (const f of schema.fields) checkType(f);
  if (kind === 'coords') return { schema: kind, coords: concatU32(batches.map((b) => coordsOf(col(b, 'coords'), b.numRows))) };
  if (kind === 'shards') return { schema: kind, shards: concatU32(batches.map((b) => flat(col(b, 'shard'), b.numRows, 'shard') as Uint32Array)) };
  const parts = batches.map((b): ScrollBatch => {
    const n = b.numRows;
    const shape = listOf(col(b, 'shape'), n, 'shape');
    const value = listOf(col(b, 'value'), n, 'value');
    return {
      n,
      coords: names.includes('coords') ? coordsOf(col(b, 'coords'), n) : undefined,
      kind: flat(col(b, 'kind'), n, 'kind') as Uint8Array,
      dtype: flat(col(b, 'dtype'), n, 'dtype') as Uint8Array,
      shapeOffsets: shape.offsets, shapeValues: shape.values as Uint32Array,
      valueOffsets: value.offsets, values: value.values as Uint8Array,
    };
  });
  const scrolls = parts.length === 1 ? parts[0] : concatScrolls(parts, names.includes('coords'));
  if (!names.includes('coords')) delete scrolls.coords;
  return { schema: kind, scrolls };
}

function readStream(bytes: Uint8Array): { schema: Schema; batches: RecordBatch[] } {
  if (!(bytes instanceof Uint8Array)) throw frame('Arrow body must be bytes');
  const L = bytes.length;
  if (L < 16 || EOS.some((x, i) => bytes[L - 8 + i] !== x)) {
    throw frame('Arrow stream is truncated or not an Arrow IPC stream (no end-of-stream marker)');
  }
  checkArrowFraming(bytes);
  // arrow-js views buffers in place; typed arrays need their element alignment.
  const src = bytes.byteOffset % 8 === 0 ? bytes : new Uint8Array(bytes);
  try {
    const reader = RecordBatchReader.from(src);
    reader.open({ autoDestroy: false });
    if (!reader.isStream()) throw frame('Arrow body must be an IPC stream, not a file');
    const batches = [...reader];
    const schema = reader.schema;
    if (!schema || schema.fields.length === 0) throw frame('Arrow stream has no schema');
    if (reader.dictionaries.size > 0) throw frame('dictionary-encoded Arrow fields are not part of the protocol');
    return { schema, batches };
  } catch (e) {
    if (e instanceof VtpuError) throw e;
    throw frame(`unreadable Arrow stream: ${(e as Error)?.message ?? String(e)}`);
  }
}

function checkType(f: Field): void {
  const want = specOf(f.name);
  const got = typeSpelling(f.type);
  if (want === undefined || got !== want) throw frame(`Arrow field '${f.name}' has type ${got}, not the protocol's ${want ?? '(no such field)'}`);
}

function noNulls(d: Data, name: string): void {
  if (d.nullCount > 0) throw frame(`Arrow field '${name}' has ${d.nullCount} null(s); the protocol allows none`);
}

function flat(d: Data, n: number, name: string): Uint8Array | Uint32Array {
  noNulls(d, name);
  const v = d.values as Uint8Array | Uint32Array;
  if (!v || v.length < d.offset + n) throw frame(`Arrow field '${name}' is shorter than its ${n} rows`);
  return v.subarray(d.offset, d.offset + n);
}

function coordsOf(d: Data, n: number): Uint32Array {
  noNulls(d, 'coords');
  const c = d.children[0];
  noNulls(c, 'coords.item');
  const v = c.values as Uint32Array;
  const start = c.offset + d.offset * DIMS;
  if (!v || v.length < start + n * DIMS) throw frame(`Arrow field 'coords' is shorter than its ${n} rows`);
  return v.subarray(start, start + n * DIMS);
}

function listOf(d: Data, n: number, name: string): { offsets: Int32Array; values: Uint8Array | Uint32Array } {
  noNulls(d, name);
  const offs = d.valueOffsets as Int32Array;
  if (!offs || offs.length < d.offset + n + 1) throw frame(`Arrow field '${name}' offsets are shorter than its ${n} rows`);
  const offsets = offs.subarray(d.offset, d.offset + n + 1);
  let values: Uint8Array | Uint32Array;
  if (name === 'value') {
    values = (d.values as Uint8Array) ?? new Uint8Array(0);
  } else {
    const c = d.children[0];
    noNulls(c, `${name}.item`);
    values = ((c.values as Uint32Array) ?? new Uint32Array(0)).subarray(c.offset);
  }
  if (offsets[0] < 0 || offsets[n] > values.length) throw frame(`Arrow field '${name}' offsets point outside its data`);
  for (let i = 0; i < n; i++) {
    if (offsets[i + 1] < offsets[i]) throw frame(`Arrow field '${name}' offsets decrease at row ${i}`);
  }
  return { offsets, values };
}

function concatU32(parts: Uint32Array[]): Uint32Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint32Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

/** Concatenates ScrollBatches into one (offsets rebased to start at 0). */
export function concatScrolls(parts: ScrollBatch[], withCoords: boolean): ScrollBatch {
  const n = parts.reduce((s, p) => s + p.n, 0);
  const nShape = parts.reduce((s, p) => s + p.shapeOffsets[p.n] - p.shapeOffsets[0], 0);
  const nBytes = parts.reduce((s, p) => s + p.valueOffsets[p.n] - p.valueOffsets[0], 0);
  const out: ScrollBatch = {
    n, kind: new Uint8Array(n), dtype: new Uint8Array(n),
    coords: withCoords ? new Uint32Array(n * DIMS) : undefined,
    shapeOffsets: new Int32Array(n + 1), shapeValues: new Uint32Array(nShape),
    valueOffsets: new Int32Array(n + 1), values: new Uint8Array(nBytes),
  };
  let row = 0, sAt = 0, vAt = 0;
  for (const p of parts) {
    out.kind.set(p.kind.subarray(0, p.n), row);
    out.dtype.set(p.dtype.subarray(0, p.n), row);
    if (out.coords && p.coords) out.coords.set(p.coords.subarray(0, p.n * DIMS), row * DIMS);
    const s0 = p.shapeOffsets[0], v0 = p.valueOffsets[0];
    for (let i = 1; i <= p.n; i++) {
      out.shapeOffsets[row + i] = sAt + p.shapeOffsets[i] - s0;
      out.valueOffsets[row + i] = vAt + p.valueOffsets[i] - v0;
    }
    out.shapeValues.set(p.shapeValues.subarray(s0, p.shapeOffsets[p.n]), sAt);
    out.values.set(p.values.subarray(v0, p.valueOffsets[p.n]), vAt);
    sAt += p.shapeOffsets[p.n] - s0;
    vAt += p.valueOffsets[p.n] - v0;
    row += p.n;
  }
  return out;
}

function frame(reason: string): VtpuError {
  return new VtpuError('E_FRAME', reason);
}
