/**
 * The shared-memory addon (native/shm.c). When it is missing the sidecar serves without the
 * shared-memory path and says why in the SHM reply, and clients send frames.
 */
import { addonMissing, loadAddon } from '../native';

/** What native/shm.c exports. */
export interface ShmAddon {
  /** An ArrayBuffer over the first `size` bytes of the file open as `fd`, whose inode must be `ino`. */
  map(fd: number, ino: number, size: number): ArrayBuffer;
  /** Reserves [offset, offset + length) of the file (throws code ENOSPC when full). */
  reserve(fd: number, offset: number, length: number): void;
}

/** The addon, or null (then {@link unavailableReason} says why). */
export function shmAddon(): ShmAddon | null {
  return loadAddon<ShmAddon>('vtpu_shm');
}

/** Why {@link shmAddon} is null ('' when it loaded). */
export function unavailableReason(): string {
  return addonMissing('vtpu_shm');
}
