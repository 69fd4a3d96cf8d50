import { spawnSync } from 'node:child_process';
import path from 'node:path';
import t from 'tap';
import { newPostgresDatabase } from '../helpers/index-db';
import { ROOT } from '../helpers/process';
import { startRegistry, tempDir } from '../helpers/server';
import { STACK } from './fake-io';
import { buildImage, pushImage } from '../helpers/v2';

// Operator commands on a PostgreSQL index: the same commands as on SQLite, but those made for the SQLite
// file (backup, check, compact-journal, rebuild-index, gc --dry-run) say what to use instead.

t.test('du, repo delete, gc and notifications status on PostgreSQL; the SQLite-file commands refuse clearly', async (t) => {
  const url = await newPostgresDatabase();
  const dir = tempDir(t);
  const reg = await startRegistry(t, { index: { driver: 'postgres', postgres: { url } }, storage: { local: { root: path.join(dir, 'blobs') } } }, dir);
  await pushImage(reg.url, 'team/app', 'v1', buildImage({ layers: 1, layerBytes: 2048 }));
  await reg.close();

  const env = {
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REGISTRY_'))),
    REGISTRY_INDEX_DRIVER: 'postgres',
    REGISTRY_INDEX_POSTGRES_URL: url,
    REGISTRY_STORAGE_LOCAL_ROOT: path.join(dir, 'blobs'),
    REGISTRY_STORAGE_LOCAL_SHARED: 'true', // one process here; a local root with the PostgreSQL index must be stated shared
  };
  const run = (...args: string[]) => spawnSync(process.execPath, [path.join(ROOT, 'dist/cli/registry.js'), ...args], { encoding: 'utf8', cwd: ROOT, env });

  let r = run('du', '--bytes');
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^REPOSITORY\s+SIZE\s+SHARED\s+UNIQUE\s+BLOBS\nteam\/app\s+\d+\s+0\s+\d+\s+3\n/);

  r = run('notifications', 'status');
  t.equal(r.status, 0, r.stderr);

  for (const [args, what] of [
    [['backup', path.join(dir, 'b.db')], 'backup'],
    [['check'], 'check'],
    [['compact-journal'], 'compact-journal'],
    [['rebuild-index'], 'rebuild-index'],
  ] as const) {
    r = run(...args);
    t.equal(r.status, 1, `${what}: exit 1`);
    t.match(r.stderr, new RegExp(`^registry ${args[0]}: ${what} is for the SQLite index; with index.driver postgres, use PostgreSQL's own tools`), what);
    t.notMatch(r.stderr, STACK);
  }
  r = run('gc', '--dry-run');
  t.equal(r.status, 1);
  t.match(r.stderr, /^registry gc: --dry-run needs the SQLite index/);

  r = run('repo', 'delete', 'team/app');
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^repo delete: deleted team\/app \(1 tag, 1 manifest, 3 blob links/);
  r = run('gc');
  t.equal(r.status, 0, 'gc runs on PostgreSQL (the blobs stay until gc.delay has passed)');
  r = run('du');
  t.equal(r.stdout.trim().split('\n').length, 2, `no repository left (header and total): ${r.stdout}`);
});
