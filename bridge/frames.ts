/**
 * ZeroMQ message ⇄ request/reply. A ROUTER hands us [identity, header, ...bodies]; the
 * header is UTF-8 JSON `{v, id, op, params}`. Which bodies follow is decided by the op
 * and its params (protocol.json), never guessed from the bytes, except that a PROGRAM
 * step's Arrow body is told apart by its fields.
 */
import { VtpuError, type ErrorCode } from '../engine/errors';
import { DIMS, type OpBody, type OpInput, type OpOutput } from '../engine/types';
import { decodeBody, encodeCoords, encodeScrolls, encodeScrollsParts, encodeShards } from './arrow';
import { OPS, VERSION, isErrorCode } from './protocol';
import { requestBody } from '../engine/ops/index';
import { decodeLayout, toLayout } from './tensor_layout';
import type { Placer } from './shm/links';

/** A parsed request: header fields plus the raw body frames (not yet decoded). */
export interface Request {
  id: number;
  op: string;
  params: Record<string, unknown>;
  bodies: Uint8Array[];
  /** The header's `shm` field (bridge/shm/links.ts), when present. */
  shm?: unknown;
}

/** A {@link VtpuError} that knows which request it answers (0 when the header was unreadable). */
export class RequestError extends VtpuError {
  readonly id: number;
  constructor(code: ErrorCode, message: string, id: number) {
    super(code, message);
    this.name = 'RequestError';
    this.id = id;
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const MAX_MESSAGE = 2000;
const OK_PREFIX = `{"v":${JSON.stringify(VERSION)},"id":`;

/**
 * Parses [header, ...bodies] (identity already removed). Throws {@link RequestError}:
 * E_FRAME for anything malformed, E_OP for an op protocol.json does not name.
 */
export function parseRequest(frames: readonly Uint8Array[]): Request {
  if (frames.length === 0) throw new RequestError('E_FRAME', 'message has no header frame', 0);
  let h: unknown;
  try {
    h = JSON.parse(headerText(frames[0]));
  } catch (e) {
    throw new RequestError('E_FRAME', `header is not UTF-8 JSON: ${(e as Error).message}`, 0);
  }
  if (typeof h !== 'object' || h === null || Array.isArray(h)) {
    throw new RequestError('E_FRAME', 'header must be a JSON object', 0);
  }
  const hdr = h as Record<string, unknown>;
  const id = hdr.id;
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) {
    throw new RequestError('E_FRAME', `header id must be an integer >= 0, got ${JSON.stringify(id)}`, 0);
  }
  if (hdr.v !== VERSION) throw new RequestError('E_FRAME', `unsupported protocol version ${JSON.stringify(hdr.v)} (expected ${VERSION})`, id);
  if (typeof hdr.op !== 'string') throw new RequestError('E_FRAME', 'header op must be a string', id);
  if (!OPS.includes(hdr.op)) throw new RequestError('E_OP', `unknown op '${hdr.op.slice(0, 64)}'`, id);
  const params = hdr.params ?? {};
  if (typeof params !== 'object' || params === null || Array.isArray(params)) {
    throw new RequestError('E_FRAME', 'header params must be a JSON object', id);
  }
  return { id, op: hdr.op, params: params as Record<string, unknown>, bodies: frames.slice(1), shm: hdr.shm };
}

/** UTF-8 text of a header: ASCII (every header our clients send) skips the validating decoder. */
function headerText(b: Uint8Array): string {
  const n = b.length;
  for (let i = 0; i < n; i++) {
    if (b[i] > 0x7f) return utf8.decode(b);
  }
  return (Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, n)).toString('latin1', 0, n);
}

/**
 * Best-effort id of a header that failed elsewhere (e.g. an over-limit request), so the
 * client can match the error. Never throws; 0 when unreadable.
 */
export function peekId(header: Uint8Array | undefined): number {
  if (!header || header.length > 65536) return 0;
  try {
    const id = JSON.parse(utf8.decode(header))?.id;
    return typeof id === 'number' && Number.isSafeInteger(id) && id >= 0 ? id : 0;
  } catch {
    return 0;
  }
}

/** Decodes the request's bodies into the engine's input. Throws VtpuError (E_FRAME). */
export function toOpInput(req: Request): OpInput {
  const kind = requestBody(req.op, req.params);
  const { bodies, params } = req;
  if (kind === 'many') {
    const steps = Array.isArray(params.steps) ? params.steps : [];
    const takers = steps.filter((s) => isObj(s) && isObj(s.params) && takesBody(s.params)) as
      { op: unknown; params: Record<string, unknown> }[];
    if (bodies.length !== takers.length) {
      throw frame(`PROGRAM has ${takers.length} step(s) taking a body but ${bodies.length} body frame(s)`);
    }
    const decoded = takers.map((s, i) => decodeOne(String(s.op), s.params, bodies[i], `step body ${i}`));
    return { params, bodies: decoded };
  }
  if (kind === 'layout') {
    if (bodies.length > 1) throw frame(`${req.op} takes one body frame, got ${bodies.length}`);
    return { params, tensors: decodeLayout(req.op, params, bodies[0]) };
  }
  if (kind === 'none') {
    if (bodies.length) throw frame(`${req.op} takes no body, got ${bodies.length} frame(s)`);
    return { params };
  }
  if (bodies.length !== 1) throw frame(`${req.op} takes one body frame, got ${bodies.length}`);
  return { params, ...decodeOne(req.op, params, bodies[0], 'body') };
}

