/**
 * The SQ HTTP subset (github.com/wbic16/SQ, `sq host`): select, insert, update, delete, toc,
 * checksum, delta and get on one document's phext-range coordinates, with SQ's plain-text
 * replies. Pure functions over the store; the HTTP layer parses, gates and answers.
 */
import { formatCoord, parseCoord } from '../../engine/coords';
import { VtpuError } from '../../engine/errors';
import { checksumSync, implodeSlices, type PhextSlice } from '../../engine/phext';
import type { Store } from '../../engine/store/store';
import { DIMS, DType, Kind } from '../../engine/types';
import type { Documents } from './documents';

/** The routes under /api/v2/, and whether each writes. */
export const SQ_ROUTES: Readonly<Record<string, { write: boolean; body: boolean }>> = Object.freeze({
  select: { write: false, body: false },
  insert: { write: true, body: true },
  update: { write: true, body: true },
  delete: { write: true, body: false },
  toc: { write: false, body: false },
  checksum: { write: false, body: false },
  delta: { write: false, body: true },
  get: { write: false, body: false },
});

/** A request an SQ route answers with 400 and this reason. */
export class BadRequest extends Error {}

/** SQ's marker for a scroll the client listed in a delta manifest that this side lacks. */
export const SCROLL_MISSING = '---sq:Scroll-Missing---';

/** Phext delimiter bytes: text holding one would land at other coordinates in a phext file. */
const DELIMITERS = /[\u0001\u0017-\u001a\u001c-\u001f]/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Parses `c` (SQ also accepts `;` for `/`, as in URL-encoded coordinates); 400 with the reason. */
export function coordParam(c: string | null): Uint32Array {
  if (c === null || c === '') throw new BadRequest('missing coordinate parameter c (a.b.c/d.e.f/g.h.i, each 1..999)');
  try {
    return parseCoord(c.replace(/;/g, '/'), { phext: true });
  } catch (e) {
    throw new BadRequest((e as Error).message);
  }
}

/** Decodes scroll text from a body or `s`; 400 when it is not UTF-8 or holds a phext delimiter. */
export function scrollText(bytes: Uint8Array): string {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw new BadRequest('scroll text is not valid UTF-8');
  }
  if (DELIMITERS.test(text)) throw new BadRequest('scroll text holds a phext delimiter (0x01, 0x17-0x1A, 0x1C-0x1F)');
  return text;
}

/** One route's inputs, already parsed. */
export interface SqCall {
  route: string;
  doc: string;
  coord?: Uint32Array;
  text?: string;
}

/** Runs one SQ route; returns the reply body (text or phext bytes). */
export function runSq(store: Store, docs: Documents, call: SqCall): string | Uint8Array {
  const { route } = call;
  const writes = SQ_ROUTES[route]?.write ?? false;
  const doc = docs.resolve(call.doc, writes && route !== 'delete');
  switch (route) {
    case 'select':
      return doc === undefined ? '' : textAt(store, docs.toEngine(doc, call.coord!));
    case 'insert': {
      const at = docs.toEngine(doc!, call.coord!);
      const text = call.text ?? '';
      putText(store, at, textAt(store, at) + text);
      return `Inserted ${Buffer.byteLength(text)} bytes`;
    }
    case 'update': {
      const text = call.text ?? '';
      putText(store, docs.toEngine(doc!, call.coord!), text);
      return `Updated ${Buffer.byteLength(text)} bytes`;
    }
    case 'delete': {
      if (doc === undefined) return 'Removed 0 bytes';
      const at = docs.toEngine(doc, call.coord!);
      const old = textAt(store, at);
      store.delete(at);
      return `Removed ${Buffer.byteLength(old)} bytes`;
    }
    case 'toc':
      return scrolls(store, docs, doc).map((s) => `* ${formatCoord(s.coord)}: ${summary(s.bytes)}\n`).join('');
    case 'checksum':
      return checksumSync(implodeSlices(scrolls(store, docs, doc)));
    case 'get':
      return implodeSlices(scrolls(store, docs, doc));
    case 'delta':
      return delta(scrolls(store, docs, doc), call.text ?? '');
    default:
      throw new VtpuError('E_INTERNAL', `no SQ route ${route}`);
  }
}

