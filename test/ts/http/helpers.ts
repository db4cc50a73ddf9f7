/** HTTP test helpers: one request per connection, and a hand-made WebSocket upgrade. */
import { request } from 'node:http';

export interface Reply { status: number; text: string; bytes: Buffer; headers: Record<string, string | string[] | undefined> }

/**
 * One request on its own connection (node:http without keep-alive, so no idle socket
 * outlives the tests). `body` may be a list of chunks, sent with chunked encoding.
 */
export function httpRequest(url: string, init: { method?: string; body?: string | Buffer | string[]; headers?: Record<string, string> } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: init.method ?? 'GET', headers: init.headers, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => {
        const bytes = Buffer.concat(parts);
        resolve({ status: res.statusCode!, text: bytes.toString('utf8'), bytes, headers: res.headers });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    if (Array.isArray(init.body)) for (const chunk of init.body) req.write(chunk);
    else if (init.body !== undefined) req.write(init.body);
    req.end();
  });
}

/** Opens /ws by hand (Node 20 has no WebSocket client): the status, and the first text frame on 101. */
export function wsFirstMessage(url: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; message?: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url + path, {
      agent: false,
      headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', ...headers },
    });
    req.on('response', (res) => { res.resume(); resolve({ status: res.statusCode! }); });
    req.on('upgrade', (res, sock) => {
      let buf = Buffer.alloc(0);
      sock.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        const len7 = buf[1] & 0x7f;
        const [len, at] = len7 === 126 ? [buf.readUInt16BE(2), 4] : len7 === 127 ? [Number(buf.readBigUInt64BE(2)), 10] : [len7, 2];
        if (buf.length >= at + len) {
          sock.destroy();
          resolve({ status: res.statusCode!, message: buf.subarray(at, at + len).toString() });
        }
      });
    });
    req.on('error', reject);
    req.end();
  });
}
