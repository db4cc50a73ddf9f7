/** The HTTP front end: SQ routes and replies, limits, keys, malformed requests, /metrics. */
import { connect } from 'node:net';
import { startSidecar, type Sidecar } from '../../../bridge/sidecar';
import { DOC_STRIDE } from '../../../bridge/http/documents';
import { SCROLL_MISSING } from '../../../bridge/http/sq';
import { checksum, explode, implode } from '../../../engine/phext';
import { formatCoord, parseCoord } from '../../../engine/coords';
import { Client } from '../bridge/helpers';
import { httpRequest, wsFirstMessage, type Reply } from './helpers';

const C1 = '1.1.1/1.1.1/1.1.1';
const C2 = '1.1.1/1.1.1/1.1.2';
const C3 = '2.1.1/1.1.1/1.1.1';

let sc: Sidecar;
let base: string;

/** One request to `url + path` (default: the shared sidecar). */
const http = (path: string, init: Parameters<typeof httpRequest>[1] = {}, url = base): Promise<Reply> => httpRequest(url + path, init);

const q = (route: string, params: Record<string, string>) => `/api/v2/${route}?${new URLSearchParams(params)}`;

beforeAll(async () => {
  sc = await startSidecar({ address: 'tcp://127.0.0.1:0', poolThreshold: 0, http: { port: 0, maxBodyBytes: 4096 } });
  base = sc.http!.url;
});
afterAll(() => sc.close());

describe('SQ routes', () => {
  test('select of a missing scroll is empty; insert appends; update overwrites; delete removes', async () => {
    const p = 'crud';
    expect(await http(q('select', { p, c: C1 }))).toMatchObject({ status: 200, text: '' });
    expect((await http(q('insert', { p, c: C1, s: 'hello' }))).text).toBe('Inserted 5 bytes');
    expect((await http(q('insert', { p, c: C1 }), { method: 'POST', body: ' wörld' })).text).toBe('Inserted 7 bytes');
    expect((await http(q('select', { p, c: C1 }))).text).toBe('hello wörld');
    expect((await http(q('update', { p, c: C1 }), { method: 'POST', body: 'new' })).text).toBe('Updated 3 bytes');
    expect((await http(q('select', { p, c: C1 }))).text).toBe('new');
    expect((await http(q('update', { p, c: C2, s: 'two' }))).text).toBe('Updated 3 bytes');
    expect((await http(q('delete', { p, c: C1 }))).text).toBe('Removed 3 bytes');
    expect((await http(q('select', { p, c: C1 }))).text).toBe('');
    expect((await http(q('delete', { p, c: C1 }))).text).toBe('Removed 0 bytes');
    expect((await http(q('select', { p, c: C2 }))).text).toBe('two');
  });

  test('coordinates may use ; for / (URL-encoded form)', async () => {
    await http(q('update', { p: 'semi', c: '3.2.1;1.1.1;1.1.9', s: 'x' }));
    expect((await http(q('select', { p: 'semi', c: '3.2.1/1.1.1/1.1.9' }))).text).toBe('x');
  });

  test('toc lists "* coord: summary" lines in coordinate order, summaries cut like libphext', async () => {
    const p = 'toc';
    await http(q('update', { p, c: C3 }), { method: 'POST', body: 'third' });
    await http(q('update', { p, c: C2 }), { method: 'POST', body: 'line one\nline two' });
    await http(q('update', { p, c: C1 }), { method: 'POST', body: 'a'.repeat(40) });
    expect((await http(q('toc', { p }))).text).toBe(
      `* ${C1}: ${'a'.repeat(32)}...\n* ${C2}: line one...\n* ${C3}: third\n`);
  });

  test('checksum is the xxh3-128 of the normalised phext; get returns that phext', async () => {
    const p = 'sum';
    const scrolls = [{ coord: parseCoord(C1), text: 'alpha' }, { coord: parseCoord(C3), text: 'gamma' }];
    for (const s of [...scrolls].reverse()) await http(q('update', { p, c: formatCoord(s.coord) }), { method: 'POST', body: s.text });
    const want = implode(scrolls);
    // Normalised: the two scrolls joined by the one library break that leads from C1 to C3.
    expect(Buffer.from(want).toString()).toBe('alpha\u0001gamma');
    expect((await http(q('checksum', { p }))).text).toBe(await checksum(Buffer.from('alpha\u0001gamma')));
    const got = await http(q('get', { p }));
    expect(got.text).toBe('alpha\u0001gamma');
    expect(explode(got.bytes).map((s) => s.text)).toEqual(['alpha', 'gamma']);
  });

  test('delta returns only scrolls whose checksums differ, and marks listed ones this side lacks', async () => {
    const p = 'delta';
    await http(q('update', { p, c: C1, s: 'same' }));
    await http(q('update', { p, c: C2, s: 'changed here' }));
    await http(q('update', { p, c: C3, s: 'unlisted' }));
    const manifest = `${C1}: ${await checksum(Buffer.from('same'))}\n${C2}: ${await checksum(Buffer.from('old'))}\n5.5.5/5.5.5/5.5.5: 00\n`;
    const r = await http(q('delta', { p }), { method: 'POST', body: manifest });
    expect(r.status).toBe(200);
    const out = explode(r.bytes).map((s) => [s.coord.join('.'), s.text]);
    expect(out).toEqual([
      ['1.1.1.1.1.1.1.1.2', 'changed here'],
      ['2.1.1.1.1.1.1.1.1', 'unlisted'],
      ['5.5.5.5.5.5.5.5.5', SCROLL_MISSING],
    ]);
    expect((await http(q('delta', { p }), { method: 'POST', body: 'no separator here' })).status).toBe(400);
  });

  test('documents never collide; the unnamed one is the sidecar\'s own phext coordinates', async () => {
    await http(q('update', { p: 'A', c: C1, s: 'in A' }));
    await http(q('update', { p: 'B', c: C1, s: 'in B' }));
    await http(q('update', { c: C1, s: 'in default' }));
    expect((await http(q('select', { p: 'A', c: C1 }))).text).toBe('in A');
    expect((await http(q('select', { p: 'B', c: C1 }))).text).toBe('in B');
    expect((await http(q('select', { p: 'never-written', c: C1 }))).text).toBe('');
    const z = new Client(sc.address);
    try {
      const r = await z.request('CGET', { coord: C1 });
      expect(r.header.result).toMatchObject({ found: true, kind: 'text' });
      expect(r.bodies[0].toString()).toBe('in default');
      // A named document lives d*1000 further along the first component.
      const range = await z.request('CRANGE', { pattern: `[${DOC_STRIDE}:].1.1/1.1.1/1.1.1` });
      expect((range.header.result as { n: number }).n).toBeGreaterThanOrEqual(2);
    } finally {
      await z.close();
    }
  });
});

