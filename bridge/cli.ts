/**
 * The `vtpu` command line: phext file tools and `serve`. bin/vtpu.js calls {@link main}.
 * Exit codes: 0 ok, 2 usage or bad input (messages on stderr, never a stack trace), 1 failure.
 */
import { readFileSync } from 'fs';
import * as path from 'path';
import { formatCoord, parseCoord } from '../engine/coords';
import { VtpuError } from '../engine/errors';
import { checksum, explode, implode, type PhextScroll } from '../engine/phext';
import { readCurveSecret } from './security';

/** Where the CLI writes; tests may pass their own. */
export interface CliIO {
  stdout(data: string | Uint8Array): Promise<void>;
  stderr(text: string): void;
}

// Type-only: the phext commands must not load the sidecar's native deps.
import type { ServeOptions } from './sidecar';
export type { ServeOptions };
import { parseDurableFlag } from './durable/flags';
import type { DurableOptions } from './durable/journal';
import { checkValue, CLI, helpText, parseFlags, UsageError, type FlagSpec } from './cli_flags';

/** `vtpu --help`: generated from the flag table (protocol/cli.json). */
export const USAGE = helpText();

const processIO: CliIO = {
  stdout: (data) => new Promise<void>((resolve, reject) => {
    process.stdout.write(data, (err) => (err ? reject(err) : resolve()));
  }),
  stderr: (text) => { process.stderr.write(text); },
};

/** Runs the command line `argv` (without node and script); resolves to the exit code. */
export async function main(argv: string[], io: CliIO = processIO): Promise<number> {
  try {
    return await dispatch(argv, io);
  } catch (e) {
    return report(e, io);
  }
}

const HELP = ['--help', '-h'];
const RUN: Record<string, (args: string[], io: CliIO) => Promise<number>> = { phext, serve, keygen: keygenCmd };
/** The phext subcommands the table names ("explode", ...). */
const PHEXT = Object.keys(CLI.commands).filter((c) => c.startsWith('phext ')).map((c) => c.slice('phext '.length));

async function dispatch(argv: string[], io: CliIO): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined) throw new UsageError('no command given');
  if (HELP.includes(cmd) || cmd === 'help') {
    await io.stdout(USAGE);
    return 0;
  }
  if (cmd === '--version' || cmd === '-V') {
    await io.stdout(`${CLI.program} ${packageVersion()} (node ${process.version})\n`);
    return 0;
  }
  const run = RUN[cmd];
  if (run === undefined) throw new UsageError(`unknown command ${JSON.stringify(cmd)}`);
  if (rest.some((a) => HELP.includes(a))) {
    const sub = cmd === 'phext' && !HELP.includes(rest[0]) ? phextSub(rest[0]) : undefined;
    await io.stdout(helpText(sub === undefined ? cmd : `phext ${sub}`));
    return 0;
  }
  return run(rest, io);
}

function phextSub(sub: string | undefined): string {
  const names = PHEXT.join(', ');
  if (sub === undefined) throw new UsageError(`phext needs a subcommand: ${names}`);
  if (!PHEXT.includes(sub)) throw new UsageError(`unknown phext subcommand ${JSON.stringify(sub)} (${names})`);
  return sub;
}

/** The version in package.json (beside dist/ in a build, or in a wheel's sidecar folder). */
function packageVersion(): string {
  for (let dir = __dirname, i = 0; i < 4; i++, dir = path.dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === CLI.program && pkg.version) return pkg.version;
    } catch {
      // not here: look one folder up
    }
  }
  return 'unknown';
}

async function phext(args: string[], io: CliIO): Promise<number> {
  const [, file, ...extra] = args;
  const sub = phextSub(args[0]);
  if (file === undefined) throw new UsageError(`phext ${sub} needs a FILE`);
  if (extra.length > 0) throw new UsageError(`phext ${sub} takes one FILE, got extra ${JSON.stringify(extra[0])}`);
  const bytes = readInput(file);
  if (sub === 'explode') await io.stdout(JSON.stringify(scrollsToObject(explode(bytes)), null, 2) + '\n');
  else if (sub === 'implode') await io.stdout(implode(objectToScrolls(parseJson(bytes, file))));
  else await io.stdout((await checksum(bytes)) + '\n');
  return 0;
}

/** Keys are inserted in coordinate order; JSON keeps insertion order for non-index keys. */
function scrollsToObject(scrolls: PhextScroll[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const s of scrolls) out[formatCoord(s.coord)] = s.text;
  return out;
}

function objectToScrolls(json: unknown): PhextScroll[] {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new UsageError('implode input must be a JSON object {"coordinate": "text", ...}');
  }
  return Object.entries(json).map(([key, text]) => {
    if (typeof text !== 'string') {
      const got = jsonType(text);
      throw new UsageError(`implode input: the value at ${JSON.stringify(key)} must be a string, got ${got}`);
    }
    return { coord: parseCoord(key, { phext: true }), text };
  });
}

