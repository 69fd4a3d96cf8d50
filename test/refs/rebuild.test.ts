import Database from 'better-sqlite3';
import { appendFileSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { buildApp } from '../../src/app';
import { defaultConfig } from '../../src/config/load';
import { openDatabase } from '../../src/index/db';
import { MIGRATIONS } from '../../src/index/migrations';
import { rebuildIndex } from '../../src/refs/rebuild';
import { IndexMissingError } from '../../src/refs/startup-check';
import { freePort, serverEnv, spawnServer } from '../helpers/process';
import { startRegistry, tempDir } from '../helpers/server';
import { pullV1 } from '../helpers/v1';
import { buildImage, pushImage, pullsWhole, type BuiltImage } from '../helpers/v2';
import { indexRows, pushMixed, removeIndex } from './index-rows';

// The reference journal and rebuild-index: after losing index.db, storage alone gives back every tag,
// manifest, link, v1 image and tag, exactly as the index had them.

t.test('lose the index, rebuild it from storage: every row comes back and every image pulls', async (t) => {
  let reg = await startRegistry(t, { gc: { interval: 0 } });
  const pushed = await pushMixed(reg);
  const catalog = async () => ((await (await fetch(`${reg.url}/v2/_catalog`)).json()) as { repositories: string[] }).repositories;
  await reg.app.registry.bridge?.settle(); // v1ns/app's v2 tag is made in the background
  const catalogBefore = await catalog();
  const file = reg.config.index.path;
  const dir = reg.dir;
  await reg.close();
  const before = indexRows(file);
  // Six tags: five pushed over v2, and v1ns/app:latest bridged from its v1 tag (its mark comes back from the journal).
  t.ok(before.tags.length === 6 && before.v1Images.length === 3 && before.refs.length > 0, 'something to lose');

  removeIndex(file);
  await t.rejects(buildApp(reg.config), IndexMissingError, 'the server refuses to start an empty index over the data');
  t.notOk(existsSync(file), 'and creates none');

  const report = await rebuildIndex(reg.config);
  t.same(report.problems, [], 'nothing inconsistent');
  t.same(indexRows(file), before, 'every row as it was');
  t.same([report.tags, report.v1Images], [before.tags.length, 3]);

  reg = await startRegistry(t, { gc: { interval: 0 }, storage: reg.config.storage }, dir); // the same storage (on S3: the same bucket)
  for (const [repo, tag, img] of [['mix/oci', 'v1', pushed.oci], ['mix/docker', 'latest', pushed.docker], ['mix/multi', 'amd', pushed.amd]] as [string, string, BuiltImage][]) {
    t.ok(await pullsWhole(reg.url, repo, tag, img), `${repo}:${tag} pulls whole`);
  }
  const idx = await fetch(`${reg.url}/v2/mix/multi/manifests/latest`, { headers: { accept: 'application/vnd.oci.image.index.v1+json' } });
  t.same(Buffer.from(await idx.arrayBuffer()), pushed.index, 'the index, byte for byte');
  const pulled = await pullV1(reg.url, 'v1ns/app', 'latest');
  t.same(pulled.map((i) => i.id), pushed.chain.map((i) => i.id), 'the v1 chain pulls');
  t.same(await catalog(), catalogBefore, 'the catalog as before');
  const refs = (await (await fetch(`${reg.url}/v2/mix/oci/referrers/${pushed.subject}`)).json()) as { manifests: { artifactType: string }[] };
  t.same(refs.manifests.map((m) => m.artifactType), ['application/vnd.example.sig'], 'referrers as before');

  // The rebuilt index goes on journaling after what storage holds: a second loss loses nothing either.
  const more = buildImage({ layers: 1 });
  await pushImage(reg.url, 'mix/after', 'v1', more);
  await reg.close();
  const again = indexRows(file);
  removeIndex(file);
  t.same((await rebuildIndex(reg.config)).problems, []);
  t.same(indexRows(file), again, 'the push after the rebuild is there too');
});

t.test('bad input: no journal, an existing index, a damaged record', async (t) => {
  const empty = tempDir(t);
  const cfg = (dir: string) => defaultConfig({ storage: { local: { root: path.join(dir, 'blobs') } }, index: { path: path.join(dir, 'index.db') } });
  const before = readdirSync(empty);
  await t.rejects(rebuildIndex(cfg(empty)), /no reference journal in .*: this is not a registry's storage/);
  t.same(readdirSync(empty), before, 'nothing created');
  const foreign = tempDir(t);
  mkdirSync(path.join(foreign, 'blobs'));
  writeFileSync(path.join(foreign, 'blobs', 'photo.jpg'), 'x');
  await t.rejects(rebuildIndex(cfg(foreign)), /no reference journal/);
  t.same(readdirSync(foreign).sort(), ['blobs'], 'a foreign directory is left as it was');

  const reg = await startRegistry(t, { storage: { driver: 'local' }, gc: { interval: 0 } }); // edits journal files by path
  await pushImage(reg.url, 'bad/app', 'v1', buildImage());
  await pushImage(reg.url, 'bad/app', 'v2', buildImage());
  await reg.close();
  await t.rejects(rebuildIndex(reg.config), /an index exists at .*: rebuild-index replaces it only with --force/);
  const expected = indexRows(reg.config.index.path);
  // A record cut short at the end of the last segment (a torn write on a file system without atomic rename).
  const journal = path.join(reg.dir, 'blobs', 'refs', 'journal');
  const last = readdirSync(journal).sort().pop()!;
  appendFileSync(path.join(journal, last), '{"s":999999,"t":"tag","r":"bad/app","g":"v3","d":"sha256:');
  const report = await rebuildIndex(reg.config, { force: true });
  t.equal(report.problemCount, 1);
  t.match(report.problems[0], /line \d+: truncated or malformed record/);
  t.ok(report.previous && existsSync(report.previous), 'the replaced index is kept beside it');
  t.same(indexRows(reg.config.index.path), expected, 'everything else is rebuilt');
});

t.test('an index from before the journal starts it with everything it holds', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'index.db');
  const old = new Database(file);
  for (const [v, sql] of MIGRATIONS.slice(0, 5).entries()) {
    old.exec(sql);
    old.pragma(`user_version = ${v + 1}`);
  }
  old.prepare("INSERT INTO repositories (name, created_at) VALUES ('old/r', 1)").run();
  old.prepare("INSERT INTO tags (repo, tag, digest, updated_at) VALUES ('old/r', 'v1', 'sha256:aa', 2)").run();
  old.close();
  const db = openDatabase(file);
  const records = db.prepare('SELECT record FROM refs_outbox ORDER BY seq').pluck().all() as string[];
  db.close();
  t.same(records.map((r) => JSON.parse(r).t), ['repo', 'tag'], 'the existing state is the first batch the server writes');
});

