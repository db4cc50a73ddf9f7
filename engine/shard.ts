/**
 * A sidecar as one shard of a cluster: the versioned route table (engine/routes.ts) says
 * which coordinate ranges it owns. Once told which shard it is (CROUTE `{table, version,
 * shard}`), it refuses client writes outside its ranges (E_SHARD, through the store's write
 * guard, engine/sync/state.ts) and any request made with another table version (E_STALE):
 * the client reads the table again (CROUTE with no params) and retries. Sync's own applies
 * bypass the ownership check, so a range can be copied to its next owner before it moves.
 */
import { VtpuError } from './errors';
import { DIMS } from './types';
import { parsePattern } from './pattern';
import type { EngineContext } from './instruction';
import type { RouteTable } from './routes';
import { syncState } from './sync/state';

/** Ops a stale client may still send: they read or set the table itself, or the sidecar's state. */
const UNVERSIONED = new Set(['CROUTE', 'PING', 'METRICS', 'SHM', 'CSYNC']);

/**
 * E_STALE when a request names a route table version (`params.rv`) other than this shard's.
 * Requests without `rv` (a plain client) are not checked.
 */
export function checkRouteVersion(routes: RouteTable, op: string, params: Record<string, unknown>): void {
  const rv = params.rv;
  if (rv === undefined || routes.self === undefined || UNVERSIONED.has(op)) return;
  if (rv === routes.version) return;
  if (typeof rv !== 'number' || !Number.isInteger(rv) || rv < 0) {
    throw new VtpuError('E_PARAM', `${op}: rv must be a route table version (an integer ≥ 0), got ${JSON.stringify(rv)}`);
  }
  throw new VtpuError('E_STALE', `${op}: route table version ${rv} is not this shard's version ${routes.version}; ` +
    'read the table with CROUTE and retry');
}

function versionParam(v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= 2 ** 52) {
    throw new VtpuError('E_PARAM', `CROUTE: version must be an integer 0..2^52, got ${JSON.stringify(v)}`);
  }
  return v;
}

/**
 * Installs `params.table` (validated whole), its `version` and, with `shard`, which shard
 * this sidecar is (then its writes are checked). A version older than the installed one is
 * refused (E_STALE): tables only move forward.
 */
export function installTable(engine: EngineContext, params: Record<string, unknown>): void {
  const routes = engine.routes;
  const version = params.version === undefined ? routes.version : versionParam(params.version);
  if (version < routes.version) {
    throw new VtpuError('E_STALE', `CROUTE: table version ${version} is older than the installed version ${routes.version}`);
  }
  let self: number | undefined = routes.self;
  if (params.shard !== undefined) {
    const s = params.shard;
    if (typeof s !== 'number' || !Number.isInteger(s) || s < 0 || s > 0xffffffff) {
      throw new VtpuError('E_PARAM', `CROUTE: shard must be an integer 0..2^32-1, got ${JSON.stringify(s)}`);
    }
    self = s;
  }
  routes.replace(params.table);
  routes.version = version;
  routes.self = self;
  if (self !== undefined) syncState(engine); // hooks the store's write guard, which checks ownership
}

/**
 * Deletes every stored scroll another shard owns (what stays behind after a range moved
 * away), past the ownership check; the deletes are logged like any write. Returns how many.
 */
export function pruneForeign(engine: EngineContext): number {
  const routes = engine.routes;
  if (routes.self === undefined) throw new VtpuError('E_PARAM', 'CROUTE: prune needs a shard (install a table with shard first)');
  const all = engine.store.range(parsePattern('*.*.*/*.*.*/*.*.*'), Number.MAX_SAFE_INTEGER, false).batch.coords as Uint32Array;
  const n = all.length / DIMS;
  const foreign: number[] = [];
  for (let i = 0; i < n; i++) if (routes.shardOf(all, i) !== routes.self) foreign.push(i);
  let deleted = 0;
  for (let from = 0; from < foreign.length; from += engine.maxBatch) {
    const part = foreign.slice(from, from + engine.maxBatch);
    const coords = new Uint32Array(part.length * DIMS);
    part.forEach((row, k) => coords.set(all.subarray(row * DIMS, row * DIMS + DIMS), k * DIMS));
    deleted += syncState(engine).bypass(() => engine.store.deleteBatch(coords));
  }
  return deleted;
}
