/**
 * The sidecar's Node-API addons (native/*.c, built by `make build` into dist/native). Each
 * loads lazily; a missing one is null with the reason, and its users fall back (the
 * shared-memory path answers SHM opens with an error, the expert runtime keeps its pages).
 */
import { join } from 'node:path';

const loaded = new Map<string, { addon: unknown; why: string }>();

/** dist/native/<name>.node, from dist/bridge/*.js or from bridge/*.ts under ts-jest. */
export function addonFile(name: string): string {
  return __filename.endsWith('.ts') ? join(__dirname, '..', 'dist', 'native', `${name}.node`) : join(__dirname, '..', 'native', `${name}.node`);
}

/** The addon `name` (vtpu_shm, vtpu_heap), or null; {@link addonMissing} says why. */
export function loadAddon<T>(name: string): T | null {
  let a = loaded.get(name);
  if (!a) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      a = { addon: require(addonFile(name)), why: '' };
    } catch (e) {
      a = { addon: null, why: `addon ${addonFile(name)} did not load (${(e as Error).message.split('\n')[0]}); run \`make build\`` };
    }
    loaded.set(name, a);
  }
  return a.addon as T | null;
}

/** Why {@link loadAddon} gave null for `name` ('' when it loaded). */
export function addonMissing(name: string): string {
  loadAddon(name);
  return (loaded.get(name) as { why: string }).why;
}
