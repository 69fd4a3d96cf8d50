import t, { type Test } from 'tap';
import { defaultConfig } from '../../src/config/load';
import { openIndex } from '../../src/index/open';
import { IndexUnavailableError } from '../../src/index/postgres/database';
import { WRITE_LOCK } from '../../src/index/postgres/locks';
import { sql } from '../../src/index/sql';
import { newPostgresDatabase, openTestIndex, sharedPostgres } from '../helpers/index-db';

// PostgreSQL ending the connection of a transaction in progress (a restart, a failover, an operator's
// pg_terminate_backend): the transaction fails as unavailable (503 to a client), the process lives on,
// and the next statement gets a fresh connection.

const ONE = sql<{ one: number }>('SELECT 1 AS one');

/** An index on a new database with a pool of two connections, closed at the test's end. */
async function twoConnectionIndex(t: Test, url: string) {
  const config = defaultConfig({ index: { driver: 'postgres', postgres: { url, maxConnections: 2 } } });
  const { database, leadership } = await openIndex(config.index, undefined, { lead: false });
  t.teardown(async () => {
    await leadership.close();
    await database.close();
  });
  return database;
}

/** Run `fn` while another session of database `name` holds the write lock. */
async function withWriteLockHeld(name: string, fn: () => Promise<void>): Promise<void> {
  await (await sharedPostgres()).admin(async (c) => {
    await c.query('SELECT pg_advisory_lock($1)', [WRITE_LOCK.toString()]);
    try {
      await fn();
    } finally {
      await c.query('SELECT pg_advisory_unlock($1)', [WRITE_LOCK.toString()]);
    }
  }, name);
}

t.test('a transaction whose connection the server ends fails as unavailable; the process and the pool carry on', async (t) => {
  const db = await openTestIndex(t, 'postgres');
  const cluster = await sharedPostgres();
  const failed = db.transaction(async (tx) => {
    await db.sqlOf(tx).get(ONE);
    await new Promise((r) => setTimeout(r, 500)); // idle in transaction: only the socket can tell
    return db.sqlOf(tx).get(ONE);
  });
  await new Promise((r) => setTimeout(r, 150));
  const ended = await cluster.admin((c) =>
    c.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'tsregistry' AND state = 'idle in transaction'"),
  );
  t.equal(ended.rowCount, 1, 'the transaction\'s session was ended by the server');
  const err = await failed.then(() => undefined, (e: unknown) => e);
  t.type(err, IndexUnavailableError, 'the transaction fails as unavailable (503), not as a crash');
  t.same(await db.get(ONE), { one: 1 }, 'the next statement runs on a fresh connection');
  t.same(await db.transaction((tx) => db.sqlOf(tx).get(ONE)), { one: 1 }, 'and so does the next transaction');
});

t.test('a BEGIN whose wait for the write lock is cancelled (statement_timeout) does not hand a broken connection to the next caller', async (t) => {
  const url = await newPostgresDatabase();
  const cluster = await sharedPostgres();
  const name = new URL(url).pathname.slice(1);
  await cluster.admin((c) => c.query(`ALTER DATABASE ${name} SET statement_timeout = '300ms'`), 'postgres');
  const db = await twoConnectionIndex(t, url);
  // Another session holds the write lock past the timeout.
  await withWriteLockHeld(name, async () => void (await t.rejects(db.transaction((tx) => db.sqlOf(tx).get(ONE)), /statement timeout/, 'the transaction fails')));
  for (let i = 0; i < 3; i++) t.same(await db.get(ONE), { one: 1 }, `read ${i + 1} runs (no connection left in an aborted transaction)`);
  t.same(await db.transaction((tx) => db.sqlOf(tx).get(ONE)), { one: 1 }, 'and a transaction');
});

t.test('every pooled connection taken (writers queued on the write lock): a read fails as unavailable (503), not as a 500', async (t) => {
  const url = await newPostgresDatabase();
  const db = await twoConnectionIndex(t, url);
  let writers: Promise<unknown>[] = [];
  await withWriteLockHeld(new URL(url).pathname.slice(1), async () => {
    writers = [1, 2].map(() => db.transaction((tx) => db.sqlOf(tx).get(ONE)));
    await new Promise((r) => setTimeout(r, 300)); // both wait for the lock, each on a connection of the two
    const err = await db.get(ONE).then(() => undefined, (e: unknown) => e);
    t.type(err, IndexUnavailableError, 'the read waited its bounded time and is told the index is unavailable');
  });
  t.same(await Promise.all(writers), [{ one: 1 }, { one: 1 }], 'the writers go on once the lock is free');
  t.same(await db.get(ONE), { one: 1 });
});