function parseJson(bytes: Uint8Array, file: string): unknown {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    throw new UsageError(`${file === '-' ? 'standard input' : file} is not valid JSON: ${(e as Error).message}`);
  }
}

function readInput(file: string): Uint8Array {
  try {
    return readFileSync(file === '-' ? 0 : file);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'ENOENT' ? 'no such file' : err.code === 'EISDIR' ? 'is a directory' : err.message;
    throw new UsageError(`cannot read ${file}: ${why}`);
  }
}

async function serve(args: string[]): Promise<number> {
  const opts = parseServeFlags(args);
  // Lazy: the phext tools must work where the sidecar's native deps (zeromq) are absent.
  let sidecar: typeof import('./sidecar');
  try {
    sidecar = await import('./sidecar');
  } catch (e) {
    throw new Error(`cannot load the sidecar: ${(e as Error).message}`);
  }
  try {
    await sidecar.serveForever(opts);
  } catch (e) {
    // startSidecar reports bad option values as TypeErrors: a usage error here.
    if (e instanceof TypeError) throw new UsageError(`serve: ${e.message}`);
    throw e;
  }
  return 0;
}

/** Parses `vtpu serve` flags (`--flag value` / `--flag=value`) as the flag table says. */
export function parseServeFlags(args: string[], env: NodeJS.ProcessEnv = process.env): ServeOptions {
  const opts: Record<string, unknown> = {};
  const durable: Partial<DurableOptions> = {};
  for (const [flag, { spec, values }] of parseFlags('serve', args)) {
    for (const raw of values) {
      if (spec.to === 'durable') {
        try {
          parseDurableFlag(durable, flag, raw as string);
        } catch (e) {
          throw new UsageError((e as Error).message);
        }
        checkValue('serve', flag, spec, raw as string); // the table's rule holds too (Python checks by it)
        continue;
      }
      place(opts, spec.to, serveValue(flag, spec, raw));
    }
  }
  if (Object.keys(durable).length) opts.durable = durable as DurableOptions;
  const http = opts.http as ServeOptions['http'];
  // A key in the environment keeps it out of `ps`.
  if (http && http.key === undefined && env.VTPU_HTTP_KEY) http.key = env.VTPU_HTTP_KEY;
  return opts as ServeOptions;
}

/** One flag's value as the sidecar's options want it. */
function serveValue(flag: string, spec: FlagSpec, raw: string | true): unknown {
  if (raw === true) return spec.set ?? true;
  const value = checkValue('serve', flag, spec, raw);
  if (spec.type === 'owner') {
    const eq = raw.indexOf('=');
    return { agent: raw.slice(0, eq), pattern: raw.slice(eq + 1) };
  }
  if (spec.read === 'curve-secret') {
    try {
      return readCurveSecret(raw);
    } catch (e) {
      throw new UsageError(`serve: ${flag}: ${(e as Error).message}`);
    }
  }
  return value;
}

/** Puts `value` at the dotted path `to` of `opts` (`a.b`; `a[]` appends to a list). */
function place(opts: Record<string, unknown>, to: string, value: unknown): void {
  const path = to.split('.');
  let at = opts;
  for (const key of path.slice(0, -1)) at = (at[key] ??= {}) as Record<string, unknown>;
  const last = path[path.length - 1];
  if (last.endsWith('[]')) ((at[last.slice(0, -2)] ??= []) as unknown[]).push(value);
  else at[last] = value;
}

async function keygenCmd(args: string[], io: CliIO): Promise<number> {
  const flags = parseFlags('keygen', args).get('--out');
  const out = flags === undefined ? undefined : checkValue('keygen', '--out', flags.spec, flags.values.at(-1) as string) as string;
  const { keygen } = await import('./security');
  const kp = await keygen(out);
  await io.stdout(`public: ${kp.publicKey}\n` + (out === undefined ? `secret: ${kp.secretKey}\n` : `secret key written to ${out}, public key to ${out}.pub\n`));
  return 0;
}

function jsonType(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v;
}

/** Turns any failure into a stderr line and an exit code. */
function report(e: unknown, io: CliIO): number {
  if (e instanceof UsageError) {
    io.stderr(`vtpu: ${e.message}\nrun \`vtpu --help\` for usage\n`);
    return 2;
  }
  if (e instanceof VtpuError) {
    io.stderr(`vtpu: ${e.message} (${e.code})\n`);
    return e.code === 'E_INTERNAL' ? 1 : 2;
  }
  io.stderr(`vtpu: ${e instanceof Error ? e.message : String(e)}\n`);
  return 1;
}
