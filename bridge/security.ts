/**
 * Who may reach the sidecar. ipc:// and loopback tcp:// are local-only; binding tcp:// on any
 * other interface needs ZeroMQ CURVE (a server secret key: clients must know the matching
 * public key, traffic is encrypted) or an explicit `insecure` opt-out. Errors are TypeErrors
 * naming the option, like the other option checks.
 */
import { readFileSync, writeFileSync } from 'node:fs';
// Type-only at load: the CLI's phext tools read keys here without loading native zeromq.
import type * as zmq from 'zeromq';

const Z85_KEY = /^[0-9A-Za-z.\-:+=^!/*?&<>()[\]{}@%$#]{40}$/;

/** True for ipc:// and tcp:// on 127.0.0.0/8, ::1 or localhost. */
export function isLocalOnly(address: string): boolean {
  if (address.startsWith('ipc://')) return true;
  const m = /^tcp:\/\/(\[[^\]]+\]|[^:/]+):/.exec(address);
  if (!m) return false;
  const host = m[1].toLowerCase();
  return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Throws TypeError when `address` is reachable from other hosts without CURVE or `insecure`. */
export function checkExposure(address: string, curveSecretKey: string | undefined, insecure: boolean): void {
  if (curveSecretKey !== undefined || insecure || isLocalOnly(address)) return;
  throw new TypeError(`binding ${address} beyond loopback needs CURVE keys (option 'curveSecretKey', ` +
    `vtpu serve --curve-secret-file FILE; make one with vtpu keygen) or option 'insecure' (--insecure)`);
}

/** Throws TypeError unless `key` is a 40-character z85 CURVE key. */
export function checkKey(key: unknown, what: string): string {
  if (typeof key !== 'string' || !Z85_KEY.test(key)) throw new TypeError(`${what} must be a 40-character z85 CURVE key`);
  return key;
}

/** The secret key in `file` (its first line, as `vtpu keygen --out` writes it). */
export function readCurveSecret(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new TypeError(`cannot read the CURVE secret key file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return checkKey(text.split('\n')[0].trim(), `the first line of ${file}`);
}

/** Socket options making a ROUTER a CURVE server with `secretKey`. */
export function curveServerOptions(secretKey: string | undefined): Partial<zmq.Router> {
  return secretKey === undefined ? {} : { curveServer: true, curveSecretKey: secretKey };
}

/**
 * A new CURVE keypair. With `out`, writes the secret key to `out` (mode 0600) and the public
 * key to `out.pub`; returns both keys.
 */
export async function keygen(out?: string): Promise<{ publicKey: string; secretKey: string }> {
  const kp = (await import('zeromq')).curveKeyPair();
  if (out !== undefined) {
    writeFileSync(out, kp.secretKey + '\n', { mode: 0o600 });
    writeFileSync(`${out}.pub`, kp.publicKey + '\n');
  }
  return kp;
}
