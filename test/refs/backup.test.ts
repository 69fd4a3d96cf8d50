import Database from 'better-sqlite3';
import path from 'node:path';
import t from 'tap';
import { backupCommand } from '../../src/cli/backup';
import { rebuildIndex } from '../../src/refs/rebuild';
import { fakeIo } from '../cli/fake-io';
import { startRegistry } from '../helpers/server';
import { buildImage, pushImage, pullsWhole, type BuiltImage } from '../helpers/v2';

// `registry backup` while 8 clients push: the copy opens and holds every push acknowledged before the backup
// began; storage plus rebuild-index gives back every push acknowledged at all.

t.test('a backup taken while 8 clients push', async (t) => {
  const reg = await startRegistry(t, { gc: { interval: 0 } });
  const acked: { repo: string; tag: string; img: BuiltImage; at: number }[] = [];
  let stop = false;
  const pushers = Array.from({ length: 8 }, async (_, c) => {
    for (let n = 0; !stop; n++) {
      const img = buildImage({ layers: 1, layerBytes: 512 });
      await pushImage(reg.url, `bk/c${c}`, `t${n}`, img);
      acked.push({ repo: `bk/c${c}`, tag: `t${n}`, img, at: Date.now() });
    }
  });
  while (acked.length < 40) await new Promise((r) => setTimeout(r, 20));
  const file = path.join(reg.dir, 'backup.db');
  const io = fakeIo();
  const backupStarted = Date.now();
  const code = await backupCommand([file], io, { loadConfig: () => reg.config });
  t.equal(code, 0, io.stderr.text());
  t.match(io.stdout.text(), /^backup: .*backup\.db \(.*\) in /);
  while (acked.length < 80) await new Promise((r) => setTimeout(r, 20));
  stop = true;
  await Promise.all(pushers);

  const copy = new Database(file, { readonly: true });
  const has = copy.prepare('SELECT 1 FROM tags WHERE repo = ? AND tag = ?').pluck();
  const before = acked.filter((a) => a.at < backupStarted);
  t.ok(before.length >= 40);
  t.same(before.filter((a) => !has.get(a.repo, a.tag)).map((a) => `${a.repo}:${a.tag}`), [], 'every push acknowledged before the backup is in the copy');
  t.equal(copy.pragma('integrity_check', { simple: true }), 'ok', 'and the copy is a sound database');
  copy.close();

  t.equal((await backupCommand([file], fakeIo(), { loadConfig: () => reg.config })), 1, 'an existing file is not overwritten');

  // Storage knows more than the copy: rebuilding gives back every acknowledged push.
  await reg.close();
  const report = await rebuildIndex(reg.config, { force: true });
  t.same(report.problems, []);
  const again = await startRegistry(t, { gc: { interval: 0 }, storage: reg.config.storage }, reg.dir); // the same storage (on S3: the same bucket)
  const missing: string[] = [];
  for (const a of acked) if (!(await pullsWhole(again.url, a.repo, a.tag, a.img))) missing.push(`${a.repo}:${a.tag}`);
  t.same(missing, [], `all ${acked.length} acknowledged pushes pull after rebuild-index`);
});
