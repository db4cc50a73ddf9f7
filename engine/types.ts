/**
 * Shared engine types. A coordinate is 9 uint32 components; batches are columnar so
 * they map onto the Arrow "scrolls" schema (protocol/protocol.json) without copies.
 */

/** Number of components in a coordinate (phext's library … scroll). */
export const DIMS = 9;

/** Value kinds, as on the wire. 0 marks a missing coordinate in a reply. */
export const enum Kind { Missing = 0, Text = 1, Bytes = 2, Tensor = 3 }

/** Tensor dtypes, as on the wire. */
export const enum DType { None = 0, Float32 = 1, Float16 = 2, BFloat16 = 3, Int32 = 4, Int64 = 5 }

/** One value ("scroll"). `shape` is empty unless kind is Tensor. */
export interface Scroll {
  kind: Kind;
  dtype: DType;
  shape: number[];
  bytes: Uint8Array;
}

/**
 * A columnar batch of scrolls: row i has coords[9i..9i+9) (when present), kind[i],
 * dtype[i], shape values shapeValues[shapeOffsets[i]..shapeOffsets[i+1]) and bytes
 * values[valueOffsets[i]..valueOffsets[i+1]).
 */
export interface ScrollBatch {
  n: number;
  coords?: Uint32Array;
  kind: Uint8Array;
  dtype: Uint8Array;
  shapeOffsets: Int32Array;
  shapeValues: Uint32Array;
  valueOffsets: Int32Array;
  values: Uint8Array;
}

/** One named input tensor as received: dtype, shape and its bytes (a view into the body). */
export interface RawTensor {
  dtype: DType;
  shape: number[];
  bytes: Uint8Array;
}

/**
 * The body a request carries, decided by its op from its params (never guessed from the
 * bytes): none; one raw frame; an Arrow coords or scrolls stream; named tensors in the raw
 * layout (`params.layout`); PROGRAM's one body per step that takes one.
 */
export type BodyKind = 'none' | 'raw' | 'coords' | 'scrolls' | 'layout' | 'many';

/** What an instruction receives: header params plus at most one body. */
export interface OpInput {
  params: Record<string, unknown>;
  /** Arrow "coords" body decoded: n*9 uint32. */
  coords?: Uint32Array;
  /** Arrow "scrolls" body decoded. */
  scrolls?: ScrollBatch;
  /** A raw single-value or phext body. */
  raw?: Uint8Array;
  /**
   * The caller takes replies that are views of the store (`OpOutput.rawIsView`) and copies
   * them before anything can write (the sidecar's server does, under its store gate).
   */
  replyViews?: boolean;
  /** The named tensors of `params.tensors` sent in the raw form (`params.layout`), by name. */
  tensors?: Map<string, RawTensor>;
  /** PROGRAM: the request's bodies in order, consumed by steps whose params hold `{"body": true}`. */
  bodies?: OpBody[];
}

/**
 * One body as PROGRAM passes it around: whichever of these an op takes or gives.
 * An empty object means "no body" (e.g. a returned step that produced none).
 */
export interface OpBody {
  coords?: Uint32Array;
  scrolls?: ScrollBatch;
  shards?: Uint32Array;
  raw?: Uint8Array;
}

/** What an instruction returns: a JSON-able result plus at most one body. */
export interface OpOutput {
  result: Record<string, unknown>;
  coords?: Uint32Array;
  scrolls?: ScrollBatch;
  /** CROUTE batch: owning shard per row. */
  shards?: Uint32Array;
  raw?: Uint8Array;
  /** A body already encoded as an Arrow IPC stream (the compute pool writes tensors straight into one): sent as it is. */
  encoded?: Uint8Array;
  /** `raw` is a view of the store's memory (only when the input asked, `replyViews`): valid until the next write. */
  rawIsView?: boolean;
  /**
   * PROGRAM: one body per returned step, in `return` order (then the top-level body fields
   * above are unset). The bridge sends them as consecutive body frames.
   */
  outputs?: OpBody[];
}
