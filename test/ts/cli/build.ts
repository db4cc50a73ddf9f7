/** Makes sure dist/bridge/cli.js is built from the current sources, so `npx jest` alone works. */
import { spawnSync } from 'child_process';
import { existsSync, readdirSync, statSync } from 'fs';
import * as path from 'path';

/** Newest mtime (ms) of the .ts files under `dir`, recursively. */
function newestSource(dir: string): number {
  let newest = 0;
  if (!existsSync(dir)) return newest;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/**
 * Runs tsc when dist/bridge/cli.js is missing or older than any engine/bridge source.
 * Type errors elsewhere do not block (tsc still emits; typechecking is its own step), but a
 * build that leaves no fresh cli.js fails with tsc's output.
 */
export function ensureBuilt(repoRoot: string): void {
  const out = path.join(repoRoot, 'dist', 'bridge', 'cli.js');
  const sources = Math.max(newestSource(path.join(repoRoot, 'engine')), newestSource(path.join(repoRoot, 'bridge')));
  if (existsSync(out) && statSync(out).mtimeMs >= sources) return;
  const started = Date.now();
  const tsc = path.join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: repoRoot, encoding: 'utf8' });
  if (!existsSync(out) || statSync(out).mtimeMs < started - 1000) {
    throw new Error(`tsc did not produce ${out}:\n${r.stdout}${r.stderr}`);
  }
}
