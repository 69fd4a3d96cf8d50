import t from 'tap';
import { IndexUnavailableError } from '../../src/index/postgres/database';
import { sql } from '../../src/index/sql';
import { openTestIndex, sharedPostgres } from '../helpers/index-db';

// PostgreSQL ending the connection of a transaction in progress (a restart, a failover, an operator's
// pg_terminate_backend): the transaction fails as unavailable (503 to a client), the process lives on,
// and the next statement gets a fresh connection.

const ONE = sql<{ one: number }>('SELECT 1 AS one');

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
