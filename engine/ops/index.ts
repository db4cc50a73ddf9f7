/** The built-in op table: one explicit list, registered by the Engine constructor. */
import type { Instruction, Offload } from '../instruction';
import type { BodyKind, OpInput } from '../types';
import { PING } from './ping';
import { CGET } from './cget';
import { CPUT } from './cput';
import { CDEL } from './cdel';
import { CRANGE } from './crange';
import { CDELTA } from './cdelta';
import { CHIER } from './chier';
import { CROUTE } from './croute';
import { PHEXT_IMPORT } from './phext_import';
import { PHEXT_EXPORT } from './phext_export';
import { CMOE } from './cmoe';
import { CNEAREST } from './cnearest';
import { PROGRAM } from '../program';
import { CKG } from './ckg';
import { CATTEND } from './cattend';
import { CEXPERTS } from './cexperts';
import { CSYNC } from './csync';

/** Built-in instructions, in the order PING lists them. */
export const INSTRUCTIONS: readonly Instruction[] = Object.freeze([PING, CGET, CPUT, CDEL, CRANGE, CDELTA, CHIER, CROUTE, PROGRAM, PHEXT_IMPORT, PHEXT_EXPORT, CATTEND, CMOE, CNEAREST, CEXPERTS, CKG, CSYNC]);

const BY_NAME = new Map(INSTRUCTIONS.map((i) => [i.name, i]));

/** The built-in instruction named `op`, or undefined. */
export function instruction(op: string): Instruction | undefined {
  return BY_NAME.get(op);
}

/** The body a request for `op` with `params` carries, as the op's file declares it (none for ops it does not know). */
export function requestBody(op: string, params: Record<string, unknown>): BodyKind {
  return BY_NAME.get(op)?.body?.(params) ?? 'none';
}

/** Where a request for `op` may leave the event loop, as the op's file says (null: inline). */
export function offloadOf(op: string, input: OpInput): Offload | null {
  return BY_NAME.get(op)?.offload?.(input) ?? null;
}

/** True when a request for `op` with `params` changes the store or the route table (the op's file says). */
export function isWrite(op: string, params: Record<string, unknown>): boolean {
  return BY_NAME.get(op)?.writes?.(params, instruction) ?? false;
}
