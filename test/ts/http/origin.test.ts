/** Host and Origin checks of the HTTP front end, and CORS only for origins --http-cors names. */
import { startSidecar, type Sidecar } from '../../../bridge/sidecar';
import { OriginPolicy, checkOrigin } from '../../../bridge/http/origin';
import { Client } from '../bridge/helpers';
import { httpRequest, wsFirstMessage } from './helpers';

const TRUSTED = 'http://app.example:3000';
const EVIL = 'http://evil.example';
let sc: Sidecar;
let base: string;
const insert = (doc: string) => `/api/v2/insert?p=${doc}&c=1.1.1/1.1.1/1.1.1&s=written`;
const select = (doc: string) => `/api/v2/select?p=${doc}&c=1.1.1/1.1.1/1.1.1`;

/** Nothing was written (checked over ZeroMQ). */
async function expectEmptyStore(): Promise<void> {
  const z = new Client(sc.address);
  try {
    expect((await z.request('CRANGE', { pattern: '*.*.*/*.*.*/*.*.*' })).header.result).toMatchObject({ n: 0 });
  } finally {
    await z.close();
  }
}

beforeAll(async () => {
  sc = await startSidecar({ address: 'tcp://127.0.0.1:0', poolThreshold: 0, http: { port: 0, cors: [TRUSTED], names: ['vtpu.internal'] } });
  base = sc.http!.url;
});
afterAll(() => sc.close());

test('a foreign Host (DNS rebinding) is refused on every route, /ws included, and writes nothing', async () => {
  const host = { Host: `evil.example:${sc.http!.port}` };
  for (const path of ['/', '/metrics', select('d'), insert('rebound')]) {
    const r = await httpRequest(base + path, { headers: host });
    expect(r.status).toBe(403);
    expect(r.text).toMatch(/Host "evil.example:\d+" is not this server's name/);
  }
  expect((await httpRequest(base + insert('rebound'), { method: 'POST', body: 'x', headers: { ...host, Origin: `http://evil.example:${sc.http!.port}` } })).status).toBe(403);
  expect((await wsFirstMessage(base, '/ws', host)).status).toBe(403);
  await expectEmptyStore();
});

test('loopback names, the bound address and --http-name are this server', async () => {
  for (const h of ['127.0.0.1', 'localhost', '[::1]', 'vtpu.internal', 'VTPU.internal']) {
    expect((await httpRequest(`${base}/metrics`, { headers: { Host: `${h}:${sc.http!.port}` } })).status).toBe(200);
  }
});

test('a page on another origin can neither read, write nor open /ws; CORS headers only for --http-cors origins', async () => {
  const w = await httpRequest(base + insert('foreign'), { headers: { Origin: EVIL } });
  expect(w.status).toBe(403);
  expect(w.text).toMatch(/requests from pages on http:\/\/evil.example are not allowed/);
  expect(w.headers['access-control-allow-origin']).toBeUndefined();
  expect((await httpRequest(base + insert('foreign'), { method: 'POST', body: 'x', headers: { Origin: 'null' } })).status).toBe(403);
  expect((await wsFirstMessage(base, '/ws', { Origin: EVIL })).status).toBe(403);
  expect((await httpRequest(base + select('foreign'), { headers: { Origin: EVIL } })).status).toBe(403);
  await expectEmptyStore();
  // Same origin (the dashboard's own page) and the trusted origin are served; only the latter gets CORS headers.
  const same = await wsFirstMessage(base, '/ws', { Origin: base });
  expect(same.status).toBe(101);
  const ok = await httpRequest(base + insert('trusted'), { headers: { Origin: TRUSTED } });
  expect(ok.status).toBe(200);
  expect(ok.headers['access-control-allow-origin']).toBe(TRUSTED);
  expect(ok.headers.vary).toBe('Origin');
  const pre = await httpRequest(base + insert('trusted'), { method: 'OPTIONS', headers: { Origin: TRUSTED } });
  expect(pre.headers['access-control-allow-methods']).toBe('GET, POST, OPTIONS');
});

test('without an Origin, Sec-Fetch-Site marks a foreign page: only a navigation to a read passes', async () => {
  const blind = { 'Sec-Fetch-Site': 'same-site', 'Sec-Fetch-Mode': 'no-cors' }; // another port of 127.0.0.1
  expect((await httpRequest(base + insert('blind'), { headers: blind })).status).toBe(403);
  expect((await httpRequest(base + select('blind'), { headers: blind })).status).toBe(403);
  const link = { 'Sec-Fetch-Site': 'cross-site', 'Sec-Fetch-Mode': 'navigate' };
  expect((await httpRequest(`${base}/`, { headers: link })).status).toBe(200);
  expect((await httpRequest(base + insert('link'), { headers: link })).status).toBe(403);
  expect((await httpRequest(base + insert('typed'), { headers: { 'Sec-Fetch-Site': 'none', 'Sec-Fetch-Mode': 'navigate' } })).status).toBe(200);
});

test('policy rules: wildcard binds accept IP literals only; origins must be scheme://host[:port]', () => {
  const any = new OriginPolicy('0.0.0.0');
  expect(any.hostAllowed('10.1.2.3:80')).toBe(true);
  expect(any.hostAllowed('[fe80::1]:80')).toBe(true);
  expect(any.hostAllowed('attacker.example:80')).toBe(false);
  expect(any.hostAllowed('')).toBe(false);
  const one = new OriginPolicy('10.0.0.5');
  expect(one.hostAllowed('10.0.0.5:1')).toBe(true);
  expect(one.hostAllowed('127.0.0.1:1')).toBe(false);
  for (const bad of ['*', 'evil.example', 'http://a/b', 'http://*.example']) expect(() => checkOrigin(bad)).toThrow(/scheme:\/\/host/);
});
