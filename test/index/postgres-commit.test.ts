import type pg from 'pg';
import t, { type Test } from 'tap';
import { createPool } from '../../src/index/postgres/connect';
import { PostgresDatabase } from '../../src/index/postgres/database';
import { WRITE_LOCK } from '../../src/index/postgres/locks';
import { sql } from '../../src/index/sql';
import { newPostgresDatabase, sharedPostgres } from '../helpers/index-db';

// How a PostgreSQL write transaction commits: one round trip opens it (BEGIN, its commit not waiting for the
// WAL flush, the write lock); one more closes it: COMMIT releases the lock, then a flush in the same round
// trip makes it durable before the caller goes on, so concurrent writers share WAL flushes. A transaction
// that wrote nothing needs no flush; a lock-free statement commits on its own. The pool's connections
// pipeline: BEGIN, SAVEPOINT and a lone write's COMMIT go out without waiting for the answer before them.

const create = sql('CREATE TABLE IF NOT EXISTS kv (k text PRIMARY KEY, v integer NOT NULL)');
const put = sql('INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v');
const read = sql<{ v: number }>('SELECT v FROM kv WHERE k = ?');
const setting = sql<string>('SELECT current_setting(\'synchronous_commit\')', { pluck: true });

/** A database on one pooled connection whose simple-protocol statements (BEGIN, COMMIT, the flush...) are recorded. */
async function open(t: Test) {
  const url = await newPostgresDatabase();
  const pool = createPool(url, { max: 1 });
  const db = new PostgresDatabase(pool, url);
  t.teardown(() => db.close());
  const sent: string[] = [];
  // What is written to the socket (protocol messages, as text), what is read from it, and each answer, in order.
  const wire: string[] = [];
  pool.on('connect', (client: pg.PoolClient) => {
    const query = client.query.bind(client) as (...args: unknown[]) => Promise<unknown> | undefined;
    (client as unknown as { query: unknown }).query = (...args: unknown[]) => {
      const text = typeof args[0] === 'string' ? args[0] : (args[0] as { text: string }).text;
      if (typeof args[0] === 'string') sent.push(text);
      const answer = query(...args);
      answer?.then(
        () => wire.push(`answer ${text}`),
        () => wire.push(`error ${text}`),
      );
      return answer;
    };
    const stream = (client as unknown as { connection: { stream: { write: (...a: unknown[]) => boolean } } }).connection.stream;
    const write = stream.write.bind(stream);
    stream.write = (chunk: unknown, ...rest: unknown[]) => {
      if (Buffer.isBuffer(chunk)) wire.push(`write ${chunk.toString('latin1')}`);
      return write(chunk, ...rest);
    };
    (stream as unknown as NodeJS.EventEmitter).prependListener('data', () => wire.push('read'));
  });
  await db.run(create);
  sent.length = 0;
  wire.length = 0;
  return { db, sent, wire };
}

