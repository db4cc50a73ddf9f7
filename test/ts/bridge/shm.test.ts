import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, rmSync, statSync, writeSync, ftruncateSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Allocator, Arena, HEAD_BYTES, removeStaleArenas } from '../../../bridge/shm/arena';
import { ShmLinks } from '../../../bridge/shm/links';
import { shmAddon, unavailableReason } from '../../../bridge/shm/native';
import { spanBytes } from '../../../bridge/shm/span';

const addon = shmAddon();
const d = describe;

test('the shared-memory addon is built (make build compiles native/shm.c)', () => {
  expect(unavailableReason()).toBe('');
});

function clientArena(dir: string, size: number, pid = process.pid): { path: string; token: Buffer } {
  const path = join(dir, `vtpu-${pid}-${randomBytes(8).toString('hex')}.in`);
  const fd = openSync(path, 'wx', 0o600);
  ftruncateSync(fd, size);
  const token = randomBytes(16);
  writeSync(fd, token, 0, 16, 0);
  closeSync(fd);
  return { path, token };
}

d('shared-memory links', () => {
  let dir: string;
  let links: ShmLinks;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'vtpu-shm-'));
    links = new ShmLinks(dir, 1024);
  });
  afterEach(() => {
    links.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function open(size = 1 << 20) {
    const a = clientArena(dir, size);
    const res = links.handle({ mode: 'open', path: a.path, size, token: a.token.toString('hex') });
    return { ...a, res };
  }

  it('opens a link, makes an owner-only reply arena, and unlinks it when ready', () => {
    const { res } = open();
    expect(statSync(res.path as string).mode & 0o777).toBe(0o600);
    links.handle({ mode: 'ready', key: res.key });
    expect(existsSync(res.path as string)).toBe(false);
    expect(links.size).toBe(1);
  });

  it('reads bodies where the header says and refuses anything outside the arena', () => {
    const { res, path } = open();
    const fd = openSync(path, 'r+');
    writeSync(fd, Buffer.from('hello'), 0, 5, 128);
    closeSync(fd);
    const frame = new Uint8Array([1, 2]);
    const { bodies } = links.resolve({ k: res.key, b: [[128, 5], null] }, [frame]);
    expect(Buffer.from(bodies[0]).toString()).toBe('hello');
    expect(bodies[1]).toBe(frame);
    const bad: [unknown, Uint8Array[]][] = [
      [{ k: res.key, b: [[0, 8]] }, []], // the token's head
      [{ k: res.key, b: [[(1 << 20) - 4, 8]] }, []], // past the end
      [{ k: res.key, b: [[64, 8]] }, [frame]], // a frame not named in b
      [{ k: res.key, b: [null] }, []], // a frame named but not sent
      [{ k: res.key, b: [[64.5, 1]] }, []],
      [{ k: 'nope' }, []],
      [{ k: res.key, f: [64] }, []], // no reply block there
      ['x', []],
    ];
    for (const [shm, frames] of bad) expect(() => links.resolve(shm, frames)).toThrow(expect.objectContaining({ code: 'E_FRAME' }));
  });

  it('places big reply bodies in blocks the client gives back', () => {
    const { res } = open();
    const { link } = links.resolve({ k: res.key }, []);
    const body = new Uint8Array(4096).fill(7);
    const at = link.place(body)!;
    expect(at[0]).toBeGreaterThanOrEqual(HEAD_BYTES);
    expect(link.place(new Uint8Array(10))).toBeNull(); // small: a frame
    expect(links.outBytes).toBe(4096);
    links.resolve({ k: res.key, f: [at[0]] }, []);
    expect(links.outBytes).toBe(0);
    // A block written in place is placed without a copy, and other threads see the same bytes.
    const block = link.reserve(2048)!;
    block.bytes.fill(9);
    expect(spanBytes(block.span)[100]).toBe(9);
    expect(link.place(block.bytes)).toEqual([block.span.offset, 2048]);
  });

  it('refuses what is not a client arena of ours', () => {
    const a = clientArena(dir, 1 << 16);
    const open1 = (p: Record<string, unknown>) => links.handle({ mode: 'open', path: a.path, size: 1 << 16, token: a.token.toString('hex'), ...p });
    expect(() => open1({ token: '00'.repeat(16) })).toThrow(/token/);
    expect(() => open1({ size: 1 << 17 })).toThrow(/bytes/);
    expect(() => open1({ path: '/etc/passwd' })).toThrow(/vtpu-<pid>-<hex>.in/);
    expect(() => open1({ size: 2 ** 40 })).toThrow(/size/);
  });

  it('removes arenas of processes that are gone, keeps the living ones', () => {
    const dead = clientArena(dir, 4096, 2 ** 22 + 12345); // above pid_max's default: no such process
    const live = clientArena(dir, 4096);
    utimesSync(dead.path, new Date(), new Date());
    expect(removeStaleArenas(dir)).toBe(1);
    expect(existsSync(dead.path)).toBe(false);
    expect(existsSync(live.path)).toBe(true);
  });
});

d('Allocator', () => {
  it('hands out aligned blocks first-fit and merges what comes back', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vtpu-shm-'));
    try {
      const arena = Arena.create(addon!, dir, 64 * 10);
      const a = new Allocator(arena, addon!);
      const x = a.alloc(1), y = a.alloc(65), z = a.alloc(64);
      expect([x, y, z]).toEqual([64, 128, 256]);
      expect(a.alloc(256)).toBe(320);
      expect(a.alloc(64)).toBe(576); // the last line of the 640 bytes
      expect(a.alloc(1)).toBe(-1); // full
      expect(a.release(y)).toBe(true);
      expect(a.release(y)).toBe(false);
      expect(a.alloc(128)).toBe(128); // the freed pair is reused
      arena.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
