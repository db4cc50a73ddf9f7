/**
 * The HTTP routes as a table of small handlers. server.ts checks Host, Origin and CORS for
 * every request, picks the first route whose method and path match, checks the API key as
 * the route asks, and calls its handler with an {@link Exchange}.
 */
import type * as uWS from 'uWebSockets.js';
import { VtpuError } from '../../engine/errors';
import { PROMETHEUS_CONTENT_TYPE, renderPrometheus } from '../../engine/metrics/index';
import type { Metrics } from '../../engine/metrics/registry';
import type { Engine } from '../../engine/engine';
import type { SidecarServer } from '../server';
import { DocumentNameError, type Documents } from './documents';
import { BadRequest, SQ_ROUTES, coordParam, runSq, scrollText, type SqCall } from './sq';

export const TEXT = 'text/plain; charset=utf-8';
export const STATUS: Record<number, string> = {
  200: '200 OK', 204: '204 No Content', 400: '400 Bad Request', 401: '401 Unauthorized', 403: '403 Forbidden',
  404: '404 Not Found', 413: '413 Payload Too Large', 500: '500 Internal Server Error',
};

/** One request as a handler sees it. */
export interface Exchange {
  readonly res: uWS.HttpResponse;
  readonly method: string;
  readonly url: string;
  readonly query: URLSearchParams;
  /** The request's Content-Length header ('' when absent). */
  readonly length: string;
  /** The page's Origin header ('' when absent) and whether it is a foreign page. */
  readonly origin: string;
  readonly foreign: boolean;
  /** The Access-Control-Allow-Origin value for an origin --http-cors allows. */
  readonly cors?: string;
  /** The SQ op this request counts as in the metrics (`HTTP <route>`), when it names one. */
  readonly sqOp?: string;
  /** When the request arrived (performance.now()) and its URL and query bytes. */
  readonly t0: number;
  readonly head: number;
  /** True once the client went away: nothing may be written then. */
  aborted(): boolean;
  /** Replies (with the CORS header when allowed). */
  out(status: number, body: string | Uint8Array, type?: string): void;
  /** Replies with an error, recorded against the SQ op when there is one. */
  refuse(status: number, text: string): void;
}

/** What the handlers use of the sidecar. */
export interface RouteDeps {
  readonly sidecar: SidecarServer;
  readonly engine: Engine;
  readonly metrics: Metrics;
  readonly docs: Documents;
  readonly dashboard: Uint8Array;
  readonly maxBody: number;
  foreignPage(origin: string): string;
}

/** A route: the methods and path it answers, how the API key may come, and its handler. */
export interface Route {
  readonly methods: readonly string[];
  readonly path: string | RegExp;
  /** none: open (/metrics); header: `Authorization: Bearer`; header-or-query: `?key=` too (a dashboard link). */
  readonly auth: 'none' | 'header' | 'header-or-query';
  handle(x: Exchange, deps: RouteDeps): void;
}

/** `/api/v2/<name>`: an SQ call (sq.ts says which names exist). */
const SQ_PATH = /^\/api\/v2\/([a-z]+)$/;

/** The SQ call a path names, or undefined. */
export function sqName(url: string): string | undefined {
  return SQ_PATH.exec(url)?.[1];
}

/** The routes, first match wins; a request no route takes needs the key and gets 404. */
const ROUTES: readonly Route[] = [
  { methods: ['GET'], path: '/metrics', auth: 'none', handle: (x, d) => x.out(200, renderPrometheus(d.metrics), PROMETHEUS_CONTENT_TYPE) },
  { methods: ['GET'], path: '/', auth: 'header-or-query', handle: dashboard },
  { methods: ['GET'], path: '/index.html', auth: 'header', handle: dashboard },
  { methods: ['GET', 'POST'], path: SQ_PATH, auth: 'header', handle: sq },
];

/** The route for a method and path, or null. */
export function findRoute(method: string, url: string): Route | null {
  return ROUTES.find((r) => r.methods.includes(method) && (typeof r.path === 'string' ? r.path === url : r.path.test(url))) ?? null;
}

