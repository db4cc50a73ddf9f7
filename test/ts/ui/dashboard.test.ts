/**
 * The dashboard in a real browser: headless Debian Chromium (driven by playwright-core) loads
 * `/`, sees its charts move after the test issues operations, and saves a screenshot to
 * test/artifacts/dashboard.png. test/ui/ensure-chromium.sh installs chromium when missing.
 */
import { spawnSync } from 'node:child_process';
import { get } from 'node:http';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { startSidecar, type Sidecar } from '../../../bridge/sidecar';
import { DIMS } from '../../../engine/types';
import { Client } from '../bridge/helpers';
import { encodeCoords } from '../../../bridge/arrow';

const ROOT = join(__dirname, '..', '..', '..');
const SHOT = join(ROOT, 'test', 'artifacts', 'dashboard.png');

let sc: Sidecar;
let browser: Browser;

beforeAll(async () => {
  const r = spawnSync('bash', [join(ROOT, 'test', 'ui', 'ensure-chromium.sh')], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error('chromium is missing and could not be installed (test/ui/ensure-chromium.sh)');
  sc = await startSidecar({ address: 'tcp://127.0.0.1:0', threads: 2, poolThreshold: 256, http: { port: 0 } });
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-background-networking'], headless: true });
}, 600_000);

afterAll(async () => {
  await browser?.close();
  await sc?.close();
});

test('the dashboard shows live charts that move with the load', async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  // Offline: every request the page makes must go to the sidecar itself (no CDN).
  const foreign: string[] = [];
  page.on('request', (req) => { if (!req.url().startsWith(sc.http!.url) && !req.url().startsWith(sc.http!.url.replace('http', 'ws'))) foreign.push(req.url()); });
  await page.goto(sc.http!.url + '/');
  await page.waitForFunction(() => document.getElementById('status')!.textContent === 'live');
  const before = Number(await page.getAttribute('#total-count', 'data-count'));

  const z = new Client(sc.address);
  const n = 1024;
  const coords = new Uint32Array(n * DIMS).fill(1);
  for (let i = 0; i < n; i++) coords[i * DIMS + DIMS - 1] = (i % 999) + 1;
  try {
    for (let i = 0; i < 200; i++) {
      await z.request('CPUT', { coord: `1.1.1/1.1.1/1.1.${(i % 999) + 1}`, kind: 'text' }, [Buffer.from(`scroll ${i}`)]);
      await z.request('CGET', { coord: `1.1.1/1.1.1/1.1.${(i % 999) + 1}` });
    }
    for (let i = 0; i < 5; i++) await z.request('CGET', { batch: true }, [encodeCoords(coords)]); // pool work
    await new Promise((resolve, reject) => get(`${sc.http!.url}/api/v2/update?p=ui&c=1.1.1/1.1.1/1.1.1&s=from%20http`, { agent: false }, (res) => res.resume().on('end', resolve)).on('error', reject));
    const issued = 200 * 2 + 5 + 1;
    await page.waitForFunction((want) => Number(document.getElementById('total-count')!.dataset.count) >= want, before + issued);
    // A couple of seconds of steady load, so the screenshot shows lines rather than a step.
    const p0 = Number(await page.getAttribute('#c-rate', 'data-points'));
    for (let i = 0; Number(await page.getAttribute('#c-rate', 'data-points')) < p0 + 25; i++) {
      await z.request('CGET', { coord: `1.1.1/1.1.1/1.1.${(i % 999) + 1}` });
      if (i % 200 === 0) await z.request('CGET', { batch: true }, [encodeCoords(coords)]);
    }
  } finally {
    await z.close();
  }
  await page.waitForFunction(() => Number(document.getElementById('c-rate')!.dataset.max) > 0);
  await page.waitForFunction(() => Number(document.getElementById('c-lat')!.dataset.max) > 0);
  await page.waitForFunction(() => Number(document.getElementById('c-store')!.dataset.max) >= 200);
  await page.waitForFunction(() => document.querySelector('#ops tbody')!.textContent!.includes('CPUT'));
  const poolSeries = await page.locator('#l-pool').textContent();
  expect(poolSeries).toMatch(/worker \d+/);
  mkdirSync(join(ROOT, 'test', 'artifacts'), { recursive: true });
  await page.screenshot({ path: SHOT, fullPage: true });
  process.stdout.write(`dashboard screenshot: ${SHOT}\n`);
  expect(errors).toEqual([]);
  expect(foreign).toEqual([]);
}, 60_000);
