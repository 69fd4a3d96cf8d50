import tap, { type Test } from 'tap';
import { connectionOf, SqliteConnection } from '../../src/index/connection';
import type { IndexDatabase } from '../../src/index/database';
import { openDatabase, type Db } from '../../src/index/db';
import { openIndex } from '../../src/index/open';
import { sql, type Query } from '../../src/index/sql';
import { defaultConfig } from '../../src/config/load';
import { startPostgres, type PgCluster } from './postgres';

// The index a test runs on: SQLite in memory, or with TEST_INDEX=postgres a new database of one throw-away
// PostgreSQL cluster per test file (started on first use, stopped when the file's tests end). The same
// tests thus prove both implementations (npm run test:postgres).

export const testIndexDriver: 'sqlite' | 'postgres' = process.env.TEST_INDEX === 'postgres' ? 'postgres' : 'sqlite';

let cluster: Promise<PgCluster> | undefined;
let databases = 0;

/** The cluster of this test file (TEST_INDEX=postgres, or tests that need PostgreSQL whatever it says). */
export function sharedPostgres(): Promise<PgCluster> {
  cluster ??= startPostgres(tap).then((c) => {
    if (!c) throw new Error('PostgreSQL is not installed (apt-get install postgresql)');
    return c;
  });
  return cluster;
}

/** The URL of a new, empty database on this file's cluster. */
export async function newPostgresDatabase(): Promise<string> {
  return (await sharedPostgres()).createDatabase(`t${process.pid}_${++databases}`);
}

/** A fresh, migrated index for one test, closed at its teardown. */
export async function openTestIndex(t: { teardown(fn: () => void | Promise<void>): void }, driver = testIndexDriver): Promise<IndexDatabase> {
  let database: IndexDatabase;
  if (driver === 'sqlite') {
    database = connectionOf(openDatabase(':memory:'));
  } else {
    const config = defaultConfig({ index: { driver: 'postgres', postgres: { url: await newPostgresDatabase(), maxConnections: 4 } } });
    const opened = await openIndex(config.index);
    database = opened.database;
    t.teardown(() => opened.leadership.close());
  }
  t.teardown(() => database.close());
  return database;
}

export const INDEX_DRIVERS = ['sqlite', 'postgres'] as const;

/** Run `fn` once per index implementation, each on a fresh index: the shared index test-suite. */
export function forEachIndex(
  t: Test,
  name: string,
  fn: (t: Test, database: IndexDatabase) => Promise<void>,
): void {
  for (const driver of INDEX_DRIVERS) {
    t.test(`${name} (${driver})`, async (t) => fn(t, await openTestIndex(t, driver)));
  }
}

/** The better-sqlite3 handle behind an index object on SQLite (tests that inspect or break rows directly). */
export function sqliteHandleOf(index: object): Db {
  const database = databaseBehind(index);
  if (!(database instanceof SqliteConnection)) throw new Error('this test reaches into SQLite: run it on the SQLite index');
  return database.db;
}

/** The index database behind a registry's index object (either backend). */
export function databaseBehind(index: object): IndexDatabase {
  return (index as unknown as { database: IndexDatabase }).database;
}

const adHoc = new Map<string, Query<unknown>>();
/** One statement by its text, made once (tests that read or age rows directly, on either backend). */
function adHocQuery<Row>(text: string, pluck: boolean): Query<Row> {
  const key = `${pluck}:${text}`;
  let q = adHoc.get(key);
  if (!q) adHoc.set(key, (q = sql(text, { pluck })));
  return q as Query<Row>;
}

/** Statements on a registry's index, whichever backend it runs on: `rows.value(sql, ...)` is pluck().get(). */
export function indexRows(index: object) {
  const db = databaseBehind(index);
  return {
    value: async <T = unknown>(text: string, ...params: unknown[]) => db.get<T>(adHocQuery<T>(text, true), ...params),
    all: async <T = unknown>(text: string, ...params: unknown[]) => db.all<T>(adHocQuery<T>(text, false), ...params),
    run: async (text: string, ...params: unknown[]) => db.run(adHocQuery(text, false), ...params),
  };
}
