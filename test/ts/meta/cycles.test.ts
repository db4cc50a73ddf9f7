import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

// Imports (type-only ones too) between our TypeScript files must form no cycle: a cycle
// means two files that can only be understood together.
const ROOT = resolve(__dirname, '..', '..', '..');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

function edges(file: string): string[] {
  const src = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of src.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+'(\.[^']+)'/gms)) {
    const target = resolve(dirname(file), m[1]);
    for (const cand of [`${target}.ts`, join(target, 'index.ts')]) {
      try {
        if (statSync(cand).isFile()) {
          out.push(cand);
          break;
        }
      } catch {
        // not this one
      }
    }
  }
  return out;
}

test('engine/ and bridge/ have no import cycles', () => {
  const all = [...files(join(ROOT, 'engine')), ...files(join(ROOT, 'bridge'))];
  const graph = new Map(all.map((f) => [f, edges(f)]));
  const state = new Map<string, 1 | 2>();
  const cycles: string[] = [];
  const visit = (f: string, path: string[]) => {
    state.set(f, 1);
    for (const g of graph.get(f) ?? []) {
      if (state.get(g) === 1) cycles.push([...path.slice(path.indexOf(g)), g].map((x) => relative(ROOT, x)).join(' → '));
      else if (!state.has(g)) visit(g, [...path, g]);
    }
    state.set(f, 2);
  };
  for (const f of all) if (!state.has(f)) visit(f, [f]);
  expect(cycles).toEqual([]);
});
