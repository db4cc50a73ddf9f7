/**
 * A minimal ONNX model encoder (protobuf wire format, onnx.proto field numbers): enough to
 * build small float graphs in code and hand them to ONNX Runtime as bytes, without a
 * protobuf library. Dims may be symbolic (strings) so one session serves every shape.
 */

/** ONNX tensor element types used here. */
export const enum Elem { Float = 1, Uint8 = 2, Int8 = 3, Int64 = 7 }

/** An attribute value: int, float, list of ints, or string. */
export type AttrValue = number | { f: number } | number[] | string;

/** One node: op type, inputs, outputs, attributes (ints by default; `{f}` for a float). */
export interface NodeSpec {
  op: string;
  /** Operator domain ('' = ONNX; e.g. 'com.microsoft' for ONNX Runtime contrib ops). */
  domain?: string;
  inputs: string[];
  outputs: string[];
  attrs?: Record<string, AttrValue>;
}

/** A graph input or output: name, element type, dims (number = fixed, string = symbolic). */
export interface ValueSpec {
  name: string;
  elem: Elem;
  dims: (number | string)[];
}

/** A graph initializer: a constant tensor baked into the model (raw little-endian bytes). */
export interface InitSpec {
  name: string;
  elem: Elem;
  dims: number[];
  data: Uint8Array;
}

/**
 * Protobuf writer: fields appended in order. Small fields go to a number buffer; large
 * byte fields (weights) and nested messages are kept as chunks and copied once in done().
 */
class Pb {
  private parts: number[] = [];
  private readonly chunks: Uint8Array[] = [];
  private size = 0;

  /** Moves the small-field buffer into the chunk list. */
  private flush(): void {
    if (this.parts.length) {
      this.chunks.push(Uint8Array.from(this.parts));
      this.size += this.parts.length;
      this.parts = [];
    }
  }

  private chunk(b: Uint8Array): void {
    this.flush();
    this.chunks.push(b);
    this.size += b.length;
  }

  private varint(v: number | bigint): void {
    let x = BigInt.asUintN(64, BigInt(v));
    while (x >= 0x80n) {
      this.parts.push(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    this.parts.push(Number(x));
  }

  int(field: number, v: number): this {
    this.varint((field << 3) | 0);
    this.varint(v);
    return this;
  }

  float(field: number, v: number): this {
    this.varint((field << 3) | 5);
    this.parts.push(...new Uint8Array(Float32Array.of(v).buffer));
    return this;
  }

  bytes(field: number, b: Uint8Array | number[]): this {
    this.varint((field << 3) | 2);
    this.varint(b.length);
    if (b.length > 256 && b instanceof Uint8Array) this.chunk(b);
    else for (const x of b) this.parts.push(x);
    return this;
  }

  str(field: number, s: string): this {
    return this.bytes(field, Array.from(new TextEncoder().encode(s)));
  }

  msg(field: number, m: Pb): this {
    m.flush();
    this.varint((field << 3) | 2);
    this.varint(m.size);
    for (const c of m.chunks) this.chunk(c);
    return this;
  }

  done(): Uint8Array {
    this.flush();
    if (this.chunks.length === 1) return this.chunks[0];
    const out = new Uint8Array(this.size);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}

/** AttributeProto: name 1, f 2, i 3, s 4, ints 8, type 20 (FLOAT 1, INT 2, STRING 3, INTS 7). */
function attribute(name: string, v: AttrValue): Pb {
  const a = new Pb().str(1, name);
  if (typeof v === 'number') return a.int(3, v).int(20, 2);
  if (typeof v === 'string') return a.str(4, v).int(20, 3);
  if (Array.isArray(v)) {
    for (const x of v) a.int(8, x);
    return a.int(20, 7);
  }
  return a.float(2, v.f).int(20, 1);
}

/** ValueInfoProto{name 1, type 2: TypeProto{tensor_type 1: {elem_type 1, shape 2: {dim 1: {dim_value 1 | dim_param 2}}}}}. */
function valueInfo(v: ValueSpec): Pb {
  const shape = new Pb();
  for (const d of v.dims) shape.msg(1, typeof d === 'number' ? new Pb().int(1, d) : new Pb().str(2, d));
  const tensorType = new Pb().int(1, v.elem).msg(2, shape);
  return new Pb().str(1, v.name).msg(2, new Pb().msg(1, tensorType));
}

/** TensorProto{dims 1, data_type 2, name 8, raw_data 9}. */
function tensorProto(t: InitSpec): Pb {
  const p = new Pb();
  for (const d of t.dims) p.int(1, d);
  return p.int(2, t.elem).str(8, t.name).bytes(9, t.data);
}

/**
 * Encodes a ModelProto (ir_version 1 = 8, opset_import 8, graph 7) with one graph
 * (node 1, name 2, initializer 5, input 11, output 12): the default domain at `opset`,
 * plus version 1 of every other domain the nodes use. Initializer bytes are referenced,
 * not copied, until the final buffer is assembled (the whole model must stay under 2 GiB).
 */
export function encodeModel(
  name: string, nodes: NodeSpec[], inputs: ValueSpec[], outputs: ValueSpec[], opset = 17, initializers: InitSpec[] = [],
): Uint8Array {
  const g = new Pb();
  nodes.forEach((n, i) => {
    // NodeProto: input 1, output 2, name 3, op_type 4, attribute 5.
    const node = new Pb();
    for (const x of n.inputs) node.str(1, x);
    for (const x of n.outputs) node.str(2, x);
    node.str(3, `${n.op}_${i}`).str(4, n.op);
    if (n.domain) node.str(7, n.domain);
    for (const [k, v] of Object.entries(n.attrs ?? {})) node.msg(5, attribute(k, v));
    g.msg(1, node);
  });
  g.str(2, name);
  for (const t of initializers) g.msg(5, tensorProto(t));
  for (const v of inputs) g.msg(11, valueInfo(v));
  for (const v of outputs) g.msg(12, valueInfo(v));
  const model = new Pb().int(1, 8).str(2, 'vtpu').msg(7, g).msg(8, new Pb().str(1, '').int(2, opset));
  for (const d of new Set(nodes.map((n) => n.domain ?? '').filter((d) => d !== ''))) model.msg(8, new Pb().str(1, d).int(2, 1));
  return model.done();
}
