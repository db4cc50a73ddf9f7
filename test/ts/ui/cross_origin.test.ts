/**
 * A hostile web page in a real browser (headless Debian Chromium via playwright-core) cannot
 * use a loopback sidecar's HTTP API: a page on another origin cannot read (no CORS header),
 * write (Origin refused, even for no-cors requests the browser sends blind) or open /ws; a
 * DNS-rebinding page (its own name resolving to 127.0.0.1, so same-origin to the browser) is
 * refused by the Host check.
 */
import { spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { startSidecar, type Sidecar } from '../../../bridge/sidecar';
import { Client } from '../bridge/helpers';
import { httpRequest } from '../http/helpers';

const ROOT = join(__dirname, '..', '..', '..');
const SECRET = 'the secret document';
const REBIND = 'rebind.example';

let sc: Sidecar;
let browser: Browser;
let evil: Server;
let evilUrl: string;
let sizeBefore: number;

/** The attack, run in the page against `target` (the sidecar's URL as the page names it). */
function attackPage(target: string): string {
  return `<!doctype html><title>evil</title><script>
window.results = {};
const S = ${JSON.stringify(target)};
const doc = 'p=secret&c=1.1.1/1.1.1/1.1.1';
(async () => {
  try { const r = await fetch(S + '/api/v2/select?' + doc); results.read = r.status + ':' + await r.text(); } catch (e) { results.read = 'blocked'; }
  try { await fetch(S + '/api/v2/update?' + doc + '&s=pwned', { mode: 'no-cors' }); results.getWrite = 'sent'; } catch (e) { results.getWrite = 'blocked'; }
  try { await fetch(S + '/api/v2/insert?p=evil&c=1.1.1/1.1.1/1.1.1', { method: 'POST', body: 'pwned', mode: 'no-cors' }); results.postWrite = 'sent'; } catch (e) { results.postWrite = 'blocked'; }
  results.ws = await new Promise((done) => {
    const ws = new WebSocket(S.replace('http', 'ws') + '/ws');
    ws.onmessage = (m) => done('read:' + String(m.data).slice(0, 40));
    ws.onerror = () => done('refused');
  });
  results.done = true;
})();
</script>`;
}

beforeAll(async () => {
  const r = spawnSync('bash', [join(ROOT, 'test', 'ui', 'ensure-chromium.sh')], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error('chromium is missing and could not be installed (test/ui/ensure-chromium.sh)');
  sc = await startSidecar({ address: 'tcp://127.0.0.1:0', poolThreshold: 0, http: { port: 0 } });
  const put = await httpRequest(`${sc.http!.url}/api/v2/insert?p=secret&c=1.1.1/1.1.1/1.1.1`, { method: 'POST', body: SECRET });
  expect(put.status).toBe(200);
  sizeBefore = await storeSize();
  evil = createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html' }).end(attackPage(sc.http!.url));
  });
  await new Promise<void>((ok) => evil.listen(0, '127.0.0.1', ok));
  evilUrl = `http://127.0.0.1:${(evil.address() as AddressInfo).port}/`;
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium', headless: true,
    // Chromium's own Private/Local Network Access checks would stop the rebinding page before
    // it reaches the sidecar; off, it stands for browsers without them (Firefox, Safari).
    args: ['--no-sandbox', '--disable-background-networking', `--host-resolver-rules=MAP ${REBIND} 127.0.0.1`,
      '--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests,PrivateNetworkAccessSendPreflights'],
  });
}, 600_000);

afterAll(async () => {
  await browser?.close();
  await new Promise((ok) => evil?.close(ok));
  await sc?.close();
});

/** The SQ text of document `doc` at 1.1.1/1.1.1/1.1.1, read by a non-browser client. */
async function docText(doc: string): Promise<string> {
  return (await httpRequest(`${sc.http!.url}/api/v2/select?p=${doc}&c=1.1.1/1.1.1/1.1.1`)).text;
}

/** Scrolls in the store, counted over ZeroMQ. */
async function storeSize(): Promise<number> {
  const z = new Client(sc.address);
  try {
    return (await z.request('CRANGE', { pattern: '*.*.*/*.*.*/*.*.*', values: false })).header.result!.n as number;
  } finally {
    await z.close();
  }
}

/** The store holds the secret unchanged and nothing the attacker wrote. */
async function expectUntouched(): Promise<void> {
  expect(await docText('secret')).toBe(SECRET);
  expect(await docText('evil')).not.toContain('pwned');
  expect(await storeSize()).toBe(sizeBefore);
}

async function attack(url: string, rebind = false): Promise<Record<string, string>> {
  const page = await browser.newPage();
  try {
    if (rebind) {
      // The rebinding attacker served this page from its own server first; the page's
      // later requests go to the same name, which now resolves to 127.0.0.1.
      await page.route(url, (route) => route.fulfill({ status: 200, contentType: 'text/html', body: attackPage(url.replace(/\/$/, '')) }));
    }
    await page.goto(url);
    await page.waitForFunction(() => (window as unknown as { results: { done?: boolean } }).results.done === true, undefined, { timeout: 30_000 });
    return await page.evaluate(() => (window as unknown as { results: Record<string, string> }).results);
  } finally {
    await page.close();
  }
}

test('a page on another origin can neither read, write nor open /ws', async () => {
  const results = await attack(evilUrl);
  expect(results.read).toBe('blocked'); // no Access-Control-Allow-Origin: the browser withholds the reply
  expect(results.ws).toBe('refused');
  expect(results.getWrite).toBe('sent'); // no-cors requests go out blind: the server must refuse them
  await expectUntouched();
}, 60_000);

test('a DNS-rebinding page (same origin to the browser) is refused by the Host check', async () => {
  const results = await attack(`http://${REBIND}:${sc.http!.port}/`, true);
  expect(results.read).toMatch(/^403:.*is not this server's name/);
  expect(results.read).not.toContain(SECRET);
  expect(results.ws).toBe('refused');
  await expectUntouched();
}, 60_000);