describe('bad requests', () => {
  test('bad coordinates are 400 with a reason', async () => {
    for (const c of ['1.1.1/1.1.1/1.1.1000', '0.1.1/1.1.1/1.1.1', '1.1.1', 'x.y.z/1.1.1/1.1.1']) {
      const r = await http(q('select', { p: 'd', c }));
      expect(r.status).toBe(400);
      expect(r.text).toMatch(/coordinate|component/);
    }
    const missing = await http(q('select', { p: 'd' }));
    expect(missing).toMatchObject({ status: 400, text: expect.stringMatching(/missing coordinate parameter c/) });
  });

  test('path traversal in p is refused (403)', async () => {
    for (const p of ['../etc/passwd', 'a/b', 'a\\b', '..', 'x\u0001y']) {
      const r = await http(q('select', { p, c: C1 }));
      expect(r.status).toBe(403);
      expect(r.text).toMatch(/^Forbidden: invalid phext path/);
    }
  });

  test('unknown routes are 404, other methods 400, text with phext delimiters 400', async () => {
    expect((await http('/api/v2/nope')).status).toBe(404);
    expect((await http('/elsewhere')).status).toBe(404);
    expect((await http(q('select', { c: C1 }), { method: 'POST', body: 'x' })).status).toBe(404);
    expect((await http(q('select', { c: C1 }), { method: 'PUT' })).status).toBe(400);
    expect((await http(q('update', { p: 'd', c: C1 }), { method: 'POST', body: 'a\u0017b' })).status).toBe(400);
    expect((await http(q('update', { p: 'd', c: C1 }), { method: 'POST', body: Buffer.from([0xff, 0xfe]) })).status).toBe(400);
  });

  test('a body over the limit is 413, by Content-Length or streamed', async () => {
    const big = 'x'.repeat(5000);
    const r = await http(q('update', { p: 'd', c: C1 }), { method: 'POST', body: big });
    expect(r.status).toBe(413);
    // Chunked: no Content-Length, so the limit is enforced while reading.
    const s = await http(q('update', { p: 'd', c: C1 }), { method: 'POST', body: Array(5).fill('y'.repeat(1000)) });
    expect(s.status).toBe(413);
    expect((await http(q('select', { p: 'd', c: C1 }))).status).toBe(200);
  });

  test('malformed HTTP is never answered 2xx, and the server keeps serving', async () => {
    const port = sc.http!.port;
    const junk = [
      'GARBAGE\r\n\r\n',
      'GET /x HTTP/1.1\r\nHost: a\r\nBad Header Line\r\n\r\n',
      '\u0000\u0001\u0002\r\n\r\n',
      `POST ${q('update', { c: C1 })} HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\nxyz`,
      `POST ${q('update', { c: C1 })} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n`,
    ];
    const answers = await Promise.all(junk.map((text) => new Promise<string>((resolve) => {
      const sock = connect(port, '127.0.0.1', () => sock.write(text));
      let got = '';
      sock.on('data', (d) => { got += d.toString(); });
      sock.on('close', () => resolve(got));
      sock.on('error', () => resolve(got));
      // uWS drops a request it cannot parse, or waits for its idle timeout: stop waiting first.
      setTimeout(() => sock.destroy(), 700);
    })));
    for (const a of answers) expect(a).not.toMatch(/^HTTP\/1\.1 2/);
    expect((await http(q('select', { p: 'crud', c: C2 }))).text).toBe('two');
  });
});

