import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { formatBytes } from '../../src/cli/format';
import { ROOT } from '../helpers/process';
import { startRegistry, tempDir } from '../helpers/server';
import { buildImage, pullsWhole, pushImage } from '../helpers/v2';
import { STACK } from './fake-io';

// `registry gc` through the built entry with the real collector (src/gc/run.ts), against the index and
// blob directory of a registry that keeps running: what the dry run announces is what the real run
// removes, and the summary's bytes are the bytes that left the disk. Local storage: the collector's own
// tests cover S3.

const CLI = path.join(ROOT, 'dist/cli/registry.js');
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REGISTRY_')));

function gc(args: string[], extra: NodeJS.ProcessEnv) {
  return spawnSync(process.execPath, [CLI, 'gc', ...args], { encoding: 'utf8', cwd: ROOT, env: { ...env, ...extra } });
}

function blobFiles(root: string): string[] {
  const top = path.join(root, 'blobs', 'sha256');
  if (!existsSync(top)) return [];
  return readdirSync(top).flatMap((d) => readdirSync(path.join(top, d)).map((f) => `sha256:${f}`));
}


t.before(() => {
  if (!existsSync(CLI)) throw new Error('dist/cli/registry.js not built: run npm run build (npm test builds it)');
});

t.test('dry run, then the real run, while the server runs', async (t) => {
  const reg = await startRegistry(t, { gc: { delay: 0, interval: 0 }, storage: { driver: 'local' } });
  const config = path.join(reg.dir, 'cli.yml');
  writeFileSync(config, '');
  const cliEnv = {
    REGISTRY_CONFIG: config,
    REGISTRY_INDEX_PATH: reg.config.index.path,
    REGISTRY_STORAGE_LOCAL_ROOT: reg.config.storage.local.root,
    REGISTRY_GC_DELAY: '0',
  };
  const kept = buildImage({ layers: 2 });
  const dropped = buildImage({ layers: 1 });
  await pushImage(reg.url, 'team/kept', 'v1', kept);
  await pushImage(reg.url, 'team/dropped', 'v1', dropped);
  const res = await fetch(`${reg.url}/v2/team/dropped/manifests/${dropped.manifestDigest}`, { method: 'DELETE' });
  t.equal(res.status, 202);
  // The manifest is stored as a blob too.
  const freed = [dropped.config, ...dropped.layers, { digest: dropped.manifestDigest, data: dropped.manifest }];
  const freedBytes = freed.reduce((n, b) => n + b.data.length, 0);
  const root = reg.config.storage.local.root;
  const before = blobFiles(root).sort();
  for (const b of freed) t.ok(before.includes(b.digest), `${b.digest} on disk before`);

  let r = gc(['--dry-run'], cliEnv);
  t.equal(r.status, 0, r.stderr);
  const summary = /^gc --dry-run: would remove (\d+) blobs? \((.+?)\), (\d+) manifests?, (\d+) links?, 0 staged, 0 stray \(0 B\) in .+\n$/.exec(r.stdout);
  t.ok(summary, `dry-run summary: ${r.stdout}`);
  t.notMatch(r.stderr, STACK);
  for (const line of r.stderr.trimEnd().split('\n')) t.match(line, /^gc (doomed|manifests|links|blobs|staged|stray): /, 'a plain line per phase');
  t.same(blobFiles(root).sort(), before, 'the dry run touches no storage');

  r = gc([], cliEnv);
  t.equal(r.status, 0, r.stderr);
  const real = /^gc: removed (\d+) blobs? \((.+?)\), (\d+) manifests?, (\d+) links?, 0 staged, 0 stray \(0 B\) in .+\n$/.exec(r.stdout);
  t.ok(real, `summary: ${r.stdout}`);
  t.same(real?.slice(1), summary?.slice(1), 'the real run removes what the dry run announced');
  const after = blobFiles(root);
  t.same(
    before.filter((d) => !after.includes(d)).sort(),
    freed.map((b) => b.digest).sort(),
    'exactly the dropped image\'s blobs left the disk',
  );
  t.equal(Number(real?.[1]), freed.length);
  t.equal(real?.[2], formatBytes(freedBytes), 'the summary\'s bytes are theirs');
  t.ok(await pullsWhole(reg.url, 'team/kept', 'v1', kept), 'the kept image still pulls whole from the running server');

  r = gc([], cliEnv);
  t.match(r.stdout, /^gc: removed 0 blobs \(0 B\), 0 manifests, 0 links, 0 staged, 0 stray \(0 B\) in /, 'nothing left to collect');
});

t.test('an index that is not there: a clear message, status 1, storage untouched', async (t) => {
  const dir = tempDir(t);
  const config = path.join(dir, 'cli.yml');
  writeFileSync(config, '');
  const index = path.join(dir, 'no', 'index.db');
  const blobs = path.join(dir, 'blobs');
  const r = gc([], { REGISTRY_CONFIG: config, REGISTRY_INDEX_PATH: index, REGISTRY_STORAGE_LOCAL_ROOT: blobs });
  t.equal(r.status, 1);
  t.equal(r.stdout, '');
  t.match(r.stderr, /^registry gc: no index at .*index\.db/);
  t.equal(r.stderr.split('\n').length, 2, 'one line');
  t.notOk(existsSync(blobs), 'no storage created');
  t.notOk(existsSync(path.dirname(index)), 'no index created');
});
