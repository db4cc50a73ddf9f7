/**
 * Phext break bytes, from protocol.json (`phext`). Component index i follows the engine's
 * coordinate order: 0 = library … 8 = scroll
 * (`library.shelf.series/collection.volume.book/chapter.section.scroll`).
 */
import schema from '../../protocol/protocol.json';

/** Break byte per component index (0 = library … 8 = scroll): 0x01, 0x1f, 0x1e, 0x1d, 0x1c, 0x1a, 0x19, 0x18, 0x17. */
export const BREAK_BYTES: readonly number[] = Object.freeze([...schema.phext.breaks]);

/** Component names, index-aligned with {@link BREAK_BYTES}; for messages. */
export const COMPONENT_NAMES: readonly string[] = Object.freeze([...schema.phext.components]);

/** byte → component index of its break, or -1 for content bytes. A table keeps the scan branch-light. */
export const BREAK_LEVEL: Int8Array = (() => {
  const t = new Int8Array(256).fill(-1);
  BREAK_BYTES.forEach((b, i) => { t[b] = i; });
  return t;
})();

/** Index of the first break byte in `bytes`, or -1 when there is none. */
export function findBreak(bytes: Uint8Array): number {
  for (let i = 0; i < bytes.length; i++) if (BREAK_LEVEL[bytes[i]] >= 0) return i;
  return -1;
}
