/**
 * PROGRAM: several instructions in one round trip. Steps run in order; a param may be
 * - `body: {"$ref": k}`: step k's output body becomes this step's input body (a scrolls body also
 *   supplies its coords column, so CRANGE → CDELTA → CGET chains; `batch` defaults to true),
 * - `{"$ref": k, "field": name}`: step k's result field `name` (anywhere in params),
 * - `body: true`: the next request body (`input.bodies`, in step order).
 * All refs, ops and body counts are checked before any step runs (E_PARAM / E_OP). A program
 * is not a transaction: if step i fails, steps before it have taken effect; the error keeps
 * its code and names the step.
 */
import type { EngineContext, Instruction } from './instruction';
import { OpBody, OpInput, OpOutput } from './types';
import { VtpuError } from './errors';

/** Most steps in one program. */
export const MAX_STEPS = 256;

interface Step {
  op: string;
  params: Record<string, unknown>;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function isRef(v: unknown): v is { $ref: unknown; field?: unknown } {
  return isObject(v) && '$ref' in v;
}

/** Checks one ref inside step `i`; `top` tells whether a body ref is allowed here. */
function checkRef(r: Record<string, unknown>, i: number, top: boolean): void {
  const k = r.$ref;
  const where = `PROGRAM: step ${i}`;
  if (!Number.isInteger(k) || (k as number) < 0 || (k as number) >= i) {
    throw new VtpuError('E_PARAM', `${where}: $ref ${JSON.stringify(k)} must name an earlier step (0..${i - 1})`);
  }
  const extra = Object.keys(r).filter((x) => x !== '$ref' && x !== 'field');
  if (extra.length > 0) throw new VtpuError('E_PARAM', `${where}: unexpected key ${extra[0]} in a $ref`);
  if (r.field === undefined && !top) throw new VtpuError('E_PARAM', `${where}: a $ref without a field is a body ref: put it in params.body`);
  if (r.field !== undefined && typeof r.field !== 'string') throw new VtpuError('E_PARAM', `${where}: $ref field must be a string`);
}

/** Input bodies a step takes: from earlier steps (`$ref`) and from the request (`{"body": true}`). */
interface Takes {
  refs: number;
  request: number;
}

/** Walks params for field refs; only the top-level `body` param may take an input body. */
function checkParams(v: unknown, i: number): void {
  if (isRef(v)) {
    checkRef(v, i, false);
  } else if (Array.isArray(v)) {
    for (const x of v) checkParams(x, i);
  } else if (isObject(v)) {
    for (const x of Object.values(v)) checkParams(x, i);
  }
}

/** Checks step i's `body` param: true (a request body) or a body `$ref`; counts it into `t`. */
function checkBody(b: unknown, i: number, t: Takes): void {
  if (b === undefined) return;
  if (b === true) t.request++;
  else if (isRef(b) && b.field === undefined) {
    checkRef(b, i, true);
    t.refs++;
  } else throw new VtpuError('E_PARAM', `PROGRAM: step ${i}: body must be true (a request body) or {"$ref": k}`);
}

/** Parses and validates `steps`, returning them and the number of request bodies they take. */
function parseSteps(engine: EngineContext, raw: unknown): { steps: Step[]; bodies: number } {
  if (!Array.isArray(raw) || raw.length === 0) throw new VtpuError('E_PARAM', 'PROGRAM: steps must be a non-empty list');
  if (raw.length > MAX_STEPS) throw new VtpuError('E_LIMIT', `PROGRAM: ${raw.length} steps, at most ${MAX_STEPS}`);
  const names = new Set(engine.opNames());
  let bodies = 0;
  const steps = raw.map((s, i): Step => {
    if (!isObject(s) || typeof s.op !== 'string') throw new VtpuError('E_PARAM', `PROGRAM: step ${i} must be {op, params}`);
    if (s.op === 'PROGRAM') throw new VtpuError('E_PARAM', `PROGRAM: step ${i}: programs do not nest`);
    if (!names.has(s.op)) throw new VtpuError('E_OP', `PROGRAM: step ${i}: unknown op ${JSON.stringify(s.op)}`);
    const params = s.params ?? {};
    if (!isObject(params)) throw new VtpuError('E_PARAM', `PROGRAM: step ${i}: params must be an object`);
    const t: Takes = { refs: 0, request: 0 };
    checkBody(params.body, i, t);
    for (const [key, v] of Object.entries(params)) if (key !== 'body') checkParams(v, i);
    bodies += t.request;
    return { op: s.op, params };
  });
  return { steps, bodies };
}

function parseReturn(v: unknown, n: number): number[] {
  if (v === undefined) return [n - 1];
  if (!Array.isArray(v) || v.some((k) => !Number.isInteger(k) || k < 0 || k >= n)) {
    throw new VtpuError('E_PARAM', `PROGRAM: return must be a list of step indices 0..${n - 1}`);
  }
  return v as number[];
}

/** The body an output carries, as a step input: scrolls also expose their coords column. */
function asInput(out: OpBody, from: number): OpBody {
  const b: OpBody = {};
  if (out.scrolls !== undefined) {
    b.scrolls = out.scrolls;
    if (out.scrolls.coords !== undefined) b.coords = out.scrolls.coords;
  }
  if (out.coords !== undefined) b.coords = out.coords;
  if (out.shards !== undefined) b.shards = out.shards;
  if (out.raw !== undefined) b.raw = out.raw;
  if (Object.keys(b).length === 0) throw new VtpuError('E_PARAM', `PROGRAM: step ${from} gave no body to take`);
  return b;
}

/** Replaces field refs (anywhere) with earlier results' fields. */
function resolveFields(v: unknown, outs: OpOutput[], i: number): unknown {
  if (isRef(v)) {
    const k = v.$ref as number;
    const name = v.field as string;
    if (!(name in outs[k].result)) throw new VtpuError('E_PARAM', `PROGRAM: step ${i}: step ${k} has no result field ${JSON.stringify(name)}`);
    return outs[k].result[name];
  }
  if (Array.isArray(v)) return v.map((x) => resolveFields(x, outs, i));
  if (isObject(v)) return Object.fromEntries(Object.entries(v).map(([key, x]) => [key, resolveFields(x, outs, i)]));
  return v;
}

/** Builds step i's input from its params, earlier outputs and the request bodies. */
function stepInput(step: Step, i: number, outs: OpOutput[], bodies: OpBody[], next: { at: number }): OpInput {
  const params: Record<string, unknown> = {};
  let body: OpBody | undefined;
  for (const [key, v] of Object.entries(step.params)) {
    if (key !== 'body') params[key] = resolveFields(v, outs, i);
    else if (v === true) body = bodies[next.at++];
    else body = asInput(outs[(v as { $ref: number }).$ref], (v as { $ref: number }).$ref);
  }
  if (body !== undefined && (body.coords !== undefined || body.scrolls !== undefined) && params.batch === undefined) params.batch = true;
  return { params, ...body };
}

function bodyOf(out: OpOutput): OpBody {
  const b: OpBody = {};
  if (out.coords !== undefined) b.coords = out.coords;
  if (out.scrolls !== undefined) b.scrolls = out.scrolls;
  if (out.shards !== undefined) b.shards = out.shards;
  if (out.raw !== undefined) b.raw = out.raw;
  return b;
}

/** The PROGRAM instruction: `{result: {results}, outputs: [body per returned step]}`. */
export const PROGRAM: Instruction = {
  name: 'PROGRAM',
  body: () => 'many',
  // A program writes when any of its steps would.
  writes: (p, lookup) => Array.isArray(p.steps) && p.steps.some((s) => typeof s === 'object' && s !== null &&
    (lookup(String((s as { op?: unknown }).op))?.writes?.(((s as { params?: unknown }).params ?? {}) as Record<string, unknown>, lookup) ?? false)),
  run(engine, input) {
    const { steps, bodies } = parseSteps(engine, input.params.steps);
    const ret = parseReturn(input.params.return, steps.length);
    const given = input.bodies ?? [];
    if (!Array.isArray(given) || given.length !== bodies) {
      throw new VtpuError('E_PARAM', `PROGRAM: steps take ${bodies} request bodies, got ${Array.isArray(given) ? given.length : 'none'}`);
    }
    const outs: OpOutput[] = [];
    const next = { at: 0 };
    steps.forEach((step, i) => {
      try {
        outs.push(engine.execute(step.op, stepInput(step, i, outs, given, next)));
      } catch (e) {
        if (!(e instanceof VtpuError) || e.message.startsWith('PROGRAM: step')) throw e;
        throw new VtpuError(e.code, `PROGRAM: step ${i} (${step.op}): ${e.message}`);
      }
    });
    return { result: { results: outs.map((o) => o.result) }, outputs: ret.map((k) => bodyOf(outs[k])) };
  },
};
