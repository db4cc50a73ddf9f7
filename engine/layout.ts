/**
 * Layouts name coordinate components so user code reads like the seeds' examples while the
 * wire carries integers: spec `layer.head.pos/qkv.batch.embed/*.*.*` plus symbols
 * `{qkv: ['query', 'key', 'value']}` (a symbol's index is its integer). The Python client
 * has its own Layout over the same spec.
 */
import { DIMS } from './types';
import { VtpuError } from './errors';
import { MAX_COMPONENT, formatCoord } from './coords';

/** A field value: an integer, or a symbol name of that field. */
export type FieldValue = number | string;
/** A pattern field: a value, or a half-open [a, b) range. */
export type PatternField = FieldValue | [FieldValue, FieldValue];

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Named view of the 9 coordinate components. */
export class Layout {
  /** Component names by position; null for an unnamed `*` component. */
  readonly names: ReadonlyArray<string | null>;
  /** Symbol tables per field name. */
  readonly symbols: Readonly<Record<string, readonly string[]>>;
  private readonly index = new Map<string, number>();

  /** Builds a layout; E_PARAM for a malformed spec, duplicate name or symbols of an unknown field. */
  constructor(spec: string, symbols: Record<string, readonly string[]> = {}) {
    const groups = typeof spec === 'string' ? spec.split('/') : [];
    const parts = groups.flatMap((g) => g.split('.'));
    if (groups.length !== 3 || parts.length !== DIMS || groups.some((g) => g.split('.').length !== 3)) {
      throw new VtpuError('E_PARAM', `layout spec ${JSON.stringify(spec)} must be a.b.c/d.e.f/g.h.i with names or *`);
    }
    this.names = parts.map((s, d) => {
      if (s === '*') return null;
      if (!NAME.test(s)) throw new VtpuError('E_PARAM', `layout field ${d + 1}: ${JSON.stringify(s)} is not a name or *`);
      if (this.index.has(s)) throw new VtpuError('E_PARAM', `layout field ${JSON.stringify(s)} appears twice`);
      this.index.set(s, d);
      return s;
    });
    for (const [field, list] of Object.entries(symbols)) {
      if (!this.index.has(field)) throw new VtpuError('E_PARAM', `symbols given for unknown layout field ${JSON.stringify(field)}`);
      if (!Array.isArray(list) || list.some((x) => typeof x !== 'string') || new Set(list).size !== list.length) {
        throw new VtpuError('E_PARAM', `symbols of ${field} must be distinct strings`);
      }
    }
    this.symbols = Object.freeze({ ...symbols });
  }

  /** A coordinate from named fields; unnamed components are 0, a missing named field is E_PARAM. */
  coord(fields: Record<string, FieldValue>): Uint32Array {
    this.checkKnown(fields);
    const out = new Uint32Array(DIMS);
    for (let d = 0; d < DIMS; d++) {
      const name = this.names[d];
      if (name === null) continue;
      if (!(name in fields)) throw new VtpuError('E_PARAM', `layout field ${JSON.stringify(name)} missing`);
      out[d] = this.value(name, fields[name]);
    }
    return out;
  }

  /** The coordinate string for named fields (see {@link coord}). */
  coordString(fields: Record<string, FieldValue>): string {
    return formatCoord(this.coord(fields));
  }

  /** A pattern string: given fields fixed (or ranged, [a, b) half-open), the rest `*`. */
  pattern(fields: Record<string, PatternField> = {}): string {
    this.checkKnown(fields);
    const comps: string[] = [];
    for (let d = 0; d < DIMS; d++) {
      const name = this.names[d];
      const f = name === null ? undefined : fields[name];
      if (f === undefined) comps.push('*');
      else if (Array.isArray(f)) comps.push(this.range(name as string, f));
      else comps.push(String(this.value(name as string, f)));
    }
    return `${comps[0]}.${comps[1]}.${comps[2]}/${comps[3]}.${comps[4]}.${comps[5]}/${comps[6]}.${comps[7]}.${comps[8]}`;
  }

  /** Named fields of row `row` of a flat coordinate array; symbols where the field has them. */
  describe(coord: ArrayLike<number>, row = 0): Record<string, FieldValue> {
    const out: Record<string, FieldValue> = {};
    for (let d = 0; d < DIMS; d++) {
      const name = this.names[d];
      if (name === null) continue;
      const v = coord[row * DIMS + d];
      const syms = this.symbols[name];
      out[name] = syms !== undefined && v < syms.length ? syms[v] : v;
    }
    return out;
  }

  private checkKnown(fields: object): void {
    if (fields === null || typeof fields !== 'object') throw new VtpuError('E_PARAM', 'layout fields must be an object');
    for (const k of Object.keys(fields)) {
      if (!this.index.has(k)) throw new VtpuError('E_PARAM', `unknown layout field ${JSON.stringify(k)}`);
    }
  }

  private value(name: string, v: FieldValue): number {
    if (typeof v === 'string') {
      const syms = this.symbols[name];
      const i = syms === undefined ? -1 : syms.indexOf(v);
      if (i < 0) throw new VtpuError('E_COORD', `unknown symbol ${JSON.stringify(v)} for field ${name}`);
      return i;
    }
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > MAX_COMPONENT) {
      throw new VtpuError('E_COORD', `field ${name} must be an integer 0..${MAX_COMPONENT} or a symbol, got ${JSON.stringify(v)}`);
    }
    return v;
  }

  private range(name: string, r: FieldValue[]): string {
    if (r.length !== 2) throw new VtpuError('E_PARAM', `range for ${name} must be [a, b]`);
    const a = this.value(name, r[0]);
    const b = this.value(name, r[1]);
    if (!(a < b)) throw new VtpuError('E_PATTERN', `range for ${name} is empty: [${a}:${b}]`);
    return `[${a}:${b}]`;
  }
}
