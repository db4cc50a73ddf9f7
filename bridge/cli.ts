/**
 * The `vtpu` command line: phext file tools and `serve`. bin/vtpu.js calls {@link main}.
 * Exit codes: 0 ok, 2 usage or bad input (messages on stderr, never a stack trace), 1 failure.
 */
import { readFileSync } from 'fs';
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
import { DURABLE_FLAGS, parseDurableFlag } from './durable/flags';
import type { DurableOptions } from './durable/journal';

/** A usage or input error: exit code 2 with a one-line message. */
class UsageError extends Error {}

export const USAGE = `usage: vtpu <command> [args]

  vtpu phext explode FILE        print FILE's scrolls as JSON {"coordinate": "text"}, in coordinate order
  vtpu phext implode FILE.json   write the phext file for a JSON {"coordinate": "text"} to stdout
  vtpu phext checksum FILE       print the xxh3-128 checksum of FILE (32 hex digits)
  vtpu serve [--address A] [--max-request-bytes N] [--max-batch N] [--threads N] [--exit-with-stdin]
             [--metrics-file F] [--no-metrics]
             [--http PORT] [--http-host H] [--http-key K] [--http-insecure] [--http-max-body N]
             [--http-cors ORIGIN]... [--http-name NAME]...
             [--max-peers N] [--curve-secret-file F] [--insecure] [--agent NAME] [--owns PATTERN]... [--owner AGENT=PATTERN]...
             [--sync-peer ADDR --sync-every SECONDS --sync-pattern P [--sync-server-key KEY]]
                                 run the sidecar until SIGTERM or SIGINT (or, with
                                 --exit-with-stdin, until stdin closes: its parent died)
                                 --metrics-file F  append a metrics JSON line to F every 100 ms
                                 --http PORT       serve /metrics, the dashboard at /, and the SQ
                                                   API /api/v2/... on PORT (0: any free port)
                                 --http-host H     bind H (default 127.0.0.1); beyond loopback needs
                                                   --http-key (or $VTPU_HTTP_KEY) or --http-insecure
                                 --http-cors O     let pages on origin O (scheme://host:port) call the
                                                   API cross-origin; default: no CORS, and requests
                                                   from pages on other origins are refused
                                 --http-name N     also answer requests whose Host is N (default: the
                                                   bound address, IP literals, loopback names)
             [--data DIR [--fsync always|MS] [--snapshot-every N|Ns] [--recover refuse|truncate]]
                                 --data DIR        keep the store in DIR (write log + snapshots;
                                                   recovered at start); default memory only
                                 --fsync always|MS fsync each write before its reply (default), or
                                                   every MS ms (a power loss may lose MS ms of writes)
                                 --snapshot-every  snapshot after N logged writes (default 100000)
                                                   or every N seconds (Ns)
                                 --recover         damage beyond a torn last record (a bad record
                                                   with intact ones after it, a missing log):
                                                   refuse to start (default), or truncate there,
                                                   keeping what is cut in DIR/<file>.cut-<byte>
                                 --curve-secret-file F  serve with ZeroMQ CURVE (F from vtpu keygen);
                                                   tcp:// beyond loopback needs it or --insecure
                                 --agent/--owns    this agent's name and the ranges only it writes
                                 --sync-peer ...   sync P with the peer every SECONDS
  vtpu keygen [--out FILE]       new CURVE keypair: prints both keys; with --out writes the secret key
                                 to FILE (mode 0600) and the public key to FILE.pub
  vtpu --help                    show this text

FILE may be - for standard input. Coordinates are phext ones: a.b.c/d.e.f/g.h.i, each 1..999.
`;

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

async function dispatch(argv: string[], io: CliIO): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === '--help' || cmd === '-h' || cmd === 'help') {
    await io.stdout(USAGE);
    return 0;
  }
  if (cmd === 'phext') return phext(rest, io);
  if (cmd === 'serve') return serve(rest);
  if (cmd === 'keygen') return keygenCmd(rest, io);
  throw new UsageError(cmd === undefined ? 'no command given' : `unknown command ${JSON.stringify(cmd)}`);
}

