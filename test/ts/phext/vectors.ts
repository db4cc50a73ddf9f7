/** Loads the shared phext conformance vectors (VTPU_SHARED_DIR or ../shared beside the repo). */
import { readFileSync } from 'fs';
import * as path from 'path';

/** The shape of conformance/phext.json. */
export interface PhextVectors {
  about: string;
  coordinates: { valid: string[]; invalid_for_phext: string[] };
  explode: { phext: string; scrolls: Record<string, string> }[];
  implode: { scrolls: Record<string, string>; phext?: string; length?: number }[];
  checksum: Record<string, string>;
}

/** Repository root (test/ts/phext → ../../..). */
export const repoRoot = path.resolve(__dirname, '..', '..', '..');

/** Absolute path of the conformance file. */
export const vectorsPath = path.join(
  process.env.VTPU_SHARED_DIR ?? path.resolve(repoRoot, '..', 'shared'), 'conformance', 'phext.json');

/** Parsed vectors; throws (failing the suite) when the file is missing. */
export function loadVectors(): PhextVectors {
  return JSON.parse(readFileSync(vectorsPath, 'utf8')) as PhextVectors;
}

/** UTF-8 bytes of a string. */
export function utf8(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}
