/** PING: protocol and engine versions, op names and limits. */
import type { Instruction } from '../engine';
import schema from '../../pyclient/vtpu/protocol.json';

/** Engine version reported by PING (kept equal to package.json's; a test checks). */
export const ENGINE_VERSION = '0.1.0';

/** The PING instruction. */
export const PING: Instruction = {
  name: 'PING',
  run(engine) {
    return {
      result: {
        version: schema.version,
        engine: ENGINE_VERSION,
        ops: engine.opNames(),
        limits: { max_request_bytes: engine.maxRequestBytes, max_batch: engine.maxBatch },
      },
    };
  },
};
