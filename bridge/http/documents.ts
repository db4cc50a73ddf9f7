/**
 * Documents of the SQ-style HTTP API (`p=`): each name owns a disjoint slice of the engine's
 * first coordinate component. Document number d holds phext coordinate a.b.c/… at engine
 * coordinate (d·1000 + a).b.c/…, so phext components 1..999 of different documents never
 * meet. The unnamed document (p absent or empty) is d = 0: the sidecar's own phext-range
 * coordinates, the ones ZeroMQ clients and PHEXT_IMPORT/EXPORT use.
 *
 * Names are registered in the store itself, as text scrolls at 0.0.0/0.0.0/0.0.d (first
 * component 0 lies outside every document), so they survive as long as the data does.
 */
import { VtpuError } from '../../engine/errors';
import { parsePattern, type Pattern } from '../../engine/pattern';
import type { Store } from '../../engine/store/store';
import { DIMS, DType, Kind } from '../../engine/types';

/** First-component stride between documents. */
export const DOC_STRIDE = 1000;
/** Largest document number whose components still fit in 32 bits. */
export const MAX_DOC = Math.floor((0xffffffff - (DOC_STRIDE - 1)) / DOC_STRIDE);
const REGISTRY = '0.0.0/0.0.0/0.0.*';
const utf8 = new TextDecoder();

/** A refused document name (the HTTP layer answers 403). */
export class DocumentNameError extends VtpuError {
  constructor(name: string, why: string) {
    super('E_PARAM', `invalid phext path ${JSON.stringify(name.slice(0, 80))}: ${why}`);
  }
}

/**
 * Checks a document name. Path traversal and separators are refused like SQ does
 * (`..`, `/`, `\`), and so are control characters and names over 200 bytes.
 */
export function checkDocumentName(name: string): void {
  if (name.includes('..')) throw new DocumentNameError(name, "'..' is not allowed");
  if (/[/\\]/.test(name)) throw new DocumentNameError(name, 'path separators are not allowed');
  if (/[\u0000-\u001f\u007f]/.test(name)) throw new DocumentNameError(name, 'control characters are not allowed');
  if (Buffer.byteLength(name) > 200) throw new DocumentNameError(name, 'longer than 200 bytes');
}

/** Name ⇄ document number, backed by the registry scrolls in the store. */
export class Documents {
  private names = new Map<string, number>();

  constructor(private readonly store: Store) {}

  /**
   * The document number of `name` (0 for ''), registering a new one when `create`; without
   * `create`, undefined for a name never written. Throws DocumentNameError for a bad name,
   * E_LIMIT when every document number is taken.
   */
  resolve(name: string, create: boolean): number | undefined {
    if (name === '') return 0;
    checkDocumentName(name);
    let d = this.names.get(name);
    if (d === undefined) {
      this.reload(); // another front end may have registered it, or deleted the registry
      d = this.names.get(name);
    }
    if (d !== undefined || !create) return d;
    let next = 1;
    for (const v of this.names.values()) next = Math.max(next, v + 1);
    if (next > MAX_DOC) throw new VtpuError('E_LIMIT', `no document numbers left (${MAX_DOC} in use)`);
    const bytes = Buffer.from(name);
    const at = new Uint32Array(DIMS);
    at[DIMS - 1] = next;
    this.store.put(at, 0, { kind: Kind.Text, dtype: DType.None, shape: [], bytes });
    this.names.set(name, next);
    return next;
  }

  /** Engine coordinate of phext coordinate `c` (1..999 each) in document `doc`. */
  toEngine(doc: number, c: Uint32Array): Uint32Array {
    const out = c.slice();
    out[0] += doc * DOC_STRIDE;
    return out;
  }

  /** Phext coordinate (a copy) of engine coordinate row `i` of `coords` in document `doc`. */
  toPhext(doc: number, coords: Uint32Array, i: number): Uint32Array {
    const out = coords.slice(i * DIMS, (i + 1) * DIMS);
    out[0] -= doc * DOC_STRIDE;
    return out;
  }

  /** The pattern covering exactly document `doc`'s phext-range coordinates. */
  pattern(doc: number): Pattern {
    const base = doc * DOC_STRIDE;
    return parsePattern(`[${base + 1}:${base + DOC_STRIDE}].[1:1000].[1:1000]/[1:1000].[1:1000].[1:1000]/[1:1000].[1:1000].[1:1000]`);
  }

  private reload(): void {
    const { batch } = this.store.range(parsePattern(REGISTRY), Math.max(1, this.store.size), true);
    const names = new Map<string, number>();
    for (let i = 0; i < batch.n; i++) {
      const d = batch.coords![i * DIMS + DIMS - 1];
      if (batch.kind[i] !== Kind.Text || d < 1 || d > MAX_DOC) continue;
      names.set(utf8.decode(batch.values.subarray(batch.valueOffsets[i], batch.valueOffsets[i + 1])), d);
    }
    this.names = names;
  }
}
