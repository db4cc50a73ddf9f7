/** HTTP access rules: loopback by default, a bearer key, and the flag that allows neither. */
import { createHash, timingSafeEqual } from 'node:crypto';

/** True for host names that only this machine can reach. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * Checks the bind settings: beyond loopback needs a key or an explicit `insecure`.
 * Throws TypeError (a usage error at the CLI) otherwise.
 */
export function checkExposure(host: string, key: string | undefined, insecure: boolean): void {
  if (key !== undefined && key.length < 8) throw new TypeError('the HTTP API key must be at least 8 characters');
  if (!isLoopback(host) && key === undefined && !insecure) {
    throw new TypeError(`binding HTTP to ${host} (beyond loopback) needs an API key (--http-key or VTPU_HTTP_KEY), ` +
      'or --http-insecure to serve without one');
  }
}

/** Compares a presented key with the expected one in constant time. */
export class KeyCheck {
  private readonly digest?: Buffer;

  constructor(key: string | undefined) {
    this.digest = key === undefined ? undefined : sha(key);
  }

  /** True when `authorization` (`Bearer <key>`) or `queryKey` (browser pages) matches. */
  allows(authorization: string, queryKey: string | null): boolean {
    if (!this.digest) return true;
    const m = /^\s*bearer\s+(.+?)\s*$/i.exec(authorization);
    const presented = m ? m[1] : queryKey;
    return presented !== null && presented !== undefined && timingSafeEqual(sha(presented), this.digest);
  }
}

function sha(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}
