/** Phext files: explode/implode byte-exactly like libphext, xxh3-128 checksums, batch conversion. */
export { BREAK_BYTES } from './breaks';
export { explode, explodeSlices, type PhextScroll, type PhextSlice } from './explode';
export { breakCounts, implode, implodeSlices } from './implode';
export { checksum, checksumReady, checksumSync, initChecksum } from './checksum';
export { batchToSlices, slicesToBatch } from './batch';
