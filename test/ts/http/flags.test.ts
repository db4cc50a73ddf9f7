/** `vtpu serve` flags for metrics and HTTP, and the metrics JSON-lines file. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main, parseServeFlags } from '../../../bridge/cli';
import { startSidecar } from '../../../bridge/sidecar';
import { isLoopback } from '../../../bridge/http/auth';

describe('serve flags', () => {
  test('http, key, metrics file and --no-metrics', () => {
    expect(parseServeFlags(['--http', '0', '--http-host', '0.0.0.0', '--http-key', 'k'.repeat(10), '--http-max-body', '100', '--metrics-file', 'm.jsonl', '--no-metrics'], {}))
      .toEqual({ http: { port: 0, host: '0.0.0.0', key: 'k'.repeat(10), maxBodyBytes: 100 }, metricsFile: 'm.jsonl', metrics: false });
    expect(parseServeFlags(['--http=8080', '--http-insecure'], {})).toEqual({ http: { port: 8080, insecure: true } });
    expect(parseServeFlags(['--http=0', '--http-cors', 'http://a.example:3000', '--http-cors=https://b.example', '--http-name', 'vtpu.lan'], {}))
      .toEqual({ http: { port: 0, cors: ['http://a.example:3000', 'https://b.example'], names: ['vtpu.lan'] } });
    // The key may come from the environment, so it stays out of `ps`.
    expect(parseServeFlags(['--http', '1'], { VTPU_HTTP_KEY: 'from-env-key' })).toEqual({ http: { port: 1, key: 'from-env-key' } });
  });

  test('usage errors exit 2 with a message', async () => {
    for (const [args, msg] of [
      [['--http-host', 'x'], /--http-host needs --http PORT/],
      [['--http', '-1'], /--http needs a value \(write --http=-X/],
      [['--http=-1'], /--http must be a port number 0..65535/],
      [['--http', '70000'], /--http must be a port number 0..65535 \(0: any free port\), got "70000"/],
      [['--http', '0', '--http-host', '0.0.0.0'], /beyond loopback/],
      [['--http', '0', '--http-key', 'short'], /at least 8/],
      [['--http', '0', '--http-cors', '*'], /scheme:\/\/host/],
      [['--http-cors', 'http://a.example'], /needs --http PORT/],
    ] as [string[], RegExp][]) {
      let err = '';
      const rc = await main(['serve', '--address', 'tcp://127.0.0.1:0', ...args], { stdout: async () => undefined, stderr: (t) => { err += t; } });
      expect(rc).toBe(2);
      expect(err).toMatch(msg);
    }
  });

  test('loopback names', () => {
    for (const h of ['127.0.0.1', '127.3.2.1', '::1', 'localhost']) expect(isLoopback(h)).toBe(true);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', '127.0.0.1.evil.com']) expect(isLoopback(h)).toBe(false);
  });
});

test('the metrics file gets one JSON snapshot line per 100 ms tick', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vtpu-metrics-'));
  const file = join(dir, 'm.jsonl');
  const sc = await startSidecar({ address: 'tcp://127.0.0.1:0', poolThreshold: 0, metricsFile: file });
  const count = () => readFileSync(file, 'utf8').split('\n').length - 1;
  try {
    // Waits for lines rather than a fixed time: a loaded machine may delay the timer.
    while (count() < 3) await new Promise((r) => setTimeout(r, 50));
  } finally {
    await sc.close();
  }
  const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
  expect(lines.length).toBeGreaterThanOrEqual(3);
  for (const l of lines) expect(JSON.parse(l)).toMatchObject({ t: expect.any(Number), total: expect.any(Object), store: expect.any(Object) });
  rmSync(dir, { recursive: true, force: true });
});