function dashboard(x: Exchange, d: RouteDeps): void {
  x.out(200, d.dashboard, 'text/html; charset=utf-8');
}

/** An SQ call (sq.ts): parsed from the query, body read when it has one, run under the store gate. */
function sq(x: Exchange, d: RouteDeps): void {
  const name = sqName(x.url) as string;
  const route = Object.hasOwn(SQ_ROUTES, name) ? SQ_ROUTES[name] : undefined;
  if (!route || (x.method === 'POST' && !route.body)) return x.refuse(404, 'Not Found');
  if (x.foreign && route.write) return x.refuse(403, d.foreignPage(x.origin));
  let call: SqCall;
  try {
    call = { route: name, doc: x.query.get('p') ?? '' };
    if (['select', 'insert', 'update', 'delete'].includes(call.route)) call.coord = coordParam(x.query.get('c'));
    if (x.method === 'GET' && route.body) call.text = scrollText(Buffer.from(x.query.get('s') ?? ''));
  } catch (e) {
    return x.refuse(400, (e as Error).message);
  }
  const run = (body: Uint8Array | undefined) => {
    const bytesIn = x.head + (body?.length ?? 0);
    try {
      if (body !== undefined) call.text = scrollText(body);
    } catch (e) {
      return x.refuse(400, (e as Error).message);
    }
    d.sidecar.call(`HTTP ${call.route}`, route.write, bytesIn, () => runSq(d.engine.store, d.docs, call), (r) => (typeof r === 'string' ? Buffer.byteLength(r) : r.length))
      .then((r) => { if (!x.aborted()) x.out(200, r); }, (e) => { if (!x.aborted()) fail(x, e); });
  };
  if (x.method === 'GET') return run(undefined);
  if (x.length !== '' && Number(x.length) > d.maxBody) return tooLarge(x, d, Number(x.length), x.head);
  readBody(x.res, d.maxBody, run, (n) => { if (!x.aborted()) tooLarge(x, d, n, x.head + n); });
}

/** A failed SQ call: bad input 400, a bad document name 403, a limit 413, else 500. */
function fail(x: Exchange, e: unknown): void {
  if (e instanceof BadRequest) return x.out(400, e.message);
  if (e instanceof DocumentNameError) return x.out(403, `Forbidden: ${e.message}`);
  if (e instanceof VtpuError && (e.code === 'E_COORD' || e.code === 'E_PARAM' || e.code === 'E_DTYPE')) return x.out(400, e.message);
  if (e instanceof VtpuError && e.code === 'E_LIMIT') return x.out(413, e.message);
  x.out(500, `Internal Server Error: ${(e as Error).message}`);
}

/** 413 for a body over the limit, closing the connection (the rest of the body is not read). */
function tooLarge(x: Exchange, d: RouteDeps, n: number, bytesIn: number): void {
  const text = `body of ${n} bytes is over the limit of ${d.maxBody} bytes`;
  if (x.sqOp) d.metrics.record(x.sqOp, performance.now() - x.t0, bytesIn, Buffer.byteLength(text), false);
  d.metrics.recordHttp(413);
  x.res.cork(() => x.res.writeStatus(STATUS[413]).writeHeader('Content-Type', TEXT).end(text, true));
}

/** Collects a streamed body, giving up (once) as soon as it passes `max` bytes. */
function readBody(res: uWS.HttpResponse, max: number, done: (body: Uint8Array) => void, over: (n: number) => void): void {
  const parts: Buffer[] = [];
  let n = 0;
  let refused = false;
  res.onData((chunk, isLast) => {
    if (refused) return;
    n += chunk.byteLength;
    if (n > max) {
      refused = true;
      over(n);
      return;
    }
    parts.push(Buffer.from(chunk.slice(0))); // uWS reuses the chunk's memory after this call
    if (isLast) done(Buffer.concat(parts));
  });
}
