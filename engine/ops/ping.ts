/** PING: protocol and engine versions, op names, limits and the store's size. */
import type { Instruction } from '../instruction';
import schema from '../../protocol/protocol.json';

/** Engine version reported by PING (kept equal to package.json's; a test checks). */
export const ENGINE_VERSION = '0.1.0';

function storeSummary(engine: Parameters<Instruction['run']>[0]) {
  const st = engine.store.stats();
  return { entries: st.entries, allocated_bytes: st.allocatedBytes, heap_bytes: st.heapBytes, garbage_bytes: st.garbageBytes };
}

/** The PING instruction. */
export const PING: Instruction = {
  name: 'PING',
  run(engine) {
    return {
      result: {
        version: schema.version,
        engine: ENGINE_VERSION,
        ops: engine.opNames(),
        limits: { max_request_bytes: engine.maxRequestBytes, max_batch: engine.maxBatch, max_loop_ms: engine.maxLoopMs },
        store: storeSummary(engine),
      },
    };
  },
};
