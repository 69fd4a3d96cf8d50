import { spawnSync } from 'node:child_process';
import path from 'node:path';
import t from 'tap';
import { newPostgresDatabase } from '../helpers/index-db';
import { ROOT } from '../helpers/process';
import { startRegistry, tempDir } from '../helpers/server';
import { buildImage, pushImage } from '../helpers/v2';

// An operator command run beside a running server changes what the server answers, though the server
// answers manifest GETs and tag lists from memory (src/index/read-cache.ts): on SQLite at once (the file's
// data_version), on PostgreSQL within index.postgres.cacheStaleness (its change feed).

const ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json';
const STALE_MS = 1000; // index.postgres.cacheStaleness's default, which the server runs with

for (const driver of ['sqlite', 'postgres'] as const) {
  t.test(`${driver}: repo delete by the CLI while the server runs is what the server answers next`, async (t) => {
    const dir = tempDir(t);
    const url = driver === 'postgres' ? await newPostgresDatabase() : undefined;
    const index = url ? { driver, postgres: { url } } : { driver };
    const reg = await startRegistry(t, { index, storage: { local: { root: path.join(dir, 'blobs'), shared: true } } }, dir);
    await pushImage(reg.url, 'team/app', 'v1', buildImage({ layers: 1, layerBytes: 2048 }));
    const manifest = () => fetch(`${reg.url}/v2/team/app/manifests/v1`, { headers: { accept: ACCEPT } }).then((r) => r.status);
    const tags = () => fetch(`${reg.url}/v2/team/app/tags/list`).then((r) => r.status);
    for (let i = 0; i < 3; i++) t.same([await manifest(), await tags()], [200, 200], 'served (from memory after the first)');

    const env = {
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REGISTRY_'))),
      REGISTRY_INDEX_DRIVER: driver,
      REGISTRY_INDEX_PATH: path.join(dir, 'index.db'),
      REGISTRY_STORAGE_LOCAL_ROOT: path.join(dir, 'blobs'),
      REGISTRY_STORAGE_LOCAL_SHARED: 'true',
      ...(url ? { REGISTRY_INDEX_POSTGRES_URL: url } : {}),
    };
    const r = spawnSync(process.execPath, [path.join(ROOT, 'dist/cli/registry.js'), 'repo', 'delete', 'team/app'], { encoding: 'utf8', cwd: ROOT, env });
    t.equal(r.status, 0, r.stderr);

    const start = performance.now();
    let reads = 0;
    for (;;) {
      reads++;
      const now = [await manifest(), await tags()];
      if (now[0] === 404 && now[1] === 404) break;
      if (driver === 'sqlite' || performance.now() - start > STALE_MS) {
        t.fail(`still ${now.join(', ')} after ${reads} reads, ${(performance.now() - start).toFixed(0)} ms`);
        return;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    t.pass(`gone: manifest and tag list 404 at read ${reads}, ${(performance.now() - start).toFixed(0)} ms after the command${driver === 'sqlite' ? ' (at once)' : ` (bound ${STALE_MS} ms)`}`);
  });
}
