import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import t from 'tap';
import { freePort, serverEnv, spawnServer } from '../helpers/process';
import { tempDir } from '../helpers/server';
import { buildImage, pullsWhole, pushImage, type BuiltImage } from '../helpers/v2';

// kill -9 of the real server process (dist/, as npm start runs it) while its background garbage collection
// runs, cycle after cycle: the test watches the index and kills the server the moment a collection has
// taken blobs out of it and is deleting their bytes. After each restart every tagged image pulls whole, and
// in the end a collection completes and leaves exactly the blobs the tagged images use.

const CYCLES = 6;


t.test('kill -9 during background collections: nothing referenced is lost, the next collection completes', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  // gc.delay long enough for a push to name its blobs in its manifest; collections run every second.
  const env = serverEnv(dir, port, { REGISTRY_LOG_LEVEL: 'info', REGISTRY_GC_INTERVAL: '1', REGISTRY_GC_DELAY: '3' });
  const kept: { repo: string; tag: string; image: BuiltImage }[] = [];
  let killedDuring = 0;
  for (let cycle = 0; cycle < CYCLES; cycle++) {
    const srv = await spawnServer(t, env, port);
    // Pushes that stay, and many that are deleted at once so that the next collection has work.
    for (let i = 0; i < 3; i++) {
      const image = buildImage({ layers: 2, layerBytes: 512 });
      await pushImage(srv.url, `kill/keep${i}`, `c${cycle}`, image);
      kept.push({ repo: `kill/keep${i}`, tag: `c${cycle}`, image });
    }
    // On a loaded machine one of these 150 concurrent pushes may outlast gc.delay between its blobs and its
    // manifest; its blobs are then rightly collected and its manifest refused: it just has nothing to delete.
    const pushed = await Promise.all(
      Array.from({ length: 150 }, async (_, i) => {
        const image = buildImage({ layers: 2, layerBytes: 256 });
        return pushImage(srv.url, `kill/gone${i % 6}`, `c${cycle}-${i}`, image).then(
          (digest) => ({ repo: `kill/gone${i % 6}`, digest }),
          (err: Error) => {
            if (!/MANIFEST_BLOB_UNKNOWN/.test(err.message)) throw err;
            return undefined;
          },
        );
      }),
    );
    const doomed = pushed.filter((d) => d !== undefined);
    await Promise.all(doomed.map((d) => fetch(`${srv.url}/v2/${d.repo}/manifests/${d.digest}`, { method: 'DELETE' })));
    // Once the deleted images' blobs are older than gc.delay, a collection dooms them: kill it then.
    const index = new Database(env.REGISTRY_INDEX_PATH, { readonly: true, fileMustExist: true });
    const doomedRows = index.prepare('SELECT count(*) FROM gc_doomed').pluck();
    for (const until = Date.now() + 10_000; Date.now() < until; await new Promise((r) => setTimeout(r, 5))) {
      if ((doomedRows.get() as number) > 0) {
        killedDuring++;
        break;
      }
    }
    srv.child.kill('SIGKILL');
    index.close();
    await srv.exited;
    const again = await spawnServer(t, env, port);
    for (const k of kept) t.ok(await pullsWhole(again.url, k.repo, k.tag, k.image), `cycle ${cycle}: ${k.repo}:${k.tag} pulls whole after kill -9`);
    again.child.kill('SIGKILL');
    await again.exited;
  }
  t.ok(killedDuring >= CYCLES / 2, `${killedDuring} of ${CYCLES} kills came while a collection was deleting bytes`);

  // Quiet: once everything is older than gc.delay, let one collection start and finish; then only the
  // kept images' blobs are on disk.
  const srv = await spawnServer(t, env, port);
  await new Promise((r) => setTimeout(r, 3500));
  const from = srv.stdout().length;
  // Two completions: the first may have started before that point.
  const completed = () => srv.stdout().slice(from).split('"msg":"garbage collection"').length > 2;
  for (let waited = 0; !completed() && waited < 20_000; waited += 100) await new Promise((r) => setTimeout(r, 100));
  t.ok(completed(), 'collections completed');
  const wanted = new Set(kept.flatMap((k) => [k.image.manifestDigest, k.image.config.digest, ...k.image.layers.map((l) => l.digest)]));
  const top = path.join(dir, 'blobs', 'blobs', 'sha256');
  const onDisk = existsSync(top) ? readdirSync(top).flatMap((d) => readdirSync(path.join(top, d)).map((f) => `sha256:${f}`)) : [];
  t.same(new Set(onDisk), wanted, 'exactly the blobs of the tagged images are left');
  for (const k of kept) t.ok(await pullsWhole(srv.url, k.repo, k.tag, k.image));
  t.same(readdirSync(path.join(dir, 'blobs', 'uploads')), [], 'no staged file left');
  t.equal(await srv.stop(), 0);
});
