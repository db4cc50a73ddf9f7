/** Public API of the vTPU engine: one explicit export list. */
export { DIMS, Kind, DType } from './types';
export type { Scroll, ScrollBatch, OpInput, OpOutput, OpBody } from './types';
export { VtpuError, check } from './errors';
export type { ErrorCode } from './errors';
export {
  MAX_COMPONENT, PHEXT_RANGE, parseCoord, formatCoord, coordFromParam, compareCoords, validateCoordsArray, checkPhextRange,
} from './coords';
export type { ParseCoordOptions } from './coords';
export { SPACE_END, parsePattern, matchesPattern, formatPattern, patternFromPrefix, isWildcard } from './pattern';
export type { Pattern } from './pattern';
export { Layout } from './layout';
export type { FieldValue, PatternField } from './layout';
export { MAX_NDIM, DTYPE_SIZES, kindCode, kindName, dtypeCode, dtypeName, validateScroll, validateBatch } from './values';
export { Store } from './store/store';
export type { StoreOptions, StoreStats, StoreWrite } from './store/store_types';
export { StoreReader, getBatchFromView, findEntry, readScroll } from './store/reader';
export type { StoreView, LookupResult } from './store/reader';
export type { PrefixCount } from './store/rangeindex';
export { RouteTable } from './routes';
export type { RouteEntry } from './routes';
export { Engine } from './engine';
export type { Instruction, EngineOptions } from './engine';
export { INSTRUCTIONS } from './ops/index';
export { ENGINE_VERSION } from './ops/ping';
export { PROGRAM, MAX_STEPS } from './program';
