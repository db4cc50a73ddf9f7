/**
 * The dashboard in a real browser: headless Debian Chromium (driven by playwright-core) loads
 * `/`, sees its charts move after the test issues operations (ZeroMQ, HTTP SQ, experts),
 * checks what they show, reopens the page (full at once, from the sidecar's ring), and saves
 * screenshots to test/artifacts/. test/ui/ensure-chromium.sh installs chromium when missing.
 */
import { spawnSync } from 'node:child_process';
import { get } from 'node:http';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { startSidecar, type Sidecar } from '../../../bridge/sidecar';
import { DIMS } from '../../../engine/types';
import { Client } from '../bridge/helpers';
import { encodeCoords, encodeScrolls } from '../../../bridge/arrow';
import { tensorBatch, type OutTensor } from '../../../engine/tensors';
import { ensureBuilt } from '../bridge/helpers';

const ROOT = join(__dirname, '..', '..', '..');
const SHOT = join(ROOT, 'test', 'artifacts', 'dashboard.png');
const SHOT_REOPENED = join(ROOT, 'test', 'artifacts', 'dashboard-reopened.png');

/** GET `url`; resolves with the status and body. */
function httpGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => get(url, { agent: false }, (res) => {
    let body = '';
    res.on('data', (d) => { body += d; }).on('end', () => resolve({ status: res.statusCode ?? 0, body }));
  }).on('error', reject));
}

/** A request with named tensors, as the Python client sends compute ops. */
function withTensors(params: Record<string, unknown>, named: Record<string, OutTensor>): [Record<string, unknown>, Uint8Array[]] {
  const names = Object.keys(named);
  return [{ ...params, tensors: names }, [encodeScrolls(tensorBatch(names.map((n) => named[n])))]];
}

/** Non-background pixels drawn on a canvas (what a screenshot of it would show). */
async function inked(page: import('playwright-core').Page, id: string): Promise<number> {
  return page.evaluate((cid) => {
    const c = document.getElementById(cid) as HTMLCanvasElement;
    const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
    return n;
  }, id);
}

let sc: Sidecar;
let browser: Browser;

