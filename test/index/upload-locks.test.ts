import t, { type Test } from 'tap';
import { LEADER_LOCK, MIGRATION_LOCK, uploadLockKey, WRITE_LOCK } from '../../src/index/postgres/locks';
import { PostgresUploadLocks } from '../../src/index/postgres/upload-locks';
import { SOLE_PROCESS_UPLOADS } from '../../src/index/upload-locks';
import { newPostgresDatabase, sharedPostgres } from '../helpers/index-db';

// Upload holds between processes (src/index/upload-locks.ts): on PostgreSQL, session advisory locks of a
// connection each replica keeps for them.

async function twoReplicas(t: Test) {
  const url = await newPostgresDatabase();
  const a = new PostgresUploadLocks(url);
  const b = new PostgresUploadLocks(url);
  t.teardown(() => Promise.all([a.close(), b.close()]));
  return { a, b, db: new URL(url).pathname.slice(1) };
}

t.test('an upload taken by one replica is refused to another until released; other uploads are not', async (t) => {
  const { a, b } = await twoReplicas(t);
  const held = await a.tryTake('u1');
  t.ok(held, 'taken');
  t.equal(await b.tryTake('u1'), null, 'refused to the other replica');
  const other = await b.tryTake('u2');
  t.ok(other, 'another upload is free');
  t.equal(await held!.confirm(), true, 'confirmed while held');
  await held!.release();
  const after = await b.tryTake('u1');
  t.ok(after, 'free once released');
  await Promise.all([after!.release(), other!.release()]);
});

t.test('a session that ends breaks its holds at once and frees them; the next take opens a new session', async (t) => {
  const { a, b, db } = await twoReplicas(t);
  const held = (await a.tryTake('u1'))!;
  const ended = await (await sharedPostgres()).admin((c) =>
    c.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'tsregistry-uploads' AND datname = $1", [db]),
  );
  t.equal(ended.rowCount, 1);
  for (let i = 0; i < 100 && !held.lost.aborted; i++) await new Promise((r) => setTimeout(r, 10));
  t.ok(held.lost.aborted, 'the hold knows it is lost');
  t.equal(await held.confirm(), false, 'and does not confirm');
  const taken = await b.tryTake('u1');
  t.ok(taken, 'the other replica takes the upload');
  await taken!.release();
  const again = await a.tryTake('u3');
  t.ok(again, 'the first replica takes uploads again, on a new session');
  t.equal(await again!.confirm(), true);
  await held.release(); // a no-op on a lost hold
});

t.test('a lock lost while its session lives on (released behind the hold\'s back) is not confirmed', async (t) => {
  const { a, b } = await twoReplicas(t);
  const held = (await a.tryTake('u1'))!;
  const session = (a as unknown as { current: { client: { query(q: string): Promise<unknown> } } }).current;
  await session.client.query('SELECT pg_advisory_unlock_all()');
  t.equal(await held.confirm(), false, 'the server says the lock is not held: not confirmed');
  t.notOk(held.lost.aborted, 'though the session itself is fine');
  const taken = await b.tryTake('u1');
  t.ok(taken, 'and the other replica may take it');
  await taken!.release();
});

t.test('closing releases every hold', async (t) => {
  const { a, b } = await twoReplicas(t);
  await a.tryTake('u1');
  await a.close();
  const taken = await b.tryTake('u1');
  t.ok(taken, 'free once the holder closed');
  await t.rejects(a.tryTake('u2'), { name: 'IndexUnavailableError' }, 'a closed lock set takes nothing');
});

t.test('keys: stable per upload, apart from the fixed keys', async (t) => {
  t.equal(uploadLockKey('abc'), uploadLockKey('abc'));
  t.not(uploadLockKey('abc'), uploadLockKey('abd'));
  for (const fixed of [MIGRATION_LOCK, WRITE_LOCK, LEADER_LOCK]) t.equal(fixed & (1n << 62n), 0n, 'a fixed key never has bit 62');
  t.equal(uploadLockKey('abc') >> 62n, 1n, 'an upload key always has it, and fits a signed bigint');
});

t.test('SQLite: one process, every take granted (the BlobStore guards its own requests)', async (t) => {
  const h = await SOLE_PROCESS_UPLOADS.tryTake('u1');
  t.ok(h && (await h.confirm()));
  t.ok(await SOLE_PROCESS_UPLOADS.tryTake('u1'));
});
