/**
 * The sidecar's multi-agent options: its agent name, the ranges it owns, other agents'
 * ranges, and an interval sync target. Checked at the boundary with TypeErrors naming the
 * option, like bridge/sidecar.ts's other options.
 */
import type { Engine } from '../../engine/engine';
import { VtpuError } from '../../engine/errors';
import { parsePattern } from '../../engine/pattern';
import { checkAgent, type OwnerRule } from '../../engine/sync/owners';
import { syncState } from '../../engine/sync/state';
import type { SyncTarget } from './service';

/** Sidecar options for ownership and sync. */
export interface SyncOptions {
  /** This sidecar's agent name (with `owns`, its writes go only there). */
  agent?: string;
  /** Patterns this agent owns; writes there from other agents' sidecars are refused (E_OWNER). */
  owns?: string[];
  /** Other agents' patterns known up front (peers also announce theirs when syncing). */
  owners?: OwnerRule[];
  /** Sync `pattern` with `peer` every `everyS` seconds. */
  sync?: { peer: string; pattern: string; everyS: number; serverKey?: string };
}

function typeErr(e: unknown, option: string): never {
  if (e instanceof VtpuError || e instanceof TypeError) throw new TypeError(`option '${option}': ${e.message}`);
  throw e;
}

/** Checks the options; returns the interval target (everyMs set) when one was asked for. */
export function checkSyncOptions(o: SyncOptions): (SyncTarget & { everyMs: number }) | undefined {
  try {
    if (o.agent !== undefined) checkAgent(o.agent);
  } catch (e) {
    typeErr(e, 'agent');
  }
  if (o.owns !== undefined) {
    if (o.agent === undefined) throw new TypeError(`option 'owns' needs option 'agent'`);
    if (!Array.isArray(o.owns)) throw new TypeError(`option 'owns' must be a list of patterns`);
    for (const p of o.owns) {
      try {
        parsePattern(p);
      } catch (e) {
        typeErr(e, 'owns');
      }
    }
  }
  if (o.owners !== undefined && !Array.isArray(o.owners)) throw new TypeError(`option 'owners' must be a list of {agent, pattern}`);
  if (o.sync === undefined) return undefined;
  const s = o.sync;
  if (typeof s !== 'object' || s === null || typeof s.peer !== 'string' || typeof s.pattern !== 'string') {
    throw new TypeError(`option 'sync' must be {peer, pattern, everyS}`);
  }
  if (typeof s.everyS !== 'number' || !(s.everyS > 0) || s.everyS > 86_400) throw new TypeError(`option 'sync.everyS' must be seconds in (0, 86400]`);
  try {
    parsePattern(s.pattern);
  } catch (e) {
    typeErr(e, 'sync.pattern');
  }
  return { peer: s.peer, pattern: s.pattern, serverKey: s.serverKey, everyMs: Math.round(s.everyS * 1000) };
}

/** Installs the ownership rules and write clocks on `engine` (after {@link checkSyncOptions}). */
export function applyOwnership(engine: Engine, o: SyncOptions): void {
  // Sync switched on at start: clock every write from the first one.
  if (o.agent === undefined && o.owns === undefined && o.owners === undefined && o.sync === undefined) return;
  const owners = syncState(engine).owners;
  owners.agent = o.agent;
  for (const p of o.owns ?? []) owners.add(o.agent as string, p);
  try {
    owners.learn(o.owners);
  } catch (e) {
    typeErr(e, 'owners');
  }
}