t.test('a write commits without waiting for the flush, then flushes after the lock is released', async (t) => {
  const { db, sent } = await open(t);
  const serverSetting = await db.get(setting); // off in the test harness's cluster, on by default
  sent.length = 0;
  const inside = await db.transaction(async (tx) => {
    await db.sqlOf(tx).run(put, 'a', 1);
    return db.sqlOf(tx).get(setting);
  });
  t.equal(inside, 'off', 'the commit itself does not wait for the flush');
  t.equal(sent.length, 2, 'BEGIN (with the lock); COMMIT and the flush');
  t.match(sent[0], /^BEGIN; SET LOCAL synchronous_commit = off; SELECT pg_advisory_xact_lock\(\d+\)$/, 'one round trip opens it');
  t.match(sent[1], /^COMMIT; SELECT pg_logical_emit_message\(true, /, 'one closes it: a synchronous commit that writes WAL of its own flushes it up to there');
  t.same(await db.get(read, 'a'), { v: 1 });
  t.equal(await db.get(setting), serverSetting, 'the pooled connection is back to the server\'s setting (SET LOCAL ended with the transaction)');

  sent.length = 0;
  await db.run(put, 'b', 2);
  t.match(sent[0], /^BEGIN; /, 'a write outside a transaction is made one');
  t.match(sent[1], /^COMMIT; SELECT pg_logical_emit_message/, 'and flushed alike');

  sent.length = 0;
  const putFresh = sql('INSERT INTO kv (k, v) VALUES (?, ?)', { lock: 'none' });
  await db.run(putFresh, 'c', 3);
  t.same(sent, [], 'a lock-free write commits on its own: no BEGIN, no lock, no flush of ours');
  t.same(await db.get(read, 'c'), { v: 3 });
  await db.transaction(async (tx) => void (await db.sqlOf(tx).run(putFresh, 'd', 4)));
  t.match(sent[1], /^COMMIT; SELECT pg_logical_emit_message/, 'inside a transaction it is one of its statements, flushed with it');
});

t.test('a transaction that wrote nothing, or rolled back, is not flushed', async (t) => {
  const { db, sent } = await open(t);
  await db.transaction(async (tx) => db.sqlOf(tx).get(read, 'a'));
  t.same(sent.slice(1), ['COMMIT'], 'read only: no flush');
  sent.length = 0;
  await t.rejects(
    db.transaction(async (tx) => {
      await db.sqlOf(tx).run(put, 'a', 1);
      throw new Error('changed my mind');
    }),
    /changed my mind/,
  );
  t.same(sent.slice(1), ['ROLLBACK'], 'rolled back: no flush');
  t.equal(await db.get(read, 'a'), undefined);
});

t.test('concurrent writers all commit: their flushes, outside the lock, do not hold each other up', async (t) => {
  const url = await newPostgresDatabase();
  const db = new PostgresDatabase(createPool(url, { max: 8 }), url);
  t.teardown(() => db.close());
  await db.run(create);
  await Promise.all(Array.from({ length: 40 }, (_, i) => db.transaction(async (tx) => void (await db.sqlOf(tx).run(put, `k${i}`, i)))));
  const rows = await db.all(sql<{ n: number }>('SELECT count(*) AS n FROM kv'));
  t.same(rows, [{ n: 40 }]);
});

t.test('once a write transaction returns, its commit is flushed (with the server\'s synchronous_commit on)', async (t) => {
  const url = await newPostgresDatabase();
  const name = new URL(url).pathname.slice(1);
  const cluster = await sharedPostgres();
  await cluster.admin((c) => c.query(`ALTER DATABASE ${name} SET synchronous_commit = on`), 'postgres'); // the harness turns it off
  const db = new PostgresDatabase(createPool(url, { max: 2 }), url);
  t.teardown(() => db.close());
  await db.run(create);
  const insertLsn = sql<string>('SELECT CAST(pg_current_wal_insert_lsn() AS text)', { pluck: true });
  for (let i = 0; i < 5; i++) {
    const written = await db.transaction(async (tx) => {
      await db.sqlOf(tx).run(put, `k${i}`, i);
      return db.sqlOf(tx).get(insertLsn); // past this write; its commit record follows
    });
    const flushed = await cluster.admin((c) => c.query('SELECT pg_current_wal_flush_lsn() > CAST($1 AS pg_lsn) AS ok', [written]));
    t.equal(flushed.rows[0].ok, true, `write ${i}: the WAL is flushed past it when the transaction returns`);
  }
});

t.test('an upload digest write shares the write lock: it waits for write transactions (garbage collection decides in them), not for another digest write', async (t) => {
  const url = await newPostgresDatabase();
  const db = new PostgresDatabase(createPool(url, { max: 4 }), url);
  t.teardown(() => db.close());
  await db.run(create);
  const digestWrite = sql('INSERT INTO kv (k, v) VALUES (?, ?)', { lock: 'shared' });
  const settled = (p: Promise<unknown>) => Promise.race([p.then(() => 'done'), new Promise((r) => setTimeout(() => r('waiting'), 300))]);

  // A shared holder kept open: a digest write, as a statement of its own would be, on a connection of the test's.
  const cluster = await sharedPostgres();
  let release!: () => void;
  const held = cluster.admin(async (c) => {
    await c.query('BEGIN');
    await c.query('SELECT pg_advisory_xact_lock_shared($1)', [WRITE_LOCK.toString()]);
    await new Promise<void>((r) => (release = r));
    await c.query('COMMIT');
  }, new URL(url).pathname.slice(1));
  while (!release) await new Promise((r) => setTimeout(r, 10));
  t.equal(await settled(db.run(digestWrite, 'a', 1)), 'done', 'not held up by another digest write');
  const writer = db.run(put, 'w', 0);
  t.equal(await settled(writer), 'waiting', 'a write transaction waits for the digest writes in progress');
  release();
  await held;
  await writer;

  // A write transaction kept open: the digest write waits for it.
  let end!: () => void;
  let inside!: () => void;
  const started = new Promise<void>((r) => (inside = r));
  const transaction = db.transaction(async (tx) => {
    await db.sqlOf(tx).run(put, 'gc', 0);
    inside();
    await new Promise<void>((r) => (end = r));
  });
  await started;
  const waiting = db.run(digestWrite, 'b', 2);
  t.equal(await settled(waiting), 'waiting', 'held up while a write transaction (a garbage collection deciding) runs');
  end();
  await transaction;
  await waiting;
  t.same(await db.get(read, 'b'), { v: 2 }, 'and written once it has ended');
});

t.test('a transaction whose failed statement was caught is reported as rolled back, not as committed', async (t) => {
  const { db } = await open(t);
  const bad = sql('INSERT INTO kv (k, v) VALUES (?, NULL)');
  await t.rejects(
    db.transaction(async (tx) => {
      await db.sqlOf(tx).run(put, 'kept?', 1);
      await db.sqlOf(tx).run(bad, 'x').catch(() => undefined); // PostgreSQL aborts the transaction here
    }),
    /rolled back/,
  );
  t.equal(await db.get(read, 'kept?'), undefined, 'nothing of it was committed');
  await db.run(put, 'after', 2);
  t.same(await db.get(read, 'after'), { v: 2 }, 'the connection serves the next transaction');
});

t.test('pipelined: what needs no answer first does not wait for one', async (t) => {
  const { db, wire } = await open(t);
  /** Whether something else was written after `text`, before anything was read back. */
  const followedAtOnce = (text: RegExp) => {
    const written = wire.findIndex((w) => w.startsWith('write ') && text.test(w));
    const read = wire.indexOf('read', written);
    return written >= 0 && read > written && wire.slice(written + 1, read).some((w) => w.startsWith('write ') && !text.test(w));
  };

  await db.run(put, 'a', 1);
  t.ok(wire.slice(0, wire.indexOf('read')).some((w) => w.includes('COMMIT')), 'a lone write: BEGIN, the statement and COMMIT are all written before anything is read back');
  t.same(await db.get(read, 'a'), { v: 1 });

  wire.length = 0;
  await db.transaction(async (tx) => {
    await db.sqlOf(tx).run(put, 'b', 2);
    await db.transaction(async (inner) => void (await db.sqlOf(inner).run(put, 'c', 3)), tx);
  });
  t.ok(followedAtOnce(/BEGIN/), 'a transaction\'s first statement is written behind BEGIN, before its answer');
  t.ok(followedAtOnce(/SAVEPOINT/), 'a savepoint\'s first statement is written behind it, before its answer');
  t.same(await db.get(read, 'c'), { v: 3 });
});

t.test('pipelined: a lone write that fails reports its own error, and its connection serves on', async (t) => {
  const { db } = await open(t);
  const insert = sql('INSERT INTO kv (k, v) VALUES (?, ?)');
  await db.run(insert, 'dup', 1);
  await t.rejects(db.run(insert, 'dup', 2), { code: '23505' }, 'the unique violation, not "rolled back"');
  await t.rejects(db.run(sql('INSERT INTO kv (k, v) VALUES (?, NULL)'), 'x'), { code: '23502' });
  t.same(await db.get(read, 'dup'), { v: 1 });
  await db.run(put, 'after', 2);
  t.same(await db.get(read, 'after'), { v: 2 }, 'the one pooled connection is still good');

  // A savepoint whose statement fails rolls back to it, and the transaction goes on.
  await db.transaction(async (tx) => {
    await db.sqlOf(tx).run(put, 'outer', 1);
    await t.rejects(db.transaction(async (inner) => void (await db.sqlOf(inner).run(insert, 'dup', 3)), tx), { code: '23505' });
    await db.sqlOf(tx).run(put, 'outer2', 2);
  });
  t.same(await db.get(read, 'outer2'), { v: 2 }, 'the statements around the failed savepoint committed');
});
