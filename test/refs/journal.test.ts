import Database from 'better-sqlite3';
import path from 'node:path';
import t from 'tap';
import { openDatabase, type Db } from '../../src/index/db';
import { MIGRATIONS } from '../../src/index/migrations';
import { defaultConfig } from '../../src/config/load';
import { flushJournal, RefJournal } from '../../src/refs/journal';
import { rebuildIndex } from '../../src/refs/rebuild';
import { JOURNAL_PREFIX } from '../../src/refs/layout';
import { LocalDriver } from '../../src/storage/local-driver';
import { tempDir } from '../helpers/server';

// Sequence numbers of the reference journal never go back (rebuild replays by them and skips what it has
// applied): not after the outbox is pruned, a restart, an upgrade from migration 6, or a restore of an
// older index beside a newer journal.

const tag = (db: Db, name: string) =>
  db.prepare("INSERT INTO tags (repo, tag, digest, updated_at) VALUES ('j/r', ?, 'sha256:aa', 1) ON CONFLICT DO UPDATE SET updated_at = updated_at + 1").run(name);

/** Every sequence number written to storage, in segment order. */
async function storedSequences(driver: LocalDriver): Promise<number[]> {
  const keys: string[] = [];
  for await (const { key } of driver.listRecords(JOURNAL_PREFIX)) keys.push(key);
  const seqs: number[] = [];
  for (const key of keys.sort()) {
    const data = (await driver.getRecord(key))!.toString('utf8');
    for (const line of data.split('\n').filter(Boolean)) seqs.push((JSON.parse(line) as { s: number }).s);
  }
  return seqs;
}

async function session(file: string, driver: LocalDriver, tags: string[]): Promise<void> {
  const db = openDatabase(file);
  const journal = new RefJournal(db, driver);
  await journal.start(false);
  db.prepare("INSERT OR IGNORE INTO repositories (name, created_at) VALUES ('j/r', 1)").run();
  for (const name of tags) tag(db, name);
  await journal.close();
  db.close();
}

t.test('numbers only grow across prunes and restarts, and each record is written once', async (t) => {
  const dir = tempDir(t);
  const driver = new LocalDriver({ root: path.join(dir, 'blobs'), fsync: false });
  await driver.init();
  const file = path.join(dir, 'index.db');
  await session(file, driver, ['a', 'b']);
  await session(file, driver, ['c']);
  await session(file, driver, []);
  await session(file, driver, ['d']);
  const seqs = await storedSequences(driver);
  t.same(seqs, [...seqs].sort((a, b) => a - b), 'in order');
  t.equal(new Set(seqs).size, seqs.length, 'no number twice');
  t.equal(seqs.length, 5, 'repository and four tags');
  const db = new Database(file, { readonly: true });
  t.same(db.prepare('SELECT seq, record FROM refs_outbox').all(), [{ seq: seqs.at(-1), record: '' }], 'only the newest row is left, as a floor');
  db.close();
});

t.test('an index restored from before later records numbers after them', async (t) => {
  const dir = tempDir(t);
  const driver = new LocalDriver({ root: path.join(dir, 'blobs'), fsync: false });
  await driver.init();
  const file = path.join(dir, 'index.db');
  await session(file, driver, ['a']);
  const backup = path.join(dir, 'backup.db');
  const live = new Database(file);
  await live.backup(backup);
  live.close();
  await session(file, driver, ['b', 'c', 'd']);
  await session(backup, driver, ['e']);
  const seqs = await storedSequences(driver);
  t.equal(new Set(seqs).size, seqs.length, 'the restored index reuses no number');
  t.equal(seqs.at(-1), Math.max(...seqs), 'its record is the newest');
});

t.test('an index of version 6 keeps its sequence: the AUTOINCREMENT counter becomes a floor row', async (t) => {
  const file = path.join(tempDir(t), 'index.db');
  const old = new Database(file);
  for (const [v, sql] of MIGRATIONS.slice(0, 6).entries()) {
    old.exec(sql);
    old.pragma(`user_version = ${v + 1}`);
  }
  old.prepare("INSERT INTO repositories (name, created_at) VALUES ('j/r', 1)").run();
  tag(old, 'a');
  old.prepare("UPDATE sqlite_sequence SET seq = 40 WHERE name = 'refs_outbox'").run();
  old.close();
  const db = openDatabase(file);
  t.same(
    db.prepare(`SELECT seq, CASE record WHEN '' THEN NULL ELSE json_extract(record, '$.t') END AS t FROM refs_outbox ORDER BY seq`).all(),
    [{ seq: 1, t: 'repo' }, { seq: 2, t: 'tag' }, { seq: 40, t: null }],
    'pending records stay, the counter is a floor',
  );
  tag(db, 'b');
  t.equal(db.prepare('SELECT max(seq) FROM refs_outbox').pluck().get(), 41, 'the next record follows the old counter');
  db.close();
});

t.test('an operator command flushing while the server runs: the rebuild still has every record', async (t) => {
  const dir = tempDir(t);
  const root = path.join(dir, 'blobs');
  const driver = new LocalDriver({ root, fsync: false });
  await driver.init();
  const file = path.join(dir, 'index.db');
  const server = openDatabase(file);
  const journal = new RefJournal(server, driver);
  await journal.start(false);
  server.prepare("INSERT INTO repositories (name, created_at) VALUES ('j/r', 1)").run();
  tag(server, 'a');
  tag(server, 'b');
  await journal.flush();
  await journal['sync']();
  await journal.prune(); // the server's records so far are durable and leave the outbox
  tag(server, 'c');
  tag(server, 'd');
  await journal.flush(); // appended to the server's open segment, not yet synced
  // The CLI (gc, repo delete, retention...) in its own process: its own connection, its own segment.
  const cli = openDatabase(file);
  tag(cli, 'e');
  tag(cli, 'f');
  await flushJournal(cli, driver);
  cli.close();
  tag(server, 'g');
  await journal.close();
  server.close();
  const expected = new Database(file, { readonly: true }).prepare('SELECT tag, updated_at FROM tags ORDER BY tag').all();
  const config = defaultConfig({ storage: { local: { root } }, index: { path: file } });
  await rebuildIndex(config, { force: true });
  const rebuilt = new Database(file, { readonly: true }).prepare('SELECT tag, updated_at FROM tags ORDER BY tag').all();
  t.same(rebuilt, expected, "every tag, the command's included, as the index had it");
});
