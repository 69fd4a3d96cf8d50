import { writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { dispatch } from '../../src/cli/dispatch';
import { gcCommand, gcSummary, type RunGc } from '../../src/cli/gc';
import { defaultConfig } from '../../src/config/load';
import type { Config } from '../../src/config/schema';
import type { GcPhase, GcReport, GcRunOptions } from '../../src/gc/types';
import { tempDir } from '../helpers/server';
import { fakeIo, STACK } from './fake-io';

// `registry gc` with a fake collector: what it passes to the collector, the progress per phase on a
// terminal and in logs, the summary line, and how a failure reads.

const PHASES: GcPhase[] = ['doomed', 'manifests', 'links', 'blobs', 'staged', 'stray'];
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

const REPORT: Omit<GcReport, 'dryRun'> = {
  manifests: 3,
  links: 40,
  blobs: 12,
  bytes: 1.2 * GiB,
  staged: 0,
  stray: 2,
  strayBytes: 10 * MiB,
  durationMs: 1400,
};

/** A collector that reports 500 items in each phase and returns REPORT; records how it was called. */
function fakeRun(seen: { config?: Config; opts?: GcRunOptions }[] = []): RunGc {
  return async (config, opts) => {
    seen.push({ config, opts });
    for (const phase of PHASES) {
      opts.onProgress?.({ phase, done: 0, total: phase === 'stray' ? undefined : 500 });
      for (let i = 1; i <= 500; i++) opts.onProgress?.({ phase, done: i, total: phase === 'stray' ? undefined : 500 });
    }
    return { ...REPORT, dryRun: opts.dryRun ?? false };
  };
}

const config = defaultConfig();
const loadConfig = () => config;

t.test('summary line', async (t) => {
  t.equal(gcSummary({ ...REPORT, dryRun: false }), 'gc: removed 12 blobs (1.2 GiB), 3 manifests, 40 links, 0 staged, 2 stray (10 MiB) in 1.4 s');
  t.equal(
    gcSummary({ ...REPORT, dryRun: true }),
    'gc --dry-run: would remove 12 blobs (1.2 GiB), 3 manifests, 40 links, 0 staged, 2 stray (10 MiB) in 1.4 s',
  );
  t.equal(
    gcSummary({ dryRun: false, manifests: 1, links: 1, blobs: 1, bytes: 512, staged: 1, stray: 0, strayBytes: 0, durationMs: 12 }),
    'gc: removed 1 blob (512 B), 1 manifest, 1 link, 1 staged, 0 stray (0 B) in 12 ms',
  );
});

t.test('not a terminal: one line per phase on stderr, the summary on stdout', async (t) => {
  const seen: { config?: Config; opts?: GcRunOptions }[] = [];
  const io = fakeIo();
  t.equal(await gcCommand([], io, { run: fakeRun(seen), loadConfig }), 0);
  t.equal(seen.length, 1);
  t.equal(seen[0]!.config, config, 'the loaded configuration goes to the collector');
  t.equal(seen[0]!.opts!.dryRun, false);
  const lines = io.stderr.text().split('\n');
  t.equal(lines.pop(), '', 'ends with a newline');
  t.same(
    lines.map((l) => l.replace(/ in \d+ ms$/, ' in T')),
    PHASES.map((p) => `gc ${p}: 500 in T`),
    'one line per phase, none per item',
  );
  t.equal(io.stdout.text(), 'gc: removed 12 blobs (1.2 GiB), 3 manifests, 40 links, 0 staged, 2 stray (10 MiB) in 1.4 s\n');
});

t.test('--dry-run: passed on, and the summary says what would go', async (t) => {
  const seen: { opts?: GcRunOptions }[] = [];
  const io = fakeIo();
  t.equal(await gcCommand(['--dry-run'], io, { run: fakeRun(seen), loadConfig }), 0);
  t.equal(seen[0]!.opts!.dryRun, true);
  t.match(io.stdout.text(), /^gc --dry-run: would remove 12 blobs \(1\.2 GiB\), .* in 1\.4 s\n$/);
});

t.test('terminal: a bar per phase on stderr, each closed with its line', async (t) => {
  const term = process.env.TERM;
  process.env.TERM = 'xterm';
  t.teardown(() => (term === undefined ? delete process.env.TERM : (process.env.TERM = term)));
  const io = fakeIo({ columns: 100 });
  t.equal(await gcCommand([], io, { run: fakeRun(), loadConfig }), 0);
  const err = io.stderr.text();
  t.match(err, /\rgc doomed \[-{24}\] 0\/500 0%\x1b\[K/, 'a bar as soon as a phase starts');
  t.match(err, /\rgc blobs: 500 in \d+ ms\x1b\[K\n/, 'a finished phase keeps its line');
  t.match(err, /\rgc stray 0\x1b\[K/, 'a counter when the total is unknown');
  t.equal(err.split('\n').length - 1, PHASES.length, 'one lasting line per phase');
  t.ok(err.split('\r').length - 1 < 3 * PHASES.length, 'redraws throttled, not one per item');
  t.ok(err.endsWith('\x1b[K\n'), 'the last bar is closed before the summary');
  t.match(io.stdout.text(), /^gc: removed 12 blobs/);
});

t.test('the configuration is loaded as the server loads it (REGISTRY_CONFIG, REGISTRY_* overrides)', async (t) => {
  const file = path.join(tempDir(t), 'config.yml');
  writeFileSync(file, 'http:\n  addr: 127.0.0.1:5999\nindex:\n  path: /srv/registry/index.db\n');
  const saved = { ...process.env };
  t.teardown(() => {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  });
  for (const k of Object.keys(process.env)) if (k.startsWith('REGISTRY_')) delete process.env[k];
  process.env.REGISTRY_CONFIG = file;
  process.env.REGISTRY_HTTP_ADDR = '127.0.0.1:6000';
  const seen: { config?: Config }[] = [];
  t.equal(await gcCommand([], fakeIo(), { run: fakeRun(seen) }), 0);
  t.equal(seen[0]!.config!.index.path, '/srv/registry/index.db', 'from the file');
  t.equal(seen[0]!.config!.http.addr, '127.0.0.1:6000', 'overridden from the environment');
});

t.test('the collector fails: `registry gc: <message>`, status 1, no stack trace, nothing on stdout', async (t) => {
  for (const tty of [undefined, { columns: 80 }]) {
    const io = fakeIo(tty);
    const run: RunGc = async (_config, opts) => {
      opts.onProgress?.({ phase: 'doomed', done: 0, total: 10 });
      opts.onProgress?.({ phase: 'doomed', done: 4, total: 10 });
      throw new Error('cannot open the index ./data/index.db: SQLITE_CANTOPEN');
    };
    const commands = { gc: { help: [], run: (args: string[], io2: typeof io) => gcCommand(args, io2, { run, loadConfig }) } };
    t.equal(await dispatch(['gc'], commands, io), 1);
    t.equal(io.stdout.text(), '', 'no summary');
    const err = io.stderr.text();
    t.match(err, /gc doomed: stopped after 4 of 10 \(\d+ ms\)(\x1b\[K)?\nregistry gc: cannot open the index \.\/data\/index\.db: SQLITE_CANTOPEN\n$/, `tty ${!!tty}: where it stopped, then the message on a line of its own`);
    t.notMatch(err, STACK);
  }
});

t.test('a configuration error stops it before the collector runs', async (t) => {
  const seen: unknown[] = [];
  const io = fakeIo();
  const commands = {
    gc: {
      help: [],
      run: (args: string[], io2: typeof io) =>
        gcCommand(args, io2, {
          run: fakeRun(seen as never),
          loadConfig: () => {
            throw new Error('unknown configuration key "gc.nope"');
          },
        }),
    },
  };
  t.equal(await dispatch(['gc', '--dry-run'], commands, io), 1);
  t.equal(io.stderr.text(), 'registry gc: unknown configuration key "gc.nope"\n');
  t.equal(seen.length, 0);
});

t.test('interrupted (Ctrl-C): the collector is asked to stop, status 130, no error message', async (t) => {
  const stop = new AbortController();
  const io = fakeIo();
  let seen: AbortSignal | undefined;
  const run: RunGc = async (_config, opts) => {
    seen = opts.signal;
    opts.onProgress?.({ phase: 'links', done: 7 });
    stop.abort();
    opts.signal?.throwIfAborted();
    throw new Error('not reached');
  };
  t.equal(await gcCommand([], io, { run, loadConfig, signal: stop.signal }), 130);
  t.equal(seen, stop.signal, 'the signal goes to the collector');
  t.match(io.stderr.text(), /^gc links: stopped after 7 \(\d+ ms\)\nregistry gc: interrupted; the next run finishes the job\n$/);
  t.equal(io.stdout.text(), '');
});

t.test('bad arguments: the usage, status 2, the collector not run', async (t) => {
  const seen: unknown[] = [];
  const io = fakeIo();
  t.equal(await gcCommand(['--dry-run', 'now'], io, { run: fakeRun(seen as never), loadConfig }), 2);
  t.equal(io.stderr.text(), 'registry gc: unknown argument "now"\nusage: npm run registry -- gc [--dry-run]\n');
  t.equal(seen.length, 0);
});