beforeAll(async () => {
  ensureBuilt('dist/bridge/experts_worker.js');
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
  const failed: string[] = [];
  page.on('response', (res) => { if (res.status() >= 400) failed.push(`${res.status()} ${res.url()}`); });
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
    expect((await httpGet(`${sc.http!.url}/api/v2/update?p=ui&c=1.1.1/1.1.1/1.1.1&s=from%20http`)).status).toBe(200);
    // Six selects: two answered, three refused before they run (bad coordinates), one refused while running (a bad document name).
    const statuses = [];
    for (const q of ['p=ui&c=1.1.1/1.1.1/1.1.1', 'p=ui&c=1.1.1/1.1.1/1.1.2', 'p=ui&c=0.1.1/1.1.1/1.1.1', 'p=ui&c=bogus', 'p=ui', 'p=..&c=1.1.1/1.1.1/1.1.1']) {
      statuses.push((await httpGet(`${sc.http!.url}/api/v2/select?${q}`)).status);
    }
    expect(statuses).toEqual([200, 200, 400, 400, 400, 403]);
    // Experts for two layers, then tokens routed through them: the expert-load heatmap.
    const E = 8, H = 4, I = 2, T = 6;
    for (const layer of [0, 1]) {
      const w = (n: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i + layer));
      const load = await z.request('CEXPERTS', ...withTensors({ mode: 'load', layer, experts: E, hidden: H, intermediate: I, threads: 1 },
        { gate_up: { shape: [E, 2 * I, H], data: w(E * 2 * I * H) }, down: { shape: [E, H, I], data: w(E * H * I) } }));
      expect(load.header.ok).toBe(true);
      const ids = Int32Array.from({ length: T * 2 }, (_, i) => (i * (layer + 1)) % (layer ? E : 3)); // layer 0 uses 3 experts, layer 1 all
      const run = await z.request('CEXPERTS', ...withTensors({ mode: 'run', layer }, {
        x: { shape: [T, H], data: w(T * H) }, expert_ids: { shape: [T, 2], data: ids }, weights: { shape: [T, 2], data: new Float32Array(T * 2).fill(0.5) } }));
      expect(run.header.ok).toBe(true);
    }
    const issued = 200 * 2 + 5 + 1 + 6 + 4;
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

  // Per-op HTTP counts agree with the responses: 6 selects, 4 of them errors.
  const selectRow = () => page.evaluate(() => [...document.querySelectorAll('#ops tbody tr')].map((r) => [...r.children].map((c) => c.textContent))
    .find((cells) => cells[0] === 'HTTP select'));
  await page.waitForFunction(() => [...document.querySelectorAll('#ops tbody tr')].some((r) => r.children[0].textContent === 'HTTP select' && r.children[1].textContent === '6'));
  expect((await selectRow())!.slice(0, 3)).toEqual(['HTTP select', '6', '4']);
  const prom = (await httpGet(`${sc.http!.url}/metrics`)).body;
  expect(prom).toMatch(/vtpu_requests_total\{op="HTTP select"\} 6\n/);
  expect(prom).toMatch(/vtpu_request_errors_total\{op="HTTP select"\} 4\n/);

  // The pool chart: busy workers and queued tasks, both in tasks; the store chart: scrolls alone; memory in MiB.
  expect(await page.locator('#l-pool').textContent()).toMatch(/busy workers/);
  expect(await page.locator('#pool-threads').textContent()).toMatch(/2 threads/);
  expect(await page.locator('#l-store').textContent()).toMatch(/^scrolls \d/);
  expect(await page.locator('#l-mem').textContent()).toMatch(/RSS \d/);

  // The expert-load heatmap: two layers of eight experts, every routed token-slot counted.
  await page.waitForFunction(() => document.getElementById('c-heat')!.dataset.layers === '2', undefined, { timeout: 5000 });
  expect(await page.getAttribute('#c-heat', 'data-experts')).toBe('8');
  expect(await page.getAttribute('#c-heat', 'data-total')).toBe(String(2 * 6 * 2));
  expect(await page.locator('#heat-section').isVisible()).toBe(true);

  // The rate legend lists only ops that moved in the last minute (CGET, CPUT, ... not every HTTP route) on one line.
  const legend = await page.locator('#l-rate').textContent();
  expect(legend).not.toMatch(/HTTP insert|HTTP delete|HTTP toc/);
  const legendBox = await page.locator('#l-rate').boundingBox();
  expect(legendBox!.height).toBeLessThan(24);

  mkdirSync(join(ROOT, 'test', 'artifacts'), { recursive: true });
  await page.screenshot({ path: SHOT, fullPage: true });
  process.stdout.write(`dashboard screenshot: ${SHOT}\n`);
  // What the screenshot shows: every chart and the heatmap have ink on them.
  for (const id of ['c-rate', 'c-lat', 'c-pool', 'c-store', 'c-mem', 'c-heat']) expect(await inked(page, id)).toBeGreaterThan(500);

  // Reopened, the page starts with the last minute from the sidecar's ring, not an empty chart.
  const again = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  again.on('pageerror', (e) => errors.push(e.message));
  await again.goto(sc.http!.url + '/');
  await again.waitForFunction(() => document.getElementById('status')!.textContent === 'live');
  await again.waitForFunction(() => Number(document.getElementById('c-rate')!.dataset.points) > 0);
  const points = Number(await again.getAttribute('#c-rate', 'data-points'));
  expect(points).toBeGreaterThanOrEqual(25); // at least the load phase's samples, at once
  expect(Number(await again.getAttribute('#c-rate', 'data-max'))).toBeGreaterThan(0);
  await again.screenshot({ path: SHOT_REOPENED, fullPage: true });
  expect(await inked(again, 'c-rate')).toBeGreaterThan(500);

  expect(errors).toEqual([]);
  expect(foreign).toEqual([]);
  expect(failed).toEqual([]); // no 404 (the favicon is inline)
}, 90_000);