async function phext(args: string[], io: CliIO): Promise<number> {
  const [sub, file, ...extra] = args;
  const known = ['explode', 'implode', 'checksum'];
  if (sub === undefined || !known.includes(sub)) {
    throw new UsageError(sub === undefined ? 'phext needs a subcommand: explode, implode or checksum'
      : `unknown phext subcommand ${JSON.stringify(sub)} (explode, implode or checksum)`);
  }
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

/** Parses `--flag value` / `--flag=value`; numbers must be positive integers. */
export function parseServeFlags(args: string[], env: NodeJS.ProcessEnv = process.env): ServeOptions {
  const opts: ServeOptions = {};
  const durable: Partial<DurableOptions> = {};
  const sync: Record<string, string> = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--exit-with-stdin') {
      opts.exitWithStdin = true;
      continue;
    }
    if (arg === '--no-metrics') {
      opts.metrics = false;
      continue;
    }
    if (arg === '--insecure') {
      opts.insecure = true;
      continue;
    }
    if (arg === '--http-insecure') {
      http().insecure = true;
      continue;
    }
    const eq = arg.indexOf('=');
    const flag = eq >= 0 ? arg.slice(0, eq) : arg;
    const value = eq >= 0 ? arg.slice(eq + 1) : args[++i];
    if (DURABLE_FLAGS.includes(flag)) {
      if (value === undefined) throw new UsageError(`serve: ${flag} needs a value`);
      try {
        parseDurableFlag(durable, flag, value);
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      continue;
    }
    if (!['--address', '--max-request-bytes', '--max-batch', '--max-peers', '--threads', '--metrics-file', '--http', '--http-host', '--http-key', '--http-max-body', '--http-cors', '--http-name',
      ...SYNC_FLAGS].includes(flag)) {
      throw new UsageError(`serve: unknown option ${JSON.stringify(flag)}`);
    }
    if (value === undefined) throw new UsageError(`serve: ${flag} needs a value`);
    if (flag === '--address') opts.address = nonEmpty(flag, value);
    else if (flag === '--max-request-bytes') opts.maxRequestBytes = positiveInt(flag, value);
    else if (flag === '--max-batch') opts.maxBatch = positiveInt(flag, value);
    else if (flag === '--max-peers') opts.maxPeers = positiveInt(flag, value);
    else if (flag === '--threads') opts.threads = positiveInt(flag, value);
    else if (flag === '--metrics-file') opts.metricsFile = nonEmpty(flag, value);
    else if (flag === '--http') http().port = value === '0' ? 0 : positiveInt(flag, value);
    else if (flag === '--http-host') http().host = nonEmpty(flag, value);
    else if (flag === '--http-key') http().key = nonEmpty(flag, value);
    else if (flag === '--http-cors') (http().cors ??= []).push(nonEmpty(flag, value));
    else if (flag === '--http-name') (http().names ??= []).push(nonEmpty(flag, value));
    else if (SYNC_FLAGS.includes(flag)) syncFlag(opts, flag, nonEmpty(flag, value), sync);
    else http().maxBodyBytes = positiveInt(flag, value);
  }
  if (Object.keys(durable).length) {
    if (durable.dir === undefined) throw new UsageError('serve: --fsync, --snapshot-every and --recover need --data DIR');
    opts.durable = durable as DurableOptions;
  }
  finishSync(opts, sync);
  if (opts.http) {
    if (opts.http.port === undefined) throw new UsageError('serve: --http-host, --http-key, --http-insecure, --http-max-body, --http-cors and --http-name need --http PORT');
    // A key in the environment keeps it out of `ps`.
    if (opts.http.key === undefined && env.VTPU_HTTP_KEY) opts.http.key = env.VTPU_HTTP_KEY;
  }
  return opts;

  function http(): NonNullable<ServeOptions['http']> {
    return (opts.http ??= { port: undefined as unknown as number });
  }
}

const SYNC_FLAGS = ['--curve-secret-file', '--agent', '--owns', '--owner', '--sync-peer', '--sync-every', '--sync-pattern', '--sync-server-key'];

/** One ownership, sync or CURVE flag; the sync target is assembled by {@link finishSync}. */
function syncFlag(opts: ServeOptions, flag: string, value: string, sync: Record<string, string>): void {
  if (flag === '--agent') opts.agent = value;
  else if (flag === '--owns') (opts.owns ??= []).push(value);
  else if (flag === '--owner') {
    const eq = value.indexOf('=');
    if (eq <= 0) throw new UsageError(`serve: --owner takes AGENT=PATTERN, got ${JSON.stringify(value)}`);
    (opts.owners ??= []).push({ agent: value.slice(0, eq), pattern: value.slice(eq + 1) });
  } else if (flag === '--curve-secret-file') {
    try {
      opts.curveSecretKey = readCurveSecret(value);
    } catch (e) {
      throw new UsageError(`serve: --curve-secret-file: ${(e as Error).message}`);
    }
  } else sync[flag] = value;
}

function finishSync(opts: ServeOptions, sync: Record<string, string>): void {
  if (Object.keys(sync).length === 0) return;
  const need = ['--sync-peer', '--sync-every', '--sync-pattern'];
  for (const f of need) if (sync[f] === undefined) throw new UsageError(`serve: ${f} is needed with ${Object.keys(sync).join(', ')}`);
  const every = Number(sync['--sync-every']);
  if (!(every > 0)) throw new UsageError(`serve: --sync-every must be a positive number of seconds, got ${JSON.stringify(sync['--sync-every'])}`);
  opts.sync = { peer: sync['--sync-peer'], pattern: sync['--sync-pattern'], everyS: every, serverKey: sync['--sync-server-key'] };
}

async function keygenCmd(args: string[], io: CliIO): Promise<number> {
  let out: string | undefined;
  if (args.length === 2 && args[0] === '--out') out = nonEmpty('--out', args[1]);
  else if (args.length === 1 && args[0].startsWith('--out=')) out = nonEmpty('--out', args[0].slice(6));
  else if (args.length !== 0) throw new UsageError('keygen takes only [--out FILE]');
  const { keygen } = await import('./security');
  const kp = await keygen(out);
  await io.stdout(`public: ${kp.publicKey}\n` + (out === undefined ? `secret: ${kp.secretKey}\n` : `secret key written to ${out}, public key to ${out}.pub\n`));
  return 0;
}

function nonEmpty(flag: string, value: string): string {
  if (value.length === 0) throw new UsageError(`serve: ${flag} must not be empty`);
  return value;
}

function positiveInt(flag: string, value: string): number {
  const n = Number(value);
  if (!/^[0-9]+$/.test(value) || !Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(`serve: ${flag} must be a positive integer, got ${JSON.stringify(value)}`);
  }
  return n;
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