function decodeOne(op: string, params: Record<string, unknown>, bytes: Uint8Array, what: string): OpBody {
  const kind = requestBody(op, params);
  if (kind === 'raw') return { raw: bytes };
  const b = decodeBody(bytes);
  if (kind === 'coords' && b.schema !== 'coords') throw frame(`${op} ${what} must be Arrow coords, got ${b.schema}`);
  if (kind === 'scrolls' && b.schema !== 'scrolls') throw frame(`${op} ${what} must be Arrow scrolls, got ${b.schema}`);
  if (op === 'CPUT' && b.schema === 'scrolls' && !b.scrolls.coords) throw frame(`CPUT ${what} needs a coords field`);
  if (b.schema === 'coords') return { coords: b.coords };
  if (b.schema === 'scrolls') return { scrolls: b.scrolls };
  throw frame(`${op} ${what} cannot be an Arrow shards stream`);
}

/**
 * True when a PROGRAM step takes the next request body: `params.body === true` (what the
 * Python client sends) or a top-level param whose value is `{"body": true}`.
 */
export function takesBody(params: Record<string, unknown>): boolean {
  return params.body === true;
}

/** Rows in the largest decoded body of an input (for the max_batch limit). */
export function rowsIn(input: OpInput): number {
  const rows = (b: OpBody) => Math.max(b.coords ? b.coords.length / DIMS : 0, b.scrolls ? b.scrolls.n : 0);
  const many = Array.isArray(input.bodies) ? input.bodies : [];
  return Math.max(rows(input), ...many.map(rows));
}

/** Encodes one body as a frame: raw bytes as they are, batches as Arrow IPC streams. */
export function encodeBody(b: OpBody & Pick<OpOutput, 'encoded'>): Uint8Array | undefined {
  if (b.raw) return b.raw;
  if (b.encoded) return b.encoded;
  if (b.scrolls) return encodeScrolls(b.scrolls);
  if (b.coords) return encodeCoords(b.coords);
  if (b.shards) return encodeShards(b.shards);
  return undefined;
}

/** A body in pieces (see encodeScrollsParts): only Arrow scrolls streams have more than one. */
function bodyParts(b: OpBody): Uint8Array[] | undefined {
  if (b.scrolls && !b.raw) return encodeScrollsParts(b.scrolls);
  const f = encodeBody(b);
  return f && [f];
}

function joined(parts: Uint8Array[]): Uint8Array {
  return parts.length === 1 ? parts[0] : Buffer.concat(parts);
}

/** Reply frames (without identity) for a successful op; `layout`: tensors in the raw form (tensor_layout.ts). */
export function okReply(id: number, out: OpOutput, layout = false, place?: Placer): Uint8Array[] {
  if (layout) out = toLayout(out);
  // PROGRAM: one frame per returned step, an empty one where a step has no body.
  const bodies = Array.isArray(out.outputs) ? out.outputs.map((b) => bodyParts(b) ?? [new Uint8Array(0)]) : [bodyParts(out)].filter((f): f is Uint8Array[] => f !== undefined);
  // Same bytes as JSON.stringify({v, id, ok, result[, shm]}), without building the wrapper.
  let head = `${OK_PREFIX}${id},"ok":true,"result":${JSON.stringify(out.result ?? {})}`;
  const where = place ? bodies.map(place) : [];
  if (where.some((w) => w !== null)) head += `,"shm":${JSON.stringify(where)}`;
  const frames = bodies.filter((_, i) => !where[i]).map(joined);
  return [Buffer.from(`${head}}`), ...frames];
}

/** Reply frames (without identity) for a failure; non-protocol errors become E_INTERNAL. */
export function errorReply(id: number, err: unknown): Uint8Array[] {
  const code = err instanceof VtpuError && isErrorCode(err.code) ? err.code : 'E_INTERNAL';
  const raw = err instanceof Error ? err.message : String(err);
  const message = raw.length > MAX_MESSAGE ? `${raw.slice(0, MAX_MESSAGE)}…` : raw;
  return [Buffer.from(JSON.stringify({ v: VERSION, id, ok: false, error: { code, message } }))];
}

function isObj(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function frame(reason: string): VtpuError {
  return new VtpuError('E_FRAME', reason);
}
