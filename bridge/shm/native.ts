/**
 * The shared-memory addon (native/shm.c, built by `make build` into dist/native). Loaded
 * lazily; when it is missing the sidecar serves without the shared-memory path and says
 * why in the SHM reply, and clients send frames.
 */
import { join } from 'node:path';

/** What native/shm.c exports. */
export interface ShmAddon {
  /** An ArrayBuffer over the first `size` bytes of the file open as `fd`, whose inode must be `ino`. */
  map(fd: number, ino: number, size: number): ArrayBuffer;
  /** Reserves [offset, offset + length) of the file (throws code ENOSPC when full). */
  reserve(fd: number, offset: number, length: number): void;
}

let addon: ShmAddon | null | undefined;
let why = '';

/** dist/native/vtpu_shm.node, from dist/bridge/shm/*.js or from bridge/shm/*.ts under ts-jest. */
function addonFile(): string {
  return __filename.endsWith('.ts') ? join(__dirname, '..', '..', 'dist', 'native', 'vtpu_shm.node') : join(__dirname, '..', '..', 'native', 'vtpu_shm.node');
}

/** The addon, or null (then {@link unavailableReason} says why). */
export function shmAddon(): ShmAddon | null {
  if (addon === undefined) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      addon = require(addonFile()) as ShmAddon;
    } catch (e) {
      addon = null;
      why = `shared-memory addon ${addonFile()} did not load (${(e as Error).message.split('\n')[0]}); run \`make build\``;
    }
  }
  return addon;
}

/** Why {@link shmAddon} is null ('' when it loaded). */
export function unavailableReason(): string {
  shmAddon();
  return why;
}
