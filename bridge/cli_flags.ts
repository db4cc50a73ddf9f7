/**
 * The `vtpu` flag table (protocol/cli.json) put to work: parsing with node:util's
 * parseArgs, value rules, where each value goes, and the --help text. The Python launcher
 * reads the same table, so the flags are written down once.
 *
 * The import compiles to dist/protocol/cli.json (tsconfig includes it), like protocol.json.
 */
import { parseArgs } from 'node:util';
import table from '../protocol/cli.json';

/** One flag as the table writes it; a flag without `value` is a switch. */
export interface FlagSpec {
  value?: string;
  type?: string;
  to: string;
  set?: unknown;
  needs?: string;
  read?: string;
  about: string;
}

interface TypeSpec {
  regex: string;
  min?: number;
  max?: number;
  above?: number;
  expect: string;
}

interface CommandSpec {
  args?: string;
  about: string;
  flags?: Record<string, FlagSpec>;
}

export const CLI = table as { program: string; footer: string; types: Record<string, TypeSpec>; commands: Record<string, CommandSpec> };

/** A usage or input error: exit code 2 with a one-line message. */
export class UsageError extends Error {}

/** The flags of `command` ("serve", "keygen"); none for the phext commands. */
export function flagsOf(command: string): Record<string, FlagSpec> {
  return CLI.commands[command]?.flags ?? {};
}

/** A flag with a value, checked against its type; numbers come back as numbers. */
export function checkValue(command: string, flag: string, spec: FlagSpec, value: string): string | number {
  const type = CLI.types[spec.type ?? ''];
  if (type === undefined) throw new Error(`cli.json: ${flag} has no known type`);
  const bad = () => new UsageError(`${command}: ${flag} must be ${type.expect}, got ${JSON.stringify(value)}`);
  if (!new RegExp(type.regex).test(value)) throw bad();
  if (type.min === undefined && type.max === undefined && type.above === undefined) return value;
  const n = Number(value);
  if (!Number.isFinite(n) || (type.min !== undefined && n < type.min) || (type.max !== undefined && n > type.max)
    || (type.above !== undefined && !(n > type.above)) || (type.regex === '^[0-9]+$' && !Number.isSafeInteger(n))) {
    throw bad();
  }
  return n;
}

/**
 * Parses `args` for `command`: `{flag: raw value(s)}`, in table spelling (`--http`), after
 * the checks parseArgs makes (unknown flags, missing values) and the `needs` links.
 */
export function parseFlags(command: string, args: string[]): Map<string, { spec: FlagSpec; values: (string | true)[] }> {
  const specs = flagsOf(command);
  const options: Record<string, { type: 'string' | 'boolean'; multiple: true }> = {};
  for (const [flag, spec] of Object.entries(specs)) {
    options[flag.slice(2)] = { type: spec.value === undefined ? 'boolean' : 'string', multiple: true };
  }
  let parsed: Record<string, (string | boolean)[] | undefined>;
  try {
    parsed = parseArgs({ args, options, strict: true, allowPositionals: false }).values as typeof parsed;
  } catch (e) {
    throw new UsageError(`${command}: ${parseArgsMessage(e as Error & { code?: string })}`);
  }
  const out = new Map<string, { spec: FlagSpec; values: (string | true)[] }>();
  for (const [name, values] of Object.entries(parsed)) {
    if (values === undefined) continue;
    const flag = `--${name}`;
    out.set(flag, { spec: specs[flag], values: values.map((v) => (v === false ? true : v)) as (string | true)[] });
  }
  for (const [flag, { spec }] of out) {
    if (spec.needs !== undefined && !out.has(spec.needs)) {
      const want = specs[spec.needs].value;
      throw new UsageError(`${command}: ${flag} needs ${spec.needs}${want ? ` ${want}` : ''}`);
    }
  }
  return out;
}

/** parseArgs' messages, in this CLI's words. */
function parseArgsMessage(e: Error & { code?: string }): string {
  const flag = /'(-[^' ]+)/.exec(e.message)?.[1];
  if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return `unknown option ${JSON.stringify(flag)}`;
  if (e.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
    return `unexpected argument ${JSON.stringify(/'([^']*)'/.exec(e.message)?.[1])} (flags only)`;
  }
  if (e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && flag !== undefined) {
    if (/does not take an argument/.test(e.message)) return `${flag} takes no value`;
    if (/ambiguous/.test(e.message)) return `${flag} needs a value (write ${flag}=-X for one starting with -)`;
    return `${flag} needs a value`;
  }
  return e.message;
}

/** `--help` text: every command, or one command with its flags. */
export function helpText(command?: string): string {
  const width = 24;
  const pad = (s: string) => (s.length >= width ? `${s}\n${' '.repeat(width + 2)}` : s.padEnd(width));
  if (command !== undefined) {
    const names = Object.keys(CLI.commands).filter((c) => c === command || c.startsWith(`${command} `));
    const lines = [`usage: ${CLI.program} ${command}${command in CLI.commands ? synopsis(command) : ' SUBCOMMAND ...'}`, ''];
    for (const name of names) {
      const spec = CLI.commands[name];
      if (names.length > 1) lines.push(`  ${pad(`${name}${synopsis(name)}`)}  ${spec.about}`);
      else lines.push(spec.about);
      const flags = Object.entries(spec.flags ?? {});
      if (flags.length) lines.push('', 'flags:');
      else if (names.length === 1) lines.push('');
      for (const [flag, f] of flags) lines.push(`  ${pad(f.value ? `${flag} ${f.value}` : flag)}  ${f.about}`);
    }
    lines.push(`  ${pad('--help')}  show this text`, '', CLI.footer);
    return lines.join('\n') + '\n';
  }
  const lines = [`usage: ${CLI.program} <command> [args]`, ''];
  for (const [name, spec] of Object.entries(CLI.commands)) lines.push(`  ${pad(`${name}${synopsis(name)}`)}  ${spec.about}`);
  lines.push(`  ${pad('--version')}  print the version`, `  ${pad('--help')}  show this text; \`${CLI.program} COMMAND --help\` shows a command's flags`, '', CLI.footer);
  return lines.join('\n') + '\n';
}

function synopsis(command: string): string {
  const spec = CLI.commands[command];
  if (spec.args) return ` ${spec.args}`;
  return spec.flags ? ' [flags]' : '';
}
