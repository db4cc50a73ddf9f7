/**
 * `vtpu serve` flags for durability: `--data DIR`, `--fsync always|<ms>`,
 * `--snapshot-every <N writes>|<N>s`, `--recover refuse|truncate`. No runtime imports, so the phext tools stay light.
 */
import type { DurableOptions } from './journal';

/** Flags this module parses. */
export const DURABLE_FLAGS = ['--data', '--fsync', '--snapshot-every', '--recover'];

/**
 * Folds one flag into `d` (created on first use); throws Error with a usage message on a
 * bad value. The caller checks that `--fsync`/`--snapshot-every`/`--recover` came with `--data`.
 */
export function parseDurableFlag(d: Partial<DurableOptions>, flag: string, value: string): void {
  if (flag === '--data') {
    if (value === '') throw new Error('serve: --data must name a directory');
    d.dir = value;
  } else if (flag === '--recover') {
    if (value !== 'refuse' && value !== 'truncate') throw new Error(`serve: --recover must be refuse or truncate, got ${JSON.stringify(value)}`);
    d.recover = value;
  } else if (flag === '--fsync') {
    if (value === 'always') d.fsync = 'always';
    else d.fsync = count(flag, value, value);
  } else {
    const m = /^(\d+)(s?)$/.exec(value);
    if (!m) throw new Error(`serve: --snapshot-every must be N (writes) or Ns (seconds), got ${JSON.stringify(value)}`);
    const n = count(flag, m[1], value);
    d.snapshotEvery = m[2] ? { seconds: n } : { writes: n };
  }
}

function count(flag: string, digits: string, value: string): number {
  const n = Number(digits);
  if (!/^[0-9]+$/.test(digits) || !Number.isSafeInteger(n) || n < 1) {
    throw new Error(`serve: ${flag} needs a positive whole number, got ${JSON.stringify(value)}`);
  }
  return n;
}