/** Text at an engine coordinate, '' when absent; 400 when a ZeroMQ client stored a non-text value there. */
function textAt(store: Store, at: Uint32Array): string {
  const s = store.get(at);
  if (s === undefined) return '';
  if (s.kind !== Kind.Text) throw new BadRequest(`the scroll at this coordinate holds ${s.kind === Kind.Tensor ? 'a tensor' : 'bytes'}, not text`);
  return utf8.decode(s.bytes);
}

function putText(store: Store, at: Uint32Array, text: string): void {
  store.put(at, 0, { kind: Kind.Text, dtype: DType.None, shape: [], bytes: Buffer.from(text) });
}

/** A document's non-empty text scrolls in coordinate order, at phext coordinates. */
function scrolls(store: Store, docs: Documents, doc: number | undefined): PhextSlice[] {
  if (doc === undefined) return [];
  const { batch } = store.range(docs.pattern(doc), Math.max(1, store.size), true);
  const out: PhextSlice[] = [];
  for (let i = 0; i < batch.n; i++) {
    const bytes = batch.values.subarray(batch.valueOffsets[i], batch.valueOffsets[i + 1]);
    if (bytes.length === 0) continue; // an empty scroll is no scroll in phext
    if (batch.kind[i] !== Kind.Text) {
      throw new BadRequest(`scroll ${formatCoord(docs.toPhext(doc, batch.coords!, i))} is not text; the SQ API serves text documents`);
    }
    out.push({ coord: docs.toPhext(doc, batch.coords!, i), bytes });
  }
  return out;
}

/**
 * libphext's create_summary: the scroll's first 32 bytes up to the first line or phext
 * break, with `...` when that is not the whole scroll. Cut back to a whole UTF-8
 * character (libphext would fail on a split one).
 */
export function summary(bytes: Uint8Array): string {
  let end = 0;
  const limit = Math.min(32, bytes.length);
  while (end < limit && bytes[end] !== 0x0a && !DELIMITERS.test(String.fromCharCode(bytes[end]))) end++;
  let cut = end;
  if (cut < bytes.length) while (cut > 0 && (bytes[cut] & 0xc0) === 0x80) cut--;
  return Buffer.from(bytes.subarray(0, cut)).toString('utf8') + (cut < bytes.length ? '...' : '');
}

/**
 * SQ's delta: `manifest` lists `coord: checksum` lines (xxh3-128 of each scroll's text).
 * Returns, as one phext, the scrolls whose checksum differs or that the manifest omits, plus
 * {@link SCROLL_MISSING} at listed coordinates this document lacks. Blank lines are skipped;
 * a malformed line is a 400 (SQ skips it silently).
 */
function delta(have: PhextSlice[], manifest: string): Uint8Array {
  const listed = new Map<string, string>();
  manifest.split(/\r?\n/).forEach((line, n) => {
    if (line.trim() === '') return;
    const sep = line.indexOf(': ');
    if (sep < 0) throw new BadRequest(`delta line ${n + 1}: expected "coordinate: checksum"`);
    let c: Uint32Array;
    try {
      c = parseCoord(line.slice(0, sep).trim().replace(/;/g, '/'), { phext: true });
    } catch (e) {
      throw new BadRequest(`delta line ${n + 1}: ${(e as Error).message}`);
    }
    listed.set(formatCoord(c), line.slice(sep + 2).trim().toLowerCase());
  });
  const out = new Map<string, PhextSlice>();
  for (const s of have) {
    const key = formatCoord(s.coord);
    if (listed.get(key) !== checksumSync(s.bytes)) out.set(key, s);
  }
  const present = new Set(have.map((s) => formatCoord(s.coord)));
  for (const key of listed.keys()) {
    if (!present.has(key)) out.set(key, { coord: parseCoord(key), bytes: Buffer.from(SCROLL_MISSING) });
  }
  const rows = [...out.values()].sort((a, b) => compare(a.coord, b.coord));
  return implodeSlices(rows);
}

function compare(a: Uint32Array, b: Uint32Array): number {
  for (let d = 0; d < DIMS; d++) if (a[d] !== b[d]) return a[d] - b[d];
  return 0;
}


