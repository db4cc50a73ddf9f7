/**
 * Range ownership for multi-agent memory: each agent owns coordinate patterns and only it
 * writes there. A sidecar knows its own agent name, its own patterns and the rules it was
 * configured with or learned from peers at sync time; a client write (CPUT, CDEL,
 * PHEXT_IMPORT, PROGRAM steps) into a pattern owned by another agent is refused with E_OWNER.
 * Sync's own applies bypass the check (engine/sync/state.ts): they carry the merge rule's winner.
 */
import { VtpuError } from '../errors';
import { formatCoord } from '../coords';
import { formatPattern, matchesPattern, parsePattern, type Pattern } from '../pattern';

/** One ownership rule as on the wire. */
export interface OwnerRule {
  agent: string;
  pattern: string;
}

const AGENT_NAME = /^[A-Za-z0-9_.:-]{1,64}$/;

/** Throws E_PARAM unless `name` is a usable agent name. */
export function checkAgent(name: unknown, what = 'agent'): string {
  if (typeof name !== 'string' || !AGENT_NAME.test(name)) {
    throw new VtpuError('E_PARAM', `${what} must be 1-64 characters of A-Z a-z 0-9 _ . : -, got ${JSON.stringify(name)}`);
  }
  return name;
}

/** The ownership rules of one engine. First matching rule names the owner. */
export class Owners {
  /** This sidecar's agent name, when it has one. */
  agent: string | undefined;
  private rules: { agent: string; pattern: Pattern; text: string }[] = [];

  /** Adds a rule (pattern checked, E_PATTERN); a rule already present is kept once. */
  add(agent: string, pattern: string): void {
    checkAgent(agent);
    const p = parsePattern(pattern);
    const text = formatPattern(p);
    if (this.rules.some((r) => r.agent === agent && r.text === text)) return;
    // Own rules first: a peer's claim cannot take a range this agent owns.
    const rule = { agent, pattern: p, text };
    if (agent === this.agent) this.rules.unshift(rule);
    else this.rules.push(rule);
  }

  /** Adds rules a peer announced (its own claims); malformed entries are E_PARAM. */
  learn(rules: unknown): void {
    if (rules === undefined) return;
    if (!Array.isArray(rules) || rules.length > 1024) throw new VtpuError('E_PARAM', 'CSYNC: owns must be a list of at most 1024 {agent, pattern}');
    for (const r of rules) {
      if (typeof r !== 'object' || r === null) throw new VtpuError('E_PARAM', 'CSYNC: each owns entry must be {agent, pattern}');
      const { agent, pattern } = r as Record<string, unknown>;
      if (typeof pattern !== 'string') throw new VtpuError('E_PATTERN', 'CSYNC: owns pattern must be a string');
      this.add(checkAgent(agent, 'owns agent'), pattern);
    }
  }

  /** The owner of row `i` of a flat coordinate column, or undefined when nobody claims it. */
  ownerOf(coords: ArrayLike<number>, i: number): string | undefined {
    for (const r of this.rules) if (matchesPattern(r.pattern, coords, i)) return r.agent;
    return undefined;
  }

  /** Rules in order, as on the wire. */
  toJSON(): OwnerRule[] {
    return this.rules.map((r) => ({ agent: r.agent, pattern: r.text }));
  }

  /** True when any rule exists (then writes are checked). */
  get active(): boolean {
    return this.rules.length > 0;
  }

  /** E_OWNER when another agent owns any of rows first .. first+count. */
  check(coords: ArrayLike<number>, first: number, count: number): void {
    if (this.rules.length === 0) return;
    for (let i = first; i < first + count; i++) {
      const owner = this.ownerOf(coords, i);
      if (owner !== undefined && owner !== this.agent) {
        throw new VtpuError('E_OWNER', `${formatCoord(coords, i)} is owned by agent ${owner}` +
          (this.agent ? `, not ${this.agent}` : ' (this sidecar has no --agent)'));
      }
    }
  }
}
