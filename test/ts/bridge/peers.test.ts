/** The peer limit counts live clients: a closed connection frees its slot without waiting out the idle expiry. */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSidecar, type Sidecar } from '../../../bridge/sidecar';
import { Client } from './helpers';

const MAX_PEERS = 3;

/** PINGs until answered ok; E_LIMIT is retried while the server has not yet seen an earlier close. */
async function pingOk(address: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const c = new Client(address);
    try {
      const r = await c.request('PING');
      if (r.header.ok) return;
      expect(r.header.error!.code).toBe('E_LIMIT');
      if (Date.now() > deadline) throw new Error(`still refused: ${r.header.error!.message}`);
    } finally {
      await c.close();
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe.each(['ipc', 'tcp'])('peer limit over %s', (transport) => {
  let sc: Sidecar;
  beforeAll(async () => {
    const address = transport === 'ipc' ? `ipc://${join(tmpdir(), `vtpu-peers-${process.pid}.sock`)}` : 'tcp://127.0.0.1:*';
    sc = await startSidecar({ address, poolThreshold: 0, computeThreshold: 0, maxPeers: MAX_PEERS });
  });
  afterAll(() => sc.close());

  test('a connect / ping / close loop never exhausts the limit', async () => {
    // Ten times the limit: with closed sockets counted, iteration MAX_PEERS + 1 is refused for 60 s.
    for (let i = 0; i < MAX_PEERS * 10; i++) await pingOk(sc.address);
  });

  test('open clients still count, and a brand-new one is refused while they are connected', async () => {
    const open = Array.from({ length: MAX_PEERS }, () => new Client(sc.address));
    try {
      // Earlier closes may still be in flight: retry until all MAX_PEERS are admitted.
      for (const c of open) {
        const deadline = Date.now() + 10_000;
        while (!(await c.request('PING')).header.ok) {
          if (Date.now() > deadline) throw new Error('slot never freed');
          await new Promise((r) => setTimeout(r, 20));
        }
      }
      const extra = new Client(sc.address);
      const r = await extra.request('PING');
      await extra.close();
      expect(r.header.error?.code).toBe('E_LIMIT');
    } finally {
      for (const c of open) await c.close();
    }
    await pingOk(sc.address);
  });
});
