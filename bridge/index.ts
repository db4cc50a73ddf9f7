/** The bridge's public surface: the sidecar, its server and pool, and the wire codecs. */
export { startSidecar, serveForever, defaultAddress } from './sidecar';
export type { Sidecar, SidecarOptions } from './sidecar';
export { SidecarServer } from './server';
export { Gate } from './gate';
export { isWrite, requestBody } from '../engine/ops/index';
export type { Executor, ServerOptions } from './server';
export { ReadPool, workerFile } from './pool';
export type { ReadPoolOptions, ViewSource } from './pool';
export {
  decodeBody, decodeCoords, decodeScrolls, decodeShards, encodeCoords, encodeScrolls, encodeShards, concatScrolls,
} from './arrow';
export type { ArrowBody } from './arrow';
export { RequestError, parseRequest, peekId, toOpInput, takesBody, rowsIn, encodeBody, okReply, errorReply } from './frames';
export type { Request } from './frames';
export {
  PROTOCOL, VERSION, OPS, ERROR_CODES, DEFAULTS, isErrorCode,
} from './protocol';
export type { BodyKind } from '../engine/types';
