/**
 * The sidecar's HTTP and WebSocket front end on uWebSockets.js: `/metrics` (Prometheus
 * text), `/` (the live dashboard), `/ws` (metrics snapshots at ~10 Hz) and the SQ subset
 * under `/api/v2/`. Off unless a port is given; loopback unless told otherwise. SQ routes
 * run under the ZeroMQ server's store gate and are recorded in its metrics as `HTTP <route>`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as uWS from 'uWebSockets.js';
import { VtpuError } from '../../engine/errors';
import { PROMETHEUS_CONTENT_TYPE, renderPrometheus } from '../../engine/metrics/index';
import type { Engine } from '../../engine/engine';
import type { SidecarServer } from '../server';
import { KeyCheck, checkExposure } from './auth';
import { OriginPolicy } from './origin';
import { DocumentNameError, Documents } from './documents';
import { BadRequest, SQ_ROUTES, coordParam, runSq, scrollText, type SqCall } from './sq';
import { MetricsHistory } from './history';

/** Options of {@link startHttp}. */
export interface HttpOptions {
  /** TCP port; 0 picks a free one. */
  port: number;
  /** Interface to bind (default 127.0.0.1). */
  host?: string;
  /** API key every route but /metrics requires (`Authorization: Bearer <key>`). */
  key?: string;
  /** Allow binding beyond loopback without a key. */
  insecure?: boolean;
  /** Largest request body in bytes; larger ones are answered 413 (default 64 MiB, SQ's limit). */
  maxBodyBytes?: number;
  /** Origins (scheme://host:port) whose pages may call the API cross-origin; default none (./origin). */
  cors?: string[];
  /** Host names besides the bound address that requests may name (e.g. a proxy's); default none. */
  names?: string[];
}

/** A listening HTTP front end. */
export interface HttpServer {
  readonly port: number;
  /** `http://host:port` */
  readonly url: string;
  close(): void;
}

const TEXT = 'text/plain; charset=utf-8';
/** uWS's LIBUS_LISTEN_EXCLUSIVE_PORT (exported at run time; the typings only name the enum). */
const EXCLUSIVE_PORT = (uWS as unknown as { LIBUS_LISTEN_EXCLUSIVE_PORT: number }).LIBUS_LISTEN_EXCLUSIVE_PORT;
const STATUS: Record<number, string> = {
  200: '200 OK', 204: '204 No Content', 400: '400 Bad Request', 401: '401 Unauthorized', 403: '403 Forbidden',
  404: '404 Not Found', 413: '413 Payload Too Large', 500: '500 Internal Server Error',
};

/** The dashboard page: a static file beside this module's source (no build step). */
export function dashboardFile(): string {
  const here = __filename.endsWith('.ts') ? __dirname : join(__dirname, '..', '..', '..', 'bridge', 'http');
  return join(here, 'dashboard.html');
}