t.test('kill -9 of the real server: its open segment is read as it is; the restarted server refuses the lost index by name', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  const env = serverEnv(dir, port, { REGISTRY_GC_INTERVAL: '0' });
  const srv = await spawnServer(t, env, port);
  const images = [buildImage({ layers: 1 }), buildImage({ layers: 2 })];
  await pushImage(srv.url, 'kill/a', 'one', images[0]!);
  await pushImage(srv.url, 'kill/a', 'two', images[1]!);
  await srv.stop('SIGKILL');
  t.ok(readdirSync(path.join(dir, 'blobs', 'refs', 'journal')).some((f) => f.includes('-open-')), 'the segment was still open');
  removeIndex(path.join(dir, 'index.db'));

  const refused = await spawnServer(t, env, port, { waitReady: false });
  t.equal(await refused.exited, 2, 'the server refuses to start');
  t.match(refused.stderr(), /^registry: the index .*index\.db \(index\.path\) is missing, but the storage holds a registry's data\. Rebuild the index from storage with `npm run registry -- rebuild-index`/);
  t.notMatch(refused.stderr(), /\n\s+at /, 'no stack trace');

  const config = defaultConfig({ storage: { local: { root: path.join(dir, 'blobs') } }, index: { path: path.join(dir, 'index.db') } });
  t.same((await rebuildIndex(config)).problems, []);
  const again = await spawnServer(t, env, port);
  t.ok(await pullsWhole(again.url, 'kill/a', 'one', images[0]!));
  t.ok(await pullsWhole(again.url, 'kill/a', 'two', images[1]!));
  await again.stop();
});
