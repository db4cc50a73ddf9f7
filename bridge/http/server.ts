/**
 * The sidecar's HTTP and WebSocket front end on uWebSockets.js: `/metrics` (Prometheus
 * text), `/` (the live dashboard), `/ws` (metrics snapshots at ~10 Hz) and the SQ subset
 * under `/api/v2/`. Off unless a port is given; loopback unless told otherwise. This file
 * binds, checks Host/Origin/CORS and the key, and serves /ws; the routes are a table in
 * routes.ts. SQ routes run under the ZeroMQ server's store gate and are recorded in its
 * metrics as `HTTP <route>`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as uWS from 'uWebSockets.js';
import type { Engine } from '../../engine/engine';
import type { SidecarServer } from '../server';
import { KeyCheck, checkExposure } from './auth';
import { OriginPolicy } from './origin';
import { Documents } from './documents';
import { SQ_ROUTES } from './sq';
import { STATUS, TEXT, findRoute, sqName, type Exchange, type RouteDeps } from './routes';
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

/** uWS's LIBUS_LISTEN_EXCLUSIVE_PORT (exported at run time; the typings only name the enum). */
const EXCLUSIVE_PORT = (uWS as unknown as { LIBUS_LISTEN_EXCLUSIVE_PORT: number }).LIBUS_LISTEN_EXCLUSIVE_PORT;

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

  const deps: RouteDeps = { sidecar, engine, metrics, docs, dashboard, maxBody, foreignPage };

  app.any('/*', (res, req) => {
    let aborted = false;
    res.onAborted(() => { aborted = true; });
    const method = req.getMethod().toUpperCase();
    const url = req.getUrl();
    const origin = req.getHeader('origin');
    const hostHeader = req.getHeader('host');
    if (!access.hostAllowed(hostHeader)) return send(res, 403, foreignHost(hostHeader));
    // A foreign page may only navigate the browser to a read (a link to the dashboard); writes are refused by the route.
    const foreign = access.fromForeignPage(origin, hostHeader, req.getHeader('sec-fetch-site'));
    if (foreign && !(method === 'GET' && req.getHeader('sec-fetch-mode') === 'navigate')) return send(res, 403, foreignPage(origin));
    const cors = access.corsFor(origin);
    if (method === 'OPTIONS') return preflight(res, cors);
    // A request to an SQ route counts as that op even when refused before it runs.
    const sq = sqName(url);
    const x: Exchange = {
      res, method, url, origin, foreign, cors,
      query: new URLSearchParams(req.getQuery() ?? ''),
      length: req.getHeader('content-length'),
      sqOp: sq !== undefined && Object.hasOwn(SQ_ROUTES, sq) ? `HTTP ${sq}` : undefined,
      t0: performance.now(),
      head: url.length + (req.getQuery() ?? '').length,
      aborted: () => aborted,
      out: (status, body, type = TEXT) => send(res, status, body, type, cors),
      refuse: (status, text) => {
        if (x.sqOp) metrics.record(x.sqOp, performance.now() - x.t0, x.head, Buffer.byteLength(text), false);
        x.out(status, text);
      },
    };
    if (method !== 'GET' && method !== 'POST') return x.out(400, 'Bad Request');
    const route = findRoute(method, url);
    if (route?.auth !== 'none' && !keys.allows(req.getHeader('authorization'), route?.auth === 'header-or-query' ? x.query.get('key') : null)) {
      return x.refuse(401, 'Unauthorized');
    }
    if (!route) return x.refuse(404, 'Not Found');
    route.handle(x, deps);
  });

  /** A CORS preflight: the allow headers only for an origin --http-cors allows (else the browser stops there). */
  const preflight = (res: uWS.HttpResponse, cors: string | undefined) => {
    metrics.recordHttp(204);
    res.cork(() => {
      res.writeStatus(STATUS[204]);
      if (cors !== undefined) {
        res.writeHeader('Access-Control-Allow-Origin', cors).writeHeader('Vary', 'Origin')
          .writeHeader('Access-Control-Allow-Methods', 'GET, POST, OPTIONS').writeHeader('Access-Control-Allow-Headers', 'Authorization, Content-Type')
          .writeHeader('Access-Control-Max-Age', '86400');
      }
      res.end();
    });
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
