import { encodeCoords, encodeScrolls, encodeShards, decodeScrolls, decodeShards } from '../../../bridge/arrow';
import { RequestError, errorReply, okReply, parseRequest, peekId, rowsIn, toOpInput } from '../../../bridge/frames';
import { Gate } from '../../../bridge/gate';
import { OPS, DEFAULTS } from '../../../bridge/protocol';
import { isWrite, requestBody } from '../../../engine/ops/index';
import { DTYPE_SIZES, dtypeCode, kindCode } from '../../../engine/values';
import { VtpuError } from '../../../engine/errors';
import { bytesBatch, coordsFor } from './helpers';

const hdr = (o: unknown) => Buffer.from(JSON.stringify(o));

function reqError(f: () => unknown): RequestError | VtpuError {
  try { f(); } catch (e) { expect(e).toBeInstanceOf(VtpuError); return e as VtpuError; }
  throw new Error('expected an error');
}

describe('protocol', () => {
  test('loads protocol.json', () => {
    expect(OPS).toContain('PHEXT_EXPORT');
    expect(kindCode('tensor')).toBe(3);
    expect([dtypeCode('bfloat16'), DTYPE_SIZES[dtypeCode('bfloat16')]]).toEqual([3, 2]);
    expect(DEFAULTS.maxBatch).toBe(16777216);
    expect(requestBody('CPUT', {})).toBe('raw');
    expect(requestBody('CPUT', { batch: true })).toBe('scrolls');
    expect(requestBody('CGET', { batch: true })).toBe('coords');
    expect(requestBody('CRANGE', {})).toBe('none');
  });
});

describe('parseRequest', () => {
  test('a good header', () => {
    const r = parseRequest([hdr({ v: 1, id: 7, op: 'PING', params: {} })]);
    expect(r).toEqual({ id: 7, op: 'PING', params: {}, bodies: [] });
  });

  test.each([
    ['garbage bytes', 'E_FRAME', 0, Buffer.from([0xff, 0xfe, 0x00, 0x80])],
    ['not JSON', 'E_FRAME', 0, Buffer.from('{"v":1,')],
    ['a JSON array', 'E_FRAME', 0, hdr([1, 2])],
    ['null', 'E_FRAME', 0, hdr(null)],
    ['missing id', 'E_FRAME', 0, hdr({ v: 1, op: 'PING' })],
    ['negative id', 'E_FRAME', 0, hdr({ v: 1, id: -1, op: 'PING' })],
    ['fractional id', 'E_FRAME', 0, hdr({ v: 1, id: 1.5, op: 'PING' })],
    ['missing op', 'E_FRAME', 3, hdr({ v: 1, id: 3 })],
    ['wrong version', 'E_FRAME', 4, hdr({ v: 2, id: 4, op: 'PING' })],
    ['params array', 'E_FRAME', 5, hdr({ v: 1, id: 5, op: 'PING', params: [] })],
    ['unknown op', 'E_OP', 6, hdr({ v: 1, id: 6, op: 'CFROB' })],
  ])('%s → %s with id %d', (_name, code, id, frame) => {
    const e = reqError(() => parseRequest([frame as Buffer]));
    expect(e.code).toBe(code);
    expect((e as RequestError).id).toBe(id);
  });

  test('peekId never throws', () => {
    expect(peekId(hdr({ id: 9 }))).toBe(9);
    expect(peekId(Buffer.from([0xff]))).toBe(0);
    expect(peekId(undefined)).toBe(0);
    expect(peekId(hdr({ id: 'x' }))).toBe(0);
  });
});

