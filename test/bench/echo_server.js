// The round-trip peer: a bare zeromq.js ROUTER that echoes every message unchanged, or with
// --first-body only its first body frame (a transfer floor: request bytes in, reply bytes out).
// Prints its endpoint once bound, like the sidecar, so the benchmark can connect.
const zmq = require('zeromq');

async function main() {
  const address = process.argv[2];
  const sock = new zmq.Router({ linger: 0 });
  await sock.bind(address);
  process.stdout.write(`echo listening on ${sock.lastEndpoint}\n`);
  const stop = () => { sock.close(); process.exit(0); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  const firstBody = process.argv.includes('--first-body');
  for await (const frames of sock) await sock.send(firstBody ? frames.slice(0, 2) : frames);
}

main().catch((err) => { console.error(err); process.exit(1); });
