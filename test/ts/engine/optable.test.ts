import { INSTRUCTIONS, instruction, isWrite, requestBody } from '../../../engine/ops/index';
import { OPS } from '../../../bridge/protocol';

// Each op's facts live in its file; protocol.json describes them for clients. These fail on drift.
describe('the op table', () => {
  it('names every op protocol.json defines, and nothing else', () => {
    const served = new Set(['SHM', 'METRICS']); // the server's and the metrics registry's, not engine/ops
    expect(INSTRUCTIONS.map((i) => i.name).sort()).toEqual(OPS.filter((o) => !served.has(o)).sort());
  });

  it('declares the bodies protocol.json describes', () => {
    const schema = require('../../../protocol/protocol.json') as { ops: Record<string, Record<string, { body?: string }>> };
    for (const op of ['CGET', 'CDEL', 'CDELTA', 'CROUTE']) {
      expect(schema.ops[op].batch.body).toBe('arrow coords');
      expect([requestBody(op, { batch: true }), requestBody(op, {})]).toEqual(['coords', 'none']);
    }
    expect(schema.ops.CPUT.batch.body).toMatch(/^arrow scrolls/);
    expect([requestBody('CPUT', { batch: true }), requestBody('CPUT', {})]).toEqual(['scrolls', 'raw']);
    for (const op of ['CATTEND', 'CMOE', 'CNEAREST', 'CKG', 'CEXPERTS']) {
      expect(requestBody(op, { tensors: ['x'], layout: [] })).toBe('layout');
      expect(requestBody(op, { tensors: ['x'] })).toBe('scrolls');
    }
    expect(requestBody('PROGRAM', {})).toBe('many');
    expect(requestBody('NOPE', {})).toBe('none');
  });

  it('knows which requests write', () => {
    const writers = INSTRUCTIONS.filter((i) => isWrite(i.name, { batch: true })).map((i) => i.name).sort();
    expect(writers).toEqual(['CDEL', 'CPUT', 'PHEXT_IMPORT']);
    expect(isWrite('CSYNC', { step: 'apply' }) && isWrite('CSYNC', { step: 'delete' }) && !isWrite('CSYNC', { step: 'hash' })).toBe(true);
    expect(instruction('PROGRAM')?.writes?.({ steps: [{ op: 'PROGRAM', params: { steps: [{ op: 'CPUT', params: {} }] } }] }, instruction)).toBe(true);
  });
});