/** Starts the HTTP server; rejects with TypeError on bad options, Error when the port cannot be bound. */
export function startHttp(sidecar: SidecarServer, engine: Engine, opts: HttpOptions): Promise<HttpServer> {
  const host = opts.host ?? '127.0.0.1';
  const maxBody = opts.maxBodyBytes ?? 64 * 1024 * 1024;
  if (!Number.isSafeInteger(opts.port) || opts.port < 0 || opts.port > 65535) throw new TypeError(`HTTP port must be 0..65535, got ${opts.port}`);
  if (!Number.isSafeInteger(maxBody) || maxBody < 1) throw new TypeError(`HTTP max body must be a positive integer, got ${maxBody}`);
  checkExposure(host, opts.key, opts.insecure ?? false);
  const keys = new KeyCheck(opts.key);
  if (opts.cors !== undefined && !Array.isArray(opts.cors)) throw new TypeError('HTTP cors must be a list of origins');
  if (opts.names !== undefined && (!Array.isArray(opts.names) || opts.names.some((n) => typeof n !== 'string' || n === ''))) throw new TypeError('HTTP names must be a list of host names');
  const access = new OriginPolicy(host, opts.names, opts.cors);
  const metrics = sidecar.metrics;
  const docs = new Documents(engine.store);
  const dashboard = readFileSync(dashboardFile());
  const sockets = new Set<uWS.WebSocket<unknown>>();
  const history = new MetricsHistory();
  const app = uWS.App();

  /** `cors`: the Access-Control-Allow-Origin value, only for an origin --http-cors allows. */
  const send = (res: uWS.HttpResponse, status: number, body: string | Uint8Array, type = TEXT, cors?: string) => {
    metrics.recordHttp(status);
    res.cork(() => {
      res.writeStatus(STATUS[status] ?? `${status} Error`);
      if (cors !== undefined) res.writeHeader('Access-Control-Allow-Origin', cors).writeHeader('Vary', 'Origin');
      res.writeHeader('Content-Type', type);
      res.end(body);
    });
  };
  const foreignHost = (hostHeader: string) => `Forbidden: Host ${JSON.stringify(hostHeader)} is not this server's name (--http-name adds one)`;
  const foreignPage = (origin: string) => `Forbidden: requests from pages on ${origin || 'another site'} are not allowed (--http-cors allows an origin)`;

  app.ws('/ws', {
    maxPayloadLength: 1024,
    idleTimeout: 60,
    upgrade: (res, req, ctx) => {
      const hostHeader = req.getHeader('host');
      const origin = req.getHeader('origin');
      if (!access.hostAllowed(hostHeader)) return send(res, 403, foreignHost(hostHeader));
      if (access.fromForeignPage(origin, hostHeader, req.getHeader('sec-fetch-site'))) return send(res, 403, foreignPage(origin));
      const allowed = keys.allows(req.getHeader('authorization'), new URLSearchParams(req.getQuery() ?? '').get('key'));
      if (!allowed) return send(res, 401, 'Unauthorized');
      res.upgrade({}, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), ctx);
    },
    open: (ws) => {
      sockets.add(ws);
      ws.subscribe('metrics');
      // The last minute at once, then live snapshots; details (the expert-load matrix) once a second.
      ws.send(history.size ? history.message() : JSON.stringify(metrics.snapshot()));
      ws.send(JSON.stringify({ details: metrics.readDetails() }));
    },
    close: (ws) => {
      sockets.delete(ws);
    },
  });

  app.any('/*', (res, req) => {
    let aborted = false;
    res.onAborted(() => { aborted = true; });
    const method = req.getMethod().toUpperCase();
    const url = req.getUrl();
    const query = new URLSearchParams(req.getQuery() ?? '');
    const authorization = req.getHeader('authorization');
    const length = req.getHeader('content-length');
    const origin = req.getHeader('origin');
    const hostHeader = req.getHeader('host');
    if (!access.hostAllowed(hostHeader)) return send(res, 403, foreignHost(hostHeader));
    // A foreign page may only navigate the browser to a read (a link to the dashboard); writes are refused below.
    const foreign = access.fromForeignPage(origin, hostHeader, req.getHeader('sec-fetch-site'));
    if (foreign && !(method === 'GET' && req.getHeader('sec-fetch-mode') === 'navigate')) return send(res, 403, foreignPage(origin));
    const cors = access.corsFor(origin);
    const out = (status: number, body: string | Uint8Array, type = TEXT) => send(res, status, body, type, cors);
    // A request to an SQ route counts as that op even when refused before it runs.
    const sq = /^\/api\/v2\/([a-z]+)$/.exec(url)?.[1];
    const sqOp = sq !== undefined && Object.hasOwn(SQ_ROUTES, sq) ? `HTTP ${sq}` : undefined;
    const t0 = performance.now();
    const head = url.length + (req.getQuery() ?? '').length;
    const refuse = (status: number, text: string) => {
      if (sqOp) metrics.record(sqOp, performance.now() - t0, head, Buffer.byteLength(text), false);
      out(status, text);
    };
    if (method === 'OPTIONS') {
      metrics.recordHttp(204);
      res.cork(() => {
        res.writeStatus(STATUS[204]);
        // A preflight from an origin --http-cors does not allow gets no CORS headers: the browser stops there.
        if (cors !== undefined) {
          res.writeHeader('Access-Control-Allow-Origin', cors).writeHeader('Vary', 'Origin')
            .writeHeader('Access-Control-Allow-Methods', 'GET, POST, OPTIONS').writeHeader('Access-Control-Allow-Headers', 'Authorization, Content-Type')
            .writeHeader('Access-Control-Max-Age', '86400');
        }
        res.end();
      });
      return;
    }
    if (method !== 'GET' && method !== 'POST') return out(400, 'Bad Request');
    if (url === '/metrics' && method === 'GET') return out(200, renderPrometheus(metrics), PROMETHEUS_CONTENT_TYPE);
    if (!keys.allows(authorization, url === '/' ? query.get('key') : null)) return refuse(401, 'Unauthorized');
    if ((url === '/' || url === '/index.html') && method === 'GET') return out(200, dashboard, 'text/html; charset=utf-8');
    const m = /^\/api\/v2\/([a-z]+)$/.exec(url);
    const route = m ? SQ_ROUTES[m[1]] : undefined;
    if (!m || !route || (method === 'POST' && !route.body)) return refuse(404, 'Not Found');
    if (foreign && route.write) return refuse(403, foreignPage(origin));
    let call: SqCall;
    try {
      call = { route: m[1], doc: query.get('p') ?? '' };
      if (['select', 'insert', 'update', 'delete'].includes(call.route)) call.coord = coordParam(query.get('c'));
      if (method === 'GET' && route.body) call.text = scrollText(Buffer.from(query.get('s') ?? ''));
    } catch (e) {
      return refuse(400, (e as Error).message);
    }
    const run = (body: Uint8Array | undefined) => {
      const bytesIn = head + (body?.length ?? 0);
      try {
        if (body !== undefined) call.text = scrollText(body);
      } catch (e) {
        return refuse(400, (e as Error).message);
      }
      sidecar.call(`HTTP ${call.route}`, route.write, bytesIn, () => runSq(engine.store, docs, call), (r) => (typeof r === 'string' ? Buffer.byteLength(r) : r.length))
        .then((r) => { if (!aborted) out(200, r); }, (e) => { if (!aborted) fail(res, e, cors); });
    };
    if (method === 'GET') return run(undefined);
    if (length !== '' && Number(length) > maxBody) return tooLarge(res, Number(length), maxBody, sqOp, t0, head);
    readBody(res, maxBody, run, (n) => { if (!aborted) tooLarge(res, n, maxBody, sqOp, t0, head + n); });
  });

  const fail = (res: uWS.HttpResponse, e: unknown, cors?: string) => {
    if (e instanceof BadRequest) return send(res, 400, e.message, TEXT, cors);
    if (e instanceof DocumentNameError) return send(res, 403, `Forbidden: ${e.message}`, TEXT, cors);
    if (e instanceof VtpuError && (e.code === 'E_COORD' || e.code === 'E_PARAM' || e.code === 'E_DTYPE')) return send(res, 400, e.message, TEXT, cors);
    if (e instanceof VtpuError && e.code === 'E_LIMIT') return send(res, 413, e.message, TEXT, cors);
    return send(res, 500, `Internal Server Error: ${(e as Error).message}`, TEXT, cors);
  };
  const tooLarge = (res: uWS.HttpResponse, n: number, max: number, op: string | undefined, t0: number, bytesIn: number) => {
    const text = `body of ${n} bytes is over the limit of ${max} bytes`;
    if (op) metrics.record(op, performance.now() - t0, bytesIn, Buffer.byteLength(text), false);
    metrics.recordHttp(413);
    res.cork(() => res.writeStatus(STATUS[413]).writeHeader('Content-Type', TEXT).end(text, true));
  };

  let ticks = 0;
  const unsubscribe = metrics.subscribe((snap) => {
    const text = JSON.stringify(snap);
    history.push(text);
    if (app.numSubscribers('metrics') === 0) return;
    app.publish('metrics', text);
    if (++ticks % 10 === 0) app.publish('metrics', JSON.stringify({ details: metrics.readDetails() }));
  });

  return new Promise((resolve, reject) => {
    // Exclusive: by default uWS sets SO_REUSEPORT, and a second sidecar on the same port
    // would silently take half the requests.
    const listen = app.listen as unknown as (h: string, p: number, o: number, cb: (ls: uWS.us_listen_socket | false) => void) => void;
    listen.call(app, host, opts.port, EXCLUSIVE_PORT, (ls) => {
      if (!ls) {
        unsubscribe();
        reject(new Error(`cannot listen for HTTP on ${host}:${opts.port}`));
        return;
      }
      const port = uWS.us_socket_local_port(ls);
      resolve({
        port,
        url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
        close: () => {
          unsubscribe();
          uWS.us_listen_socket_close(ls);
          for (const ws of sockets) ws.end(1001, 'closing');
        },
      });
    });
  });
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
