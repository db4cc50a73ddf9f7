/**
 * Arena bytes handed to another thread of the sidecar (the CATTEND ORT worker): a span
 * names the arena by descriptor and inode, and the thread maps the file itself (the
 * descriptor is process-wide; the inode check refuses a reused descriptor number). So q,
 * k, v are read and o written where the client and the reply find them, with no copy.
 */
import { VtpuError } from '../../engine/errors';
import { shmAddon } from './native';

/** Bytes [offset, offset + length) of the arena open as `fd` (inode `ino`, `size` bytes). */
export interface ArenaSpan {
  fd: number;
  ino: number;
  size: number;
  offset: number;
  length: number;
}

/** Mappings made by this thread, newest last (a few: one per client link in use). */
const mapped = new Map<string, ArrayBuffer>();
const KEEP = 8;

/** The span's bytes, mapped in this thread. */
export function spanBytes(s: ArenaSpan): Uint8Array {
  const key = `${s.fd}:${s.ino}:${s.size}`;
  let buf = mapped.get(key);
  if (!buf) {
    const addon = shmAddon();
    if (!addon) throw new VtpuError('E_INTERNAL', 'shm: the addon is missing in a worker thread');
    buf = addon.map(s.fd, s.ino, s.size);
    mapped.set(key, buf);
    if (mapped.size > KEEP) mapped.delete(mapped.keys().next().value as string);
  }
  return new Uint8Array(buf, s.offset, s.length);
}

/** A float32 view of a span (offsets of float32 tensors are multiples of 4). */
export function spanFloats(s: ArenaSpan): Float32Array {
  const b = spanBytes(s);
  return new Float32Array(b.buffer, b.byteOffset, b.length / 4);
}
