#!/usr/bin/env node
'use strict';
// The `vtpu` command: a shim over the compiled CLI (bridge/cli.ts → dist/bridge/cli.js).
const fs = require('fs');
const path = require('path');

const cli = path.join(__dirname, '..', 'dist', 'bridge', 'cli.js');
if (!fs.existsSync(cli)) {
  process.stderr.write('vtpu: not built; run `npm run build` (or make)\n');
  process.exit(2);
}
// A closed pipe (`vtpu phext explode f | head`) ends the command quietly.
process.stdout.on('error', (e) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});
require(cli).main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (e) => { process.stderr.write(`vtpu: ${(e && e.message) || e}\n`); process.exitCode = 1; },
);
