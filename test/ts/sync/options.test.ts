/** Serve flags and options for sync, ownership and exposure. */
import { parseServeFlags } from '../../../bridge/cli';
import { checkExposure, isLocalOnly } from '../../../bridge/security';
import { checkSyncOptions } from '../../../bridge/sync/options';
import { PeerLimit } from '../../../bridge/peers';

const ALL = '*.*.*/*.*.*/*.*.*';

describe('sync and security options', () => {
  test('serve flags assemble the agent, ownership and interval target', () => {
    const o = parseServeFlags(['--agent', 'a1', '--owns', ALL, '--owner', 'b=1.*.*/*.*.*/*.*.*', '--sync-peer', 'ipc:///x',
      '--sync-every=0.5', '--sync-pattern', ALL, '--insecure', '--max-peers', '8'], {});
    expect(o).toMatchObject({ agent: 'a1', owns: [ALL], owners: [{ agent: 'b', pattern: '1.*.*/*.*.*/*.*.*' }],
      sync: { peer: 'ipc:///x', everyS: 0.5, pattern: ALL }, insecure: true, maxPeers: 8 });
    expect(() => parseServeFlags(['--sync-peer', 'ipc:///x'], {})).toThrow(/--sync-peer needs --sync-every SECONDS/);
    expect(() => parseServeFlags(['--owner', 'nobody'], {})).toThrow(/AGENT=PATTERN/);
    expect(() => parseServeFlags(['--curve-secret-file', '/no/such/file'], {})).toThrow(/curve-secret-file/);
  });

  test('option checks name the option', () => {
    expect(() => checkSyncOptions({ owns: [ALL] })).toThrow(/'owns' needs option 'agent'/);
    expect(() => checkSyncOptions({ agent: 'bad name' })).toThrow(/'agent'/);
    expect(() => checkSyncOptions({ agent: 'a', owns: ['1.2'] })).toThrow(/'owns'/);
    expect(() => checkSyncOptions({ sync: { peer: 'ipc:///x', pattern: ALL, everyS: 0 } })).toThrow(/everyS/);
    expect(checkSyncOptions({ sync: { peer: 'ipc:///x', pattern: ALL, everyS: 2 } })?.everyMs).toBe(2000);
  });

  test('only loopback and ipc are local; anything else needs CURVE or insecure', () => {
    for (const a of ['ipc:///tmp/x', 'tcp://127.0.0.1:5', 'tcp://127.1.2.3:*', 'tcp://localhost:5', 'tcp://[::1]:5']) expect(isLocalOnly(a)).toBe(true);
    for (const a of ['tcp://0.0.0.0:5', 'tcp://10.0.0.1:5', 'tcp://[::]:5', 'tcp://example.com:5', 'tcp://*:5']) expect(isLocalOnly(a)).toBe(false);
    expect(() => checkExposure('tcp://0.0.0.0:5', undefined, false)).toThrow(TypeError);
    expect(() => checkExposure('tcp://0.0.0.0:5', undefined, true)).not.toThrow();
    expect(() => checkExposure('tcp://0.0.0.0:5', 'k'.repeat(40), false)).not.toThrow();
  });

  test('peer limit: known clients pass, a new one over the cap waits for an idle one', () => {
    const lim = new PeerLimit(2, 1000);
    const id = (s: string) => Buffer.from(s);
    expect(lim.admit(id('a'), 0)).toBe(true);
    expect(lim.admit(id('b'), 10)).toBe(true);
    expect(lim.admit(id('c'), 20)).toBe(false);
    expect(lim.admit(id('a'), 500)).toBe(true);
    expect(lim.admit(id('c'), 1015)).toBe(true); // b idle for 1 s: swept
    expect(lim.admit(id('d'), 1100)).toBe(false);
  });
});
