/** ipc addresses: a live sidecar's socket is never taken over, and close removes only the file it made. */
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSidecar } from '../../../bridge/sidecar';
import { Client } from './helpers';

let dir: string;
beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'vtpu-ipc-')); });
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function pingOk(address: string): Promise<boolean> {
  const c = new Client(address);
  try {
    return (await c.request('PING')).header.ok;
  } finally {
    await c.close();
  }
}

test('a second sidecar on a live ipc address is refused, and the first keeps its clients', async () => {
  const address = `ipc://${join(dir, 's.sock')}`;
  const first = await startSidecar({ address, poolThreshold: 0, computeThreshold: 0 });
  try {
    const c = new Client(address);
    try {
      expect((await c.request('CPUT', { coord: '1.1.1/1.1.1/1.1.1', kind: 'text' }, [Buffer.from('first')])).header.ok).toBe(true);
    } finally {
      await c.close();
    }
    const inode = lstatSync(join(dir, 's.sock')).ino;
    await expect(startSidecar({ address, poolThreshold: 0, computeThreshold: 0 })).rejects.toThrow(/is in use: a running process/);
    expect(lstatSync(join(dir, 's.sock')).ino).toBe(inode);
    const again = new Client(address);
    try {
      const r = await again.request('CGET', { coord: '1.1.1/1.1.1/1.1.1' });
      expect(r.header.result).toMatchObject({ found: true });
    } finally {
      await again.close();
    }
  } finally {
    await first.close();
  }
  expect(existsSync(join(dir, 's.sock'))).toBe(false);
});

test('a stale socket file (its process gone) is taken over', async () => {
  const path = join(dir, 'stale.sock');
  // Bound but never listening, then abandoned: connecting is refused, as after a crash.
  const r = spawnSync('python3', ['-c', `import socket; s = socket.socket(socket.AF_UNIX); s.bind(${JSON.stringify(path)})`]);
  expect(r.status).toBe(0);
  expect(lstatSync(path).isSocket()).toBe(true);
  const sc = await startSidecar({ address: `ipc://${path}`, poolThreshold: 0, computeThreshold: 0 });
  try {
    expect(await pingOk(sc.address)).toBe(true);
  } finally {
    await sc.close();
  }
});

test('close never removes a socket file another process made at the path', async () => {
  const path = join(dir, 'moved.sock');
  const sc = await startSidecar({ address: `ipc://${path}`, poolThreshold: 0, computeThreshold: 0 });
  // Someone replaced the file (e.g. an operator restarted another server there).
  rmSync(path);
  const other = createServer();
  await new Promise<void>((ok) => other.listen(path, ok));
  const inode = lstatSync(path).ino;
  try {
    await sc.close();
    expect(lstatSync(path).ino).toBe(inode);
  } finally {
    await new Promise((ok) => other.close(ok));
  }
});
