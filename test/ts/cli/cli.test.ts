/** The `vtpu` command, spawned as a user runs it: node bin/vtpu.js … on files made from the vectors. */
import { spawn, spawnSync } from 'child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseServeFlags } from '../../../bridge/cli';
import { CLI, flagsOf } from '../../../bridge/cli_flags';
import { DURABLE_FLAGS } from '../../../bridge/durable/flags';
import { readFileSync } from 'fs';
import { loadVectors, repoRoot, utf8 } from '../phext/vectors';
import { ensureBuilt } from './build';

const V = loadVectors();
const BIN = path.join(repoRoot, 'bin', 'vtpu.js');
let tmp: string;

beforeAll(() => {
  ensureBuilt(repoRoot);
  tmp = mkdtempSync(path.join(os.tmpdir(), 'vtpu-cli-'));
}, 180_000);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Runs the CLI; stdout as raw bytes. */
function vtpu(args: string[], input?: Uint8Array, bin = BIN) {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: repoRoot, input });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr.toString('utf8') };
}

let fileNo = 0;
function file(content: string | Uint8Array, ext = '.phext'): string {
  const p = path.join(tmp, `f${fileNo++}${ext}`);
  writeFileSync(p, content);
  return p;
}

/** A clean failure: exit 2, a `vtpu:` line, nothing on stdout, no stack trace. */
function expectUsageFailure(r: ReturnType<typeof vtpu>, message: RegExp): void {
  expect(r.code).toBe(2);
  expect(r.stdout.length).toBe(0);
  expect(r.stderr).toMatch(/^vtpu: /);
  expect(r.stderr).toMatch(message);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

describe('vtpu phext', () => {
  test.each(V.explode.map((v, i) => [i, v] as const))('explode vector %i', (_i, v) => {
    const r = vtpu(['phext', 'explode', file(v.phext)]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const json = JSON.parse(r.stdout.toString('utf8'));
    expect(json).toEqual(v.scrolls);
    expect(Object.keys(json)).toEqual(Object.keys(v.scrolls));
  });

  test.each(V.implode.map((v, i) => [i, v] as const))('implode vector %i', (_i, v) => {
    const r = vtpu(['phext', 'implode', file(JSON.stringify(v.scrolls), '.json')]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    if (v.phext !== undefined) expect(r.stdout).toEqual(Buffer.from(utf8(v.phext)));
    else expect(r.stdout.length).toBe(v.length);
  });

  test.each(Object.entries(V.checksum))('checksum %s', (text, hex) => {
    const r = vtpu(['phext', 'checksum', file(text)]);
    expect(r.code).toBe(0);
    expect(r.stdout.toString('utf8')).toBe(`${hex}\n`);
  });

  test('- reads standard input', () => {
    const [text, hex] = Object.entries(V.checksum)[0];
    expect(vtpu(['phext', 'checksum', '-'], utf8(text)).stdout.toString()).toBe(`${hex}\n`);
    const v = V.implode[0];
    expect(vtpu(['phext', 'implode', '-'], utf8(JSON.stringify(v.scrolls))).stdout).toEqual(Buffer.from(utf8(v.phext!)));
  });

  test('explode then implode round-trips a normalised file byte for byte', () => {
    const src = utf8(V.explode[0].phext);
    const json = vtpu(['phext', 'explode', file(src)]).stdout;
    const back = vtpu(['phext', 'implode', file(json, '.json')]);
    expect(back.code).toBe(0);
    expect(back.stdout).toEqual(Buffer.from(src));
  });
});

describe('vtpu errors', () => {
  test('--help prints usage and exits 0', () => {
    const r = vtpu(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).toMatch(/usage: vtpu/);
    expect(r.stdout.toString()).toMatch(/phext explode/);
  });

  test.each([
    ['serve'], ['keygen'], ['phext'], ['phext', 'explode'], ['phext', 'implode'], ['phext', 'checksum'],
  ])('%s --help shows that command and exits 0', (...cmd) => {
    for (const help of ['--help', '-h']) {
      const r = vtpu([...cmd, help]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const text = r.stdout.toString();
      expect(text).toMatch(new RegExp(`^usage: vtpu ${cmd.join(' ')}`));
      for (const flag of Object.keys(flagsOf(cmd.join(' ')))) expect(text).toContain(`  ${flag}`);
    }
  });

  test('serve --help lists every serve flag of the table, with its value name', () => {
    const text = vtpu(['serve', '--help']).stdout.toString();
    for (const [flag, spec] of Object.entries(flagsOf('serve'))) expect(text).toContain(spec.value ? `${flag} ${spec.value}` : flag);
  });

  test('--version prints the package version', () => {
    const pkg = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8'));
    const r = vtpu(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).toBe(`vtpu ${pkg.version} (node ${process.version})\n`);
  });

  test.each([
    [[], /no command/],
    [['frobnicate'], /unknown command "frobnicate"/],
    [['phext'], /subcommand/],
    [['phext', 'shred', 'x'], /unknown phext subcommand/],
    [['phext', 'explode'], /needs a FILE/],
    [['phext', 'explode', 'a', 'b'], /extra "b"/],
    [['phext', 'explode', '/nonexistent/x.phext'], /cannot read \/nonexistent\/x\.phext: no such file/],
    [['serve', '--threads', '0'], /--threads must be a positive integer, got "0"/],
    [['serve', '--max-batch=abc'], /--max-batch must be a positive integer/],
    [['serve', '--max-request-bytes', '1.5'], /--max-request-bytes must be a positive integer/],
    [['serve', '--address'], /--address needs a value/],
    [['serve', '--bogus', '1'], /unknown option "--bogus"/],
    [['serve', '--exit-with-stdin=yes'], /--exit-with-stdin takes no value/],
    [['serve', 'stray'], /unexpected argument "stray"/],
    [['keygen', '--out'], /--out needs a value/],
    [['keygen', 'x'], /unexpected argument "x"/],
  ])('%j', (args, message) => {
    const r = vtpu(args as string[]);
    expectUsageFailure(r, message);
    expect(r.stderr).toMatch(/vtpu --help/);
  });

  test.each([
    ['{"1.1.1/1.1.1/1.1.1": "a",', /is not valid JSON/],
    ['["a"]', /must be a JSON object/],
    ['{"1.1.1/1.1.1/1.1.1": 5}', /must be a string, got number/],
    ['{"0.1.1/1.1.1/1.1.1": "a"}', /E_COORD/],
    ['{"1.1.1/1.1.1": "a"}', /E_COORD/],
    ['{"1.1.1/1.1.1/1.1.2": "a\\u0017b"}', /1\.1\.1\/1\.1\.1\/1\.1\.2.*E_PARAM/],
  ])('implode rejects %s', (json, message) => {
    expectUsageFailure(vtpu(['phext', 'implode', file(json, '.json')]), message);
  });

  test('explode of a scroll past 999 fails cleanly', () => {
    const bytes = new Uint8Array(1000).fill(0x17);
    bytes[999] = 0x61; // after 999 scroll breaks: scroll 1000
    expectUsageFailure(vtpu(['phext', 'explode', file(bytes)]), /1\.1\.1000.*E_COORD/);
  });

  test('an unbuilt checkout says how to build', () => {
    const dir = path.join(tmp, 'unbuilt', 'bin');
    mkdirSync(dir, { recursive: true });
    copyFileSync(BIN, path.join(dir, 'vtpu.js'));
    const r = vtpu(['--help'], undefined, path.join(dir, 'vtpu.js'));
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('vtpu: not built; run `npm run build` (or make)\n');
  });
});

test("npm reads the project's .npmrc without a warning", () => {
  const r = spawnSync('npm', ['config', 'get', 'fund'], { cwd: repoRoot, encoding: 'utf8' });
  expect(r.status).toBe(0);
  expect(r.stderr).not.toMatch(/warn/i);
});

describe('vtpu serve', () => {
  test('prints the listening line, then stops cleanly on SIGTERM', async () => {
    const child = spawn(process.execPath, [BIN, 'serve', '--address', 'tcp://127.0.0.1:*', '--threads', '1'], { cwd: repoRoot });
    let out = '';
    let err = '';
    child.stderr.on('data', (d) => { err += d; });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    const listening = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no listening line in 30 s; stderr: ${err}`)), 30_000);
      child.stdout.on('data', (d) => {
        out += d;
        const m = /^vtpu sidecar listening on (tcp:\/\/127\.0\.0\.1:\d+)\n/.exec(out);
        if (m) { clearTimeout(timer); resolve(m[1]); }
      });
      child.on('exit', () => { clearTimeout(timer); reject(new Error(`exited early; stderr: ${err}`)); });
    }).catch((e) => { child.kill('SIGKILL'); throw e; });
    expect(listening).toMatch(/:\d+$/);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  }, 60_000);

  test('a malformed address is a usage error', () => {
    expectUsageFailure(vtpu(['serve', '--address', 'bogus', '--threads', '1']), /serve: .*address/);
  });
});

describe('parseServeFlags', () => {
  test('both flag forms, every option', () => {
    expect(parseServeFlags(['--address', 'tcp://127.0.0.1:5555', '--max-request-bytes=1024', '--max-batch', '7', '--threads=3']))
      .toEqual({ address: 'tcp://127.0.0.1:5555', maxRequestBytes: 1024, maxBatch: 7, threads: 3 });
    expect(parseServeFlags([])).toEqual({});
  });

  test('every serve flag in the table lands in the options', () => {
    const sample: Record<string, string> = { count: '3', port: '0', seconds: '1.5', text: 'x', fsync: '10', snapshot: '5s', owner: 'a=*.*.*/*.*.*/*.*.*', recover: 'truncate', ms: '250' };
    for (const [flag, spec] of Object.entries(flagsOf('serve'))) {
      if (spec.read) continue; // reads a file: covered by the sync/security tests
      const args = spec.value ? [flag, sample[spec.type!]] : [flag];
      for (let need = spec.needs; need; need = flagsOf('serve')[need].needs) {
        if (args.includes(need)) break;
        const n = flagsOf('serve')[need];
        args.push(need, ...(n.value ? [sample[n.type!]] : []));
      }
      const opts = parseServeFlags(args, {}) as Record<string, unknown>;
      const top = spec.to.split('.')[0].replace('[]', '');
      expect(opts[top]).toBeDefined();
    }
  });

  test('the durable flags of the table are the ones bridge/durable parses', () => {
    expect(Object.entries(flagsOf('serve')).filter(([, s]) => s.to === 'durable').map(([f]) => f)).toEqual(DURABLE_FLAGS);
    expect(CLI.program).toBe('vtpu');
  });
});
