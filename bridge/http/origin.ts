/**
 * Which browsers' requests the HTTP front end answers. A web page the user has open may
 * send requests to a loopback sidecar; two rules keep it out:
 * - Host: the name the client asked for must be this server's (the bound address, an IP
 *   literal, a loopback name when bound to loopback, or a configured `--http-name`), so a
 *   DNS-rebinding page (its own name resolving to 127.0.0.1) is refused;
 * - Origin: a request a browser sends from a page on another origin is refused unless
 *   `--http-cors` names that origin, and only such origins get CORS headers (none by default).
 *   Browsers leave Origin off a no-cors GET (an <img>, a blind fetch), so `Sec-Fetch-Site`
 *   (cross-site / same-site: another port of 127.0.0.1 is same-site) marks those; the server
 *   lets such a request through only as a top-level navigation to a read (a link to the dashboard).
 */
import { isIP } from 'node:net';
import { isLoopback } from './auth';

/** Answers the Host and Origin questions for one server. */
export class OriginPolicy {
  private readonly names: Set<string>;
  private readonly cors: Set<string>;

  /** `host` is the bound interface; `names` extra Host names; `cors` origins allowed to call cross-origin. */
  constructor(private readonly host: string, names: readonly string[] = [], cors: readonly string[] = []) {
    this.names = new Set(names.map((n) => n.toLowerCase()));
    this.cors = new Set(cors.map((o) => checkOrigin(o)));
  }

  /** True when a request's Host header names this server. */
  hostAllowed(hostHeader: string): boolean {
    const name = hostName(hostHeader);
    if (name === undefined) return false;
    if (this.names.has(name)) return true;
    const bound = this.host.toLowerCase();
    if (bound === '0.0.0.0' || bound === '::') return isIP(name) !== 0;
    if (isLoopback(bound)) return isLoopback(name);
    return name === bound;
  }

  /**
   * True when a browser sent the request from a page on another origin that `--http-cors`
   * does not allow: its Origin (when present) is neither this server's nor allowed, or,
   * without one, its `Sec-Fetch-Site` says another site or port.
   */
  fromForeignPage(origin: string, hostHeader: string, fetchSite: string): boolean {
    if (origin !== '') {
      const o = origin.toLowerCase();
      return o !== `http://${hostHeader.toLowerCase()}` && !this.cors.has(o);
    }
    return fetchSite === 'cross-site' || fetchSite === 'same-site';
  }

  /** The Access-Control-Allow-Origin value for `origin`, or undefined (no CORS header). */
  corsFor(origin: string): string | undefined {
    return origin !== '' && this.cors.has(origin.toLowerCase()) ? origin : undefined;
  }
}

/** An `--http-cors` value: a scheme://host[:port] origin, lower-cased; TypeError otherwise. */
export function checkOrigin(origin: string): string {
  if (typeof origin !== 'string' || !/^https?:\/\/[^/\s?#*]+$/i.test(origin)) {
    throw new TypeError(`HTTP CORS origin must be scheme://host[:port] (no wildcard, no path), got ${JSON.stringify(origin)}`);
  }
  return origin.toLowerCase();
}

/** The name part of a Host header (`[::1]:80` → `::1`), lower-cased; undefined when malformed. */
function hostName(hostHeader: string): string | undefined {
  const h = hostHeader.trim().toLowerCase();
  const m = /^\[([0-9a-f:.]+)\](?::\d+)?$/.exec(h) ?? /^([^:[\]\s/]+)(?::\d+)?$/.exec(h);
  return m ? m[1] : undefined;
}
