import Database from 'better-sqlite3';
import path from 'node:path';
import t from 'tap';
import { openDatabase } from '../../src/index/db';
import { MIGRATIONS } from '../../src/index/migrations';
import { tempDir } from '../helpers/server';

// Migration 3 gives each repository its own v1 images: an index written before it keeps every image
// reachable where it was (the repositories that listed or tagged it), with whole chains.

t.test('v1 images of a version-2 index move into the repositories that listed or tagged them', async (t) => {
  const file = path.join(tempDir(t), 'index.db');
  const old = new Database(file);
  for (const [v, sql] of MIGRATIONS.slice(0, 2).entries()) {
    old.exec(sql);
    old.pragma(`user_version = ${v + 1}`);
  }
  const image = old.prepare(
    'INSERT INTO v1_images (id, parent, json_digest, layer_digest, layer_size, checksum, complete, created_at) VALUES (?, ?, ?, ?, 1, ?, ?, 1)',
  );
  const [root, mid, top, loose] = ['a', 'b', 'c', 'd'].map((c) => c.repeat(64)) as [string, string, string, string];
  image.run(root, null, 'sha256:j1', 'sha256:l1', 'sum1', 1);
  image.run(mid, root, 'sha256:j2', 'sha256:l2', 'sum2', 1);
  image.run(top, mid, 'sha256:j3', 'sha256:l3', 'sum3', 1);
  image.run(loose, null, 'sha256:j4', null, null, 0);
  old.prepare('INSERT INTO v1_repo_images (repo, image_id, position) VALUES (?, ?, ?)').run('ns/listed', top, 0);
  old.prepare("INSERT INTO v1_tags (repo, tag, image_id, meta) VALUES (?, 'latest', ?, '{}')").run('ns/tagged', mid);
  old.prepare("INSERT INTO uploads (id, repo, size, state, started_at, updated_at) VALUES ('u1', 'ns/listed', 5, '{}', 1, 1)").run();
  old.close();

  const db = openDatabase(file);
  t.equal(db.pragma('user_version', { simple: true }), MIGRATIONS.length);
  const rows = db.prepare('SELECT repo, id, parent, complete FROM v1_images ORDER BY repo, id').all();
  t.same(rows, [
    { repo: 'ns/listed', id: root, parent: null, complete: 1 },
    { repo: 'ns/listed', id: mid, parent: root, complete: 1 },
    { repo: 'ns/listed', id: top, parent: mid, complete: 1 },
    { repo: 'ns/tagged', id: root, parent: null, complete: 1 },
    { repo: 'ns/tagged', id: mid, parent: root, complete: 1 },
  ], 'each chain whole in each repository; an image no repository named is dropped');
  t.same(db.prepare('SELECT id, owner, digest FROM uploads').all(), [{ id: 'u1', owner: null, digest: null }], 'open uploads keep going');
  db.close();
});
