/**
 * ipc:// addresses are socket files, and binding one silently takes it over: libzmq removes
 * whatever file is at the path first, so a second sidecar would steal a live one's clients.
 * {@link probeIpc} refuses an address something answers on; {@link claimIpc} remembers which
 * file this sidecar made, so closing removes only that file, never a later owner's.
 */
import { lstatSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';

/** The file path of an `ipc://` address, or undefined for tcp and Linux abstract (`ipc://@name`) ones. */
export function ipcPath(address: string): string | undefined {
  if (!address.startsWith('ipc://')) return undefined;
  const path = address.slice('ipc://'.length);
  return path.startsWith('@') ? undefined : path;
}

/**
 * Resolves when binding `address` would take nothing over: no file, or a stale one (its
 * process is gone: connecting is refused). Rejects when a process accepts connections on it.
 */
export function probeIpc(address: string): Promise<void> {
  const path = ipcPath(address);
  if (path === undefined) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const sock = createConnection({ path });
    sock.once('connect', () => {
      sock.destroy();
      reject(new Error(`${address} is in use: a running process (another sidecar?) accepts connections on it; stop it or choose another --address`));
    });
    sock.once('error', (e: NodeJS.ErrnoException) => {
      sock.destroy();
      // ENOENT: no file; ECONNREFUSED: a socket file left by a process that is gone.
      if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') resolve();
      else reject(new Error(`cannot tell whether ${address} is in use (${e.code ?? e.message}); refusing to take it over`));
    });
  });
}

/**
 * Notes the socket file `address` names as this process's (call right after binding);
 * returns the function that removes it at close if it is still that file.
 */
export function claimIpc(address: string): () => void {
  const path = ipcPath(address);
  if (path === undefined) return () => undefined;
  const mine = identity(path);
  return () => {
    const now = identity(path);
    if (mine !== undefined && now === mine) rmSync(path, { force: true });
  };
}

/** Device and inode of the file at `path`, or undefined when there is none. */
function identity(path: string): string | undefined {
  try {
    const st = lstatSync(path);
    return `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
}
