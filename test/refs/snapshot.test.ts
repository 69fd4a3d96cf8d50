import Database from 'better-sqlite3';
import path from 'node:path';
import t from 'tap';
import { compactCommand } from '../../src/cli/compact';
import { openDatabase } from '../../src/index/db';
import { RefJournal } from '../../src/refs/journal';
import { JOURNAL_PREFIX, segmentRange, SNAPSHOT_PREFIX, snapshotKey } from '../../src/refs/layout';
import { rebuildIndex } from '../../src/refs/rebuild';
import { compactIfGrown, compactJournal, completeSnapshots } from '../../src/refs/snapshot';
import { createDriver } from '../../src/storage/factory';
import type { StorageDriver } from '../../src/storage/driver';
import { LocalDriver } from '../../src/storage/local-driver';
import { fakeIo } from '../cli/fake-io';
import { startRegistry, tempDir } from '../helpers/server';
import { imageChain, pullV1, pushV1 } from '../helpers/v1';
import { buildImage, pushImage, pullsWhole } from '../helpers/v2';
import { indexRows, pushMixed, removeIndex } from './index-rows';

// Journal compaction: a snapshot of the index stands for every record up to its sequence number, the
// segments it covers go, and rebuild-index gives back the same index from the snapshot plus what came after.

async function keys(driver: StorageDriver, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const { key } of driver.listRecords(prefix)) out.push(key);
  return out;
}

t.test('compact while the server runs, write more, lose the index: the rebuild is the index as it was', async (t) => {
  let reg = await startRegistry(t, { gc: { interval: 0 } });
  const pushed = await pushMixed(reg);
  const io = fakeIo();
  t.equal(await compactCommand([], io, { loadConfig: () => reg.config }), 0, io.stderr.text());
  t.match(io.stdout.text(), /^compact-journal: snapshot of \d+ records up to #\d+ in 1 part\(s\); deleted \d+ segment\(s\) and 0 older snapshot\(s\)/);
  const driver = await createDriver(reg.config);
  t.teardown(() => driver.close?.());
  const [snapshot] = await completeSnapshots(driver);
  t.ok(snapshot, 'a complete snapshot');
  const covered = (await keys(driver, JOURNAL_PREFIX)).filter((k) => (segmentRange(k)?.last ?? Infinity) <= snapshot!.seq);
  t.same(covered, [], 'no closed segment it covers is left');

  // After the snapshot: a tag moves, an image is deleted, new v1 and v2 pushes, then a second compaction.
  const moved = buildImage({ layers: 1 });
  await pushImage(reg.url, 'mix/oci', 'v1', moved);
  await fetch(`${reg.url}/v2/mix/docker/manifests/${pushed.docker.manifestDigest}`, { method: 'DELETE' });
  const chain = imageChain(2);
  await pushV1(reg.url, 'v1ns/later', 'latest', chain);
  t.equal(await compactCommand([], fakeIo(), { loadConfig: () => reg.config }), 0);
  t.equal((await completeSnapshots(driver)).length, 1, 'the older snapshot is deleted');
  const after = buildImage({ layers: 2 });
  await pushImage(reg.url, 'mix/after', 'v1', after);

  const file = reg.config.index.path;
  const dir = reg.dir;
  await reg.close();
  const before = indexRows(file);
  removeIndex(file);
  const report = await rebuildIndex(reg.config);
  t.same(report.problems, [], 'nothing inconsistent');
  t.ok(report.snapshot && report.snapshot.seq > snapshot!.seq, 'the newest snapshot was loaded');
  t.same(indexRows(file), before, 'every row as it was');

  reg = await startRegistry(t, { gc: { interval: 0 }, storage: reg.config.storage }, dir);
  t.ok(await pullsWhole(reg.url, 'mix/oci', 'v1', moved), 'the moved tag pulls');
  t.ok(await pullsWhole(reg.url, 'mix/after', 'v1', after), 'the push after the last snapshot pulls');
  t.equal((await fetch(`${reg.url}/v2/mix/docker/manifests/latest`)).status, 404, 'the deleted image stays deleted');
  t.same((await pullV1(reg.url, 'v1ns/later', 'latest')).map((i) => i.id), chain.map((i) => i.id), 'the v1 chain pulls');
});

t.test('a snapshot is used only whole; compaction waits until the journal has grown', async (t) => {
  const dir = tempDir(t);
  const driver = new LocalDriver({ root: path.join(dir, 'blobs'), fsync: false });
  await driver.init();
  const file = path.join(dir, 'index.db');
  const db = openDatabase(file);
  const journal = new RefJournal(db, driver);
  await journal.start(false);
  db.prepare("INSERT INTO repositories (name, created_at) VALUES ('s/r', 1)").run();
  await journal.close();
  t.equal(await compactIfGrown(file, driver), undefined, 'a small journal is left alone');
  const report = (await compactIfGrown(file, driver, { floorBytes: 1 }))!;
  t.same([report.records, report.parts, report.segmentsDeleted], [1, 1, 1], 'past the floor it is compacted');
  t.equal(await compactIfGrown(file, driver, { floorBytes: 1 }), undefined, 'and not again until the journal outgrows the snapshot');

  // A snapshot still being written (no .done) is not used, nor deleted by a compaction older than it.
  const part = (await keys(driver, SNAPSHOT_PREFIX)).find((k) => snapshotKey(k)?.part === 0)!;
  const unfinished = part.replace(/\/\d{16}-[0-9a-f]{8}-/, `/${String(report.seq + 5).padStart(16, '0')}-0badcafe-`);
  await driver.putRecord(unfinished, Buffer.from('{"t":"repo","r":"x/y","c":1}\n'));
  t.equal((await completeSnapshots(driver))[0]!.seq, report.seq, 'the unfinished one is not used');
  await compactJournal(file, driver);
  t.ok((await keys(driver, SNAPSHOT_PREFIX)).includes(unfinished), 'a newer unfinished snapshot is left to its writer');

  // A part gone: the snapshot is not used (rebuild then says there is nothing to rebuild from).
  const [newest] = await completeSnapshots(driver);
  await driver.deleteRecord(newest!.parts[0]!);
  t.same(await completeSnapshots(driver), [], 'a snapshot missing a part is not used');
  db.close();
});

t.test('after compaction, an index restored from before it numbers its records after the snapshot', async (t) => {
  const dir = tempDir(t);
  const driver = new LocalDriver({ root: path.join(dir, 'blobs'), fsync: false });
  await driver.init();
  const file = path.join(dir, 'index.db');
  const session = async (f: string, tag: string) => {
    const db = openDatabase(f);
    const journal = new RefJournal(db, driver);
    await journal.start(false);
    db.prepare("INSERT OR IGNORE INTO repositories (name, created_at) VALUES ('s/r', 1)").run();
    db.prepare("INSERT INTO tags (repo, tag, digest, updated_at) VALUES ('s/r', ?, 'sha256:aa', 1)").run(tag);
    await journal.close();
    db.close();
  };
  await session(file, 'a');
  const live = new Database(file);
  await live.backup(path.join(dir, 'old.db'));
  live.close();
  await session(file, 'b');
  await session(file, 'c');
  const { seq } = await compactJournal(file, driver);
  t.same(await keys(driver, JOURNAL_PREFIX), [], 'every segment is covered');
  await session(path.join(dir, 'old.db'), 'd');
  const [segment] = await keys(driver, JOURNAL_PREFIX);
  t.ok(segmentRange(segment!)!.first > seq, 'the restored index numbers after the snapshot');
});