describe('toOpInput', () => {
  const req = (op: string, params: Record<string, unknown>, bodies: Uint8Array[] = []) => ({ id: 1, op, params, bodies });

  test('body kinds follow the op and params', () => {
    expect(toOpInput(req('CPUT', { coord: '1.1.1/1.1.1/1.1.1', kind: 'text' }, [Buffer.from('hi')])).raw).toEqual(Buffer.from('hi'));
    const c = toOpInput(req('CGET', { batch: true }, [encodeCoords(coordsFor(3))]));
    expect(c.coords!.length).toBe(27);
    const s = toOpInput(req('CPUT', { batch: true }, [encodeScrolls(bytesBatch(coordsFor(2), 2))]));
    expect(s.scrolls!.n).toBe(2);
    expect(rowsIn(s)).toBe(2);
  });

  test('wrong or missing bodies are E_FRAME', () => {
    expect(reqError(() => toOpInput(req('PING', {}, [Buffer.from('x')]))).code).toBe('E_FRAME');
    expect(reqError(() => toOpInput(req('CPUT', { coord: '1.1.1/1.1.1/1.1.1' }))).code).toBe('E_FRAME');
    expect(reqError(() => toOpInput(req('CGET', { batch: true }, [encodeScrolls(bytesBatch(coordsFor(1), 1))]))).message).toMatch(/coords/);
    expect(reqError(() => toOpInput(req('CPUT', { batch: true }, [encodeScrolls(bytesBatch(undefined, 1))]))).message).toMatch(/coords field/);
    expect(reqError(() => toOpInput(req('CGET', { batch: true }, [encodeShards(new Uint32Array(1))]))).code).toBe('E_FRAME');
  });

  test('PROGRAM bodies go to the steps that take one, in order', () => {
    const steps = [
      { op: 'CPUT', params: { batch: true, body: true } },
      { op: 'CGET', params: { batch: true, body: { $ref: 0 } } },
      { op: 'CGET', params: { batch: true, body: true } },
    ];
    const input = toOpInput(req('PROGRAM', { steps }, [encodeScrolls(bytesBatch(coordsFor(4), 4)), encodeCoords(coordsFor(5))]));
    expect(input.bodies!.map((b) => (b.scrolls ? `s${b.scrolls.n}` : `c${b.coords!.length / 9}`))).toEqual(['s4', 'c5']);
    expect(rowsIn(input)).toBe(5);
    expect(reqError(() => toOpInput(req('PROGRAM', { steps }, [encodeCoords(coordsFor(1))]))).code).toBe('E_FRAME');
  });
});

describe('replies', () => {
  test('ok reply carries the result and an Arrow body', () => {
    const b = bytesBatch(undefined, 3);
    const [h, body] = okReply(4, { result: { n: 3, found: 3 }, scrolls: b });
    expect(JSON.parse(Buffer.from(h).toString())).toEqual({ v: 1, id: 4, ok: true, result: { n: 3, found: 3 } });
    expect(decodeScrolls(body).n).toBe(3);
    expect(okReply(1, { result: {}, raw: Buffer.from('x') })[1]).toEqual(Buffer.from('x'));
    expect(decodeShards(okReply(1, { result: {}, shards: new Uint32Array([2]) })[1])[0]).toBe(2);
    const many = okReply(1, { result: {}, outputs: [{ coords: coordsFor(1) }, {}, { raw: Buffer.from('r') }] });
    expect(many.length).toBe(4);
    expect(many[2].length).toBe(0);
  });

  test('error reply: codes pass through, anything else is E_INTERNAL', () => {
    const j = (f: Uint8Array[]) => JSON.parse(Buffer.from(f[0]).toString());
    expect(j(errorReply(3, new VtpuError('E_COORD', 'bad')))).toEqual({ v: 1, id: 3, ok: false, error: { code: 'E_COORD', message: 'bad' } });
    expect(j(errorReply(3, new TypeError('boom'))).error.code).toBe('E_INTERNAL');
    expect(j(errorReply(3, new VtpuError('E_BOGUS' as never, 'x'))).error.code).toBe('E_INTERNAL');
    expect(j(errorReply(0, new Error('m'.repeat(10_000)))).error.message.length).toBeLessThan(2100);
  });
});

describe('gate', () => {
  const tick = () => new Promise((r) => setImmediate(r));

  test('writes wait for reads in flight; later reads wait for a queued write (FIFO)', async () => {
    const g = new Gate();
    const log: string[] = [];
    let releaseRead!: () => void;
    const r1 = g.run(false, () => new Promise<void>((r) => { log.push('r1 start'); releaseRead = () => { log.push('r1 end'); r(); }; }));
    await tick();
    const w = g.run(true, () => { log.push('w'); });
    const r2 = g.run(false, () => { log.push('r2'); });
    await tick();
    expect(log).toEqual(['r1 start']);
    releaseRead();
    await Promise.all([r1, w, r2]);
    expect(log).toEqual(['r1 start', 'r1 end', 'w', 'r2']);
    expect(g.idle).toBe(true);
  });

  test('reads share; a throwing holder releases the gate', async () => {
    const g = new Gate();
    let inside = 0, peak = 0;
    const read = () => g.run(false, async () => { inside++; peak = Math.max(peak, inside); await tick(); inside--; });
    await Promise.all([read(), read(), read()]);
    expect(peak).toBe(3);
    await expect(g.run(true, () => { throw new Error('x'); })).rejects.toThrow('x');
    expect(g.idle).toBe(true);
  });

  test('isWrite', () => {
    expect(isWrite('CPUT', {})).toBe(true);
    expect(isWrite('CGET', { batch: true })).toBe(false);
    expect(isWrite('CROUTE', {})).toBe(false);
    expect(isWrite('CROUTE', { table: [] })).toBe(true);
    expect(isWrite('PROGRAM', { steps: [{ op: 'CGET', params: {} }, { op: 'CDEL', params: {} }] })).toBe(true);
    expect(isWrite('PROGRAM', { steps: [{ op: 'CRANGE', params: {} }] })).toBe(false);
  });
});
