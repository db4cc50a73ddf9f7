/**
 * A cheap structural check of an Arrow IPC stream before arrow-js reads it. arrow-js trusts
 * the flatbuffer vector lengths in message metadata: a 500-byte body claiming ten million
 * buffers keeps the main thread busy for seconds (found by test/py/test_fuzz.py). Here every
 * message's metadata and body must lie inside the bytes, and every vector the decoder walks
 * (record batch nodes, buffers, variadic counts; schema fields, field children, metadata
 * key-values) must fit inside its metadata. Anything else is E_FRAME.
 */
import { VtpuError } from '../engine/errors';

const MAX_NESTING = 64;

function bad(reason: string): never {
  throw new VtpuError('E_FRAME', `malformed Arrow stream: ${reason}`);
}

/** A flatbuffer over one message's metadata, every read bounds-checked. */
class Flat {
  private readonly dv: DataView;
  constructor(private readonly b: Uint8Array) {
    this.dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }

  private u32(at: number): number {
    if (at < 0 || at + 4 > this.b.length) bad('metadata offset outside the metadata');
    return this.dv.getUint32(at, true);
  }

  /** Position of the root table. */
  root(): number {
    return this.u32(0);
  }

  /** Absolute position of field `f` of the table at `t`, or -1 when absent. */
  field(t: number, f: number): number {
    const vt = t - this.dv.getInt32(this.check(t, 4), true);
    const vsize = this.dv.getUint16(this.check(vt, 2), true);
    const at = 4 + 2 * f;
    if (at + 2 > vsize) return -1;
    const off = this.dv.getUint16(this.check(vt + at, 2), true);
    return off === 0 ? -1 : t + off;
  }

  /** The table a field points at, or -1. */
  table(t: number, f: number): number {
    const p = this.field(t, f);
    return p < 0 ? -1 : p + this.u32(p);
  }

  /** [start, length] of the vector a field points at (length checked against the bytes), or undefined. */
  vector(t: number, f: number, elem: number): [number, number] | undefined {
    const p = this.field(t, f);
    if (p < 0) return undefined;
    const v = p + this.u32(p);
    const n = this.u32(v);
    if (v + 4 + n * elem > this.b.length) bad(`a vector of ${n} entries does not fit its ${this.b.length}-byte metadata`);
    return [v + 4, n];
  }

  /** Table positions of a vector of tables. */
  tables(t: number, f: number): number[] {
    const v = this.vector(t, f, 4);
    if (!v) return [];
    const out: number[] = [];
    for (let i = 0; i < v[1]; i++) out.push(v[0] + 4 * i + this.u32(v[0] + 4 * i));
    return out;
  }

  /** Int64 field value as a number (0 when absent). */
  long(t: number, f: number): number {
    const p = this.field(t, f);
    return p < 0 ? 0 : Number(this.dv.getBigInt64(this.check(p, 8), true));
  }

  /** Uint8 field value (0 when absent). */
  byte(t: number, f: number): number {
    const p = this.field(t, f);
    return p < 0 ? 0 : this.b[this.check(p, 1)];
  }

  private check(at: number, n: number): number {
    if (at < 0 || at + n > this.b.length) bad('metadata offset outside the metadata');
    return at;
  }
}

// Message fields: header_type 1, header 2, bodyLength 3, custom_metadata 4.
// Header types: 1 Schema, 2 DictionaryBatch, 3 RecordBatch.
function checkFields(fb: Flat, fields: number[], depth: number): void {
  if (depth > MAX_NESTING) bad('fields nested too deep');
  for (const f of fields) {
    fb.vector(f, 0, 1); // name
    fb.tables(f, 6); // custom_metadata
    checkFields(fb, fb.tables(f, 5), depth + 1); // children
  }
}

function checkMessage(meta: Uint8Array, bodyRoom: number): number {
  const fb = new Flat(meta);
  const m = fb.root();
  const body = fb.long(m, 3);
  if (!(body >= 0 && body <= bodyRoom)) bad(`message body of ${body} bytes, ${bodyRoom} left`);
  fb.tables(m, 4);
  const type = fb.byte(m, 1);
  const h = fb.table(m, 2);
  if (h < 0) return body;
  if (type === 1) {
    checkFields(fb, fb.tables(h, 1), 0);
    fb.tables(h, 2);
  } else if (type === 3 || type === 2) {
    const rb = type === 3 ? h : fb.table(h, 1);
    if (rb >= 0) {
      fb.vector(rb, 1, 16);
      fb.vector(rb, 2, 16);
      fb.vector(rb, 4, 8);
    }
  }
  return body;
}

/** Throws E_FRAME unless every message of the stream is structurally sound (see the file comment). */
export function checkArrowFraming(bytes: Uint8Array): void {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let o = 0;
  while (o + 8 <= bytes.length) {
    // Continuation marker then length; the pre-0.15 format has the length alone.
    let len = dv.getInt32(o, true);
    let at = o + 4;
    if (len === -1) {
      len = dv.getInt32(o + 4, true);
      at = o + 8;
    }
    if (len === 0) return;
    if (len < 0 || at + len > bytes.length) bad(`message metadata of ${len} bytes at ${o} runs past the end`);
    const body = checkMessage(bytes.subarray(at, at + len), bytes.length - (at + len));
    o = at + len + body;
  }
}
