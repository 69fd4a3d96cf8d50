import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { openDatabase, type Db } from '../../src/index/db';
import { WalSync } from '../../src/index/wal-sync';
import { tempDir } from '../helpers/server';

/** A database with one table, and a WalSync whose syncs are counted and released by hand. */
function setup(t: Test) {
  const db = openDatabase(path.join(tempDir(t), 'index.db'));
  t.teardown(() => db.close());
  db.exec('CREATE TABLE IF NOT EXISTS t (x)');
  const insert = db.prepare('INSERT INTO t VALUES (1)');
  const syncs: Array<{ release: () => void; fail: (err: Error) => void }> = [];
  const wal = new WalSync(db, () => new Promise<void>((release, fail) => void syncs.push({ release, fail })));
  return { db, write: () => void insert.run(), syncs, wal };
}

const tick = () => new Promise((r) => setImmediate(r));

t.test('the index commits without fsync: synchronous = NORMAL once migrated', async (t) => {
  const { db } = setup(t);
  t.equal(db.pragma('synchronous', { simple: true }), 1);
  t.equal(db.pragma('journal_mode', { simple: true }), 'wal');
});

t.test('flush syncs only when something was committed since the last sync', async (t) => {
  const { write, syncs, wal } = setup(t);
  await wal.flush();
  t.equal(syncs.length, 0, 'nothing written: no sync');
  write();
  const flushed = wal.flush();
  await tick();
  t.equal(syncs.length, 1);
  syncs[0]!.release();
  await flushed;
  await wal.flush();
  t.equal(syncs.length, 1, 'nothing new: no second sync');
});

t.test('concurrent flushes share one sync; a commit during a sync waits for the next one', async (t) => {
  const { write, syncs, wal } = setup(t);
  write();
  let early = 0;
  const first = Array.from({ length: 10 }, () => wal.flush().then(() => early++));
  await tick();
  t.equal(syncs.length, 1, 'ten flushes, one sync');

  write(); // committed while that sync runs: it may not cover this
  let late = false;
  const second = wal.flush().then(() => (late = true));
  syncs[0]!.release();
  await Promise.all(first);
  t.equal(early, 10, 'the first ten are done');
  await tick();
  t.notOk(late, 'the later commit still waits');
  t.equal(syncs.length, 2, 'a second sync started for it');
  syncs[1]!.release();
  await second;
  t.ok(late);
});

t.test('a failed sync rejects its flushes, and the next flush tries again', async (t) => {
  const { write, syncs, wal } = setup(t);
  write();
  const a = wal.flush();
  const b = wal.flush();
  await tick();
  syncs[0]!.fail(Object.assign(new Error('I/O error'), { code: 'EIO' }));
  await t.rejects(a, { code: 'EIO' });
  await t.rejects(b, { code: 'EIO' });
  const c = wal.flush();
  await tick();
  t.equal(syncs.length, 2, 'retried');
  syncs[1]!.release();
  await c;
});

t.test('the real sync fdatasyncs the WAL file, and an in-memory index never syncs', async (t) => {
  const file = path.join(tempDir(t), 'index.db');
  const db: Db = openDatabase(file);
  db.exec('CREATE TABLE t (x)');
  t.ok(existsSync(`${file}-wal`), 'WAL mode keeps a -wal file');
  const wal = new WalSync(db);
  db.prepare('INSERT INTO t VALUES (1)').run();
  await wal.flush();
  db.close();

  const memory = openDatabase(':memory:');
  let called = false;
  const none = new WalSync(memory, async () => void (called = true));
  memory.exec('CREATE TABLE t (x); INSERT INTO t VALUES (1)');
  await none.flush();
  t.notOk(called);
  memory.close();
});

/** A registry whose app uses `Sync` instead of the real WalSync. */
function registryWith(t: Test, Sync: typeof WalSync) {
  const { startRegistry } = t.mockRequire('../helpers/server', {
    '../../src/index/wal-sync': { WalSync: Sync },
  }) as typeof import('../helpers/server');
  return startRegistry(t);
}

const body = Buffer.from('hello');
const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;

// The app acknowledges a write only after WalSync.flush() resolves; reads never wait for it.
t.test('write responses wait for the index to be on disk, reads do not', async (t) => {
  const held: { release?: () => void } = {};
  let flushes = 0;
  class HeldWalSync extends WalSync {
    override async flush(): Promise<void> {
      flushes++;
      await new Promise<void>((release) => (held.release = release));
      return super.flush();
    }
  }
  const reg = await registryWith(t, HeldWalSync);

  let answered = false;
  const post = fetch(`${reg.url}/v2/a/blobs/uploads/?digest=${digest}`, { method: 'POST', body }).then((r) => {
    answered = true;
    return r;
  });
  // Bounded generously: the first upload starts the upload workers, slow on a busy machine.
  for (let i = 0; !held.release && i < 6000; i++) await new Promise((r) => setTimeout(r, 5));
  t.ok(held.release, 'the POST asked for a sync');
  await new Promise((r) => setTimeout(r, 50));
  t.notOk(answered, 'no answer while the index sync is held');
  held.release?.();
  t.equal((await post).status, 201);

  const before = flushes;
  t.equal((await fetch(`${reg.url}/v2/a/blobs/${digest}`)).status, 200);
  t.equal(flushes, before, 'a GET does not wait for the sync');
});

t.test('a failing index sync answers the write with an error, not a success, and the server stays up', async (t) => {
  let failure: Error | null = null;
  class FailingWalSync extends WalSync {
    override async flush(): Promise<void> {
      if (failure) throw failure;
      return super.flush();
    }
  }
  const reg = await registryWith(t, FailingWalSync);
  const post = () => fetch(`${reg.url}/v2/a/blobs/uploads/?digest=${digest}`, { method: 'POST', body });

  failure = Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
  let res = await post();
  t.equal(res.status, 500);
  t.same(await res.json(), { errors: [{ code: 'INTERNAL', message: 'the index could not be synced to disk', detail: {} }] });
  t.notOk(res.headers.get('location'), 'no Location of a blob that may not survive');
  t.notOk(res.headers.get('docker-content-digest'), 'no Docker-Content-Digest either');

  failure = Object.assign(new Error('ENOSPC: no space left on device, fdatasync'), { code: 'ENOSPC' });
  res = await post();
  t.equal(res.status, 507, 'a full disk is told as such, as for blob writes');
  t.match(await res.json(), { errors: [{ code: 'STORAGE_FULL' }] });

  failure = Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
  res = await fetch(`${reg.url}/v1/repositories/a/`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json', 'x-docker-token': 'true' },
    body: '[]',
  });
  t.equal(res.status, 500);
  t.same(await res.json(), { error: 'the index could not be synced to disk' }, 'a v1 write gets the v1 error body');
  t.notOk(res.headers.get('x-docker-token'), 'and no token for the push it asked for');

  failure = null;
  t.equal((await post()).status, 201);
});