describe('metrics over HTTP and ZeroMQ', () => {
  test('/metrics is Prometheus text that counts ZeroMQ ops and HTTP routes', async () => {
    const z = new Client(sc.address);
    try {
      await z.request('CPUT', { coord: '9.9.9/9.9.9/9.9.9', kind: 'text' }, [Buffer.from('m')]);
      await z.request('CGET', { coord: '9.9.9/9.9.9/9.9.9' });
      await z.request('CGET', { coord: 'bad' });
      const m = await z.request('METRICS', {});
      const snap = m.header.result as { ops: Record<string, { count: number; errors: number; bytes_in: number }> };
      expect(snap.ops.CGET.count).toBeGreaterThanOrEqual(2);
      expect(snap.ops.CGET.errors).toBeGreaterThanOrEqual(1);
      expect(snap.ops.CPUT.bytes_in).toBeGreaterThan(0);
      const prom = await z.request('METRICS', { format: 'prometheus' });
      expect(prom.bodies[0].toString()).toMatch(/^vtpu_requests_total\{op="CGET"\} \d+$/m);
    } finally {
      await z.close();
    }
    const r = await http('/metrics');
    expect(r.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = r.text;
    expect(text).toMatch(/^vtpu_requests_total\{op="HTTP select"\} \d+$/m);
    expect(text).toMatch(/^vtpu_request_duration_seconds_bucket\{op="CGET",le="\+Inf"\} \d+$/m);
    expect(text).toMatch(/^vtpu_http_responses_total\{status="404"\} \d+$/m);
    expect(text).toMatch(/^vtpu_store_entries \d+$/m);
  });
});

describe('exposure and keys', () => {
  test('a port already serving is refused, not shared', async () => {
    await expect(startSidecar({ address: 'tcp://127.0.0.1:0', poolThreshold: 0, http: { port: sc.http!.port } }))
      .rejects.toThrow(/cannot listen for HTTP/);
  });

  test('no CORS by default: responses and preflights carry no Access-Control headers', async () => {
    const r = await http(q('select', { c: C1 }), { method: 'OPTIONS' });
    expect(r.status).toBe(204);
    expect(r.headers['access-control-allow-origin']).toBeUndefined();
    expect(r.headers['access-control-allow-methods']).toBeUndefined();
    expect((await http(q('select', { c: C1 }))).headers['access-control-allow-origin']).toBeUndefined();
  });

  test('beyond loopback without a key or --http-insecure is refused', async () => {
    await expect(startSidecar({ address: 'tcp://127.0.0.1:0', poolThreshold: 0, http: { port: 0, host: '0.0.0.0' } }))
      .rejects.toThrow(/beyond loopback/);
  });

  test('with a key: 401 without or with a wrong one, /metrics stays open', async () => {
    const key = 'correct-horse-battery';
    const k = await startSidecar({ address: 'tcp://127.0.0.1:0', poolThreshold: 0, http: { port: 0, host: '0.0.0.0', key } });
    try {
      const url = `http://127.0.0.1:${k.http!.port}`;
      const sel = q('select', { c: C1 });
      expect((await http(sel, {}, url)).status).toBe(401);
      expect((await http(sel, { headers: { Authorization: 'Bearer wrong-key-123' } }, url)).status).toBe(401);
      expect((await http('/', {}, url)).status).toBe(401);
      expect((await http(sel, { headers: { Authorization: `Bearer ${key}` } }, url)).status).toBe(200);
      expect((await http(`/?key=${key}`, {}, url)).status).toBe(200);
      expect((await http('/metrics', {}, url)).status).toBe(200);
      expect((await wsFirstMessage(url, '/ws')).status).toBe(401);
      const ws = await wsFirstMessage(url, `/ws?key=${key}`);
      expect(ws.status).toBe(101);
      expect(JSON.parse(ws.message!)).toMatchObject({ total: expect.any(Object), store: expect.any(Object) });
    } finally {
      await k.close();
    }
  });
});
