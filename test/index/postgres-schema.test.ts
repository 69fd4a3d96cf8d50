import { existsSync } from 'node:fs';
import pg from 'pg';
import t from 'tap';
import { openDatabase, type Db } from '../../src/index/db';
import { connectPool } from '../../src/index/postgres/connect';
import { migrate, PG_MIGRATIONS } from '../../src/index/postgres/migrations';
import { bindValues, toPgStatement } from '../../src/index/postgres/sql';
import { startPostgres } from '../helpers/postgres';
import { freePort } from '../helpers/process';

// The PostgreSQL schema against SQLite's: the same tables, columns and indexes, and triggers that leave the
// same usage, charges and journal records for the same changes. One cluster for the whole file.

let started: { pid: number; dir: string } | undefined;

t.test('PostgreSQL index schema', async (t) => {
  const cluster = await startPostgres(t);
  if (!cluster) return;
  started = { pid: cluster.pid, dir: cluster.dir };
  t.comment(`cluster: initdb ${cluster.timings.initdbMs} ms, start ${cluster.timings.startMs} ms, role+database ${cluster.timings.setupMs} ms`);

  const pools: pg.Pool[] = [];
  t.teardown(() => Promise.all(pools.map((p) => p.end())));
  const poolOn = async (url: string) => {
    const pool = await connectPool(url, { max: 4 });
    pools.push(pool);
    return pool;
  };

  await t.test('migrations from 4 replicas starting at once apply once', async (t) => {
    const url = await cluster.createDatabase('concurrent');
    const replicas = await Promise.all([1, 2, 3, 4].map(() => poolOn(url)));
    const started = performance.now();
    const results = await Promise.all(replicas.map((p) => migrate(p)));
    t.comment(`4 concurrent migrations to version ${PG_MIGRATIONS.length}: ${Math.round(performance.now() - started)} ms`);
    const n = PG_MIGRATIONS.length;
    t.same(results.map((r) => r.from).sort(), [0, n, n, n], `one replica migrated from 0, the others found version ${n}`);
    t.ok(results.every((r) => r.to === PG_MIGRATIONS.length));
    const { rows } = await replicas[0]!.query('SELECT version FROM schema_migrations ORDER BY version');
    t.same(rows, PG_MIGRATIONS.map((_, i) => ({ version: i + 1 })), 'each version recorded once');

    // A migration that would show a second run (an INSERT, not a CREATE that would fail on its own).
    const counting = ['CREATE TABLE runs (n integer)', 'INSERT INTO runs VALUES (1)'];
    const url2 = await cluster.createDatabase('counting');
    const others = await Promise.all([1, 2, 3, 4].map(() => poolOn(url2)));
    await Promise.all(others.map((p) => migrate(p, counting)));
    t.same((await others[0]!.query('SELECT count(*) AS n FROM runs')).rows, [{ n: 1 }], 'a pending migration ran exactly once');
  });

  await t.test('migration time on an empty database', async (t) => {
    const pool = await poolOn(await cluster.createDatabase('timed'));
    const started = performance.now();
    t.same(await migrate(pool), { from: 0, to: PG_MIGRATIONS.length });
    const ms = Math.round(performance.now() - started);
    const again = performance.now();
    t.same(await migrate(pool), { from: PG_MIGRATIONS.length, to: PG_MIGRATIONS.length }, 'a second start has nothing to do');
    t.comment(`migration to version ${PG_MIGRATIONS.length}: ${ms} ms; up-to-date check: ${Math.round(performance.now() - again)} ms`);
  });

  await t.test('a schema newer than this registry knows stops the start', async (t) => {
    const pool = await poolOn(await cluster.createDatabase('newer'));
    await migrate(pool);
    await pool.query('INSERT INTO schema_migrations (version) VALUES (99)');
    await t.rejects(migrate(pool), { message: `the PostgreSQL index has schema version 99, newer than this registry knows (${PG_MIGRATIONS.length})` });
    t.same((await pool.query('SELECT max(version) AS v FROM schema_migrations')).rows, [{ v: 99 }], 'nothing changed');
  });

  // Migration 1 is SQLite's schema; migration 2 then drops the reference journal (schema-v2.ts), tested below.
  const pool = await poolOn(cluster.url);
  await migrate(pool, PG_MIGRATIONS.slice(0, 1));
  const sqlite = openDatabase(':memory:');
  t.teardown(() => sqlite.close());

  await t.test('tables, columns and indexes are SQLite\'s', async (t) => {
    const mine = await pgSchema(pool);
    const theirs = sqliteSchema(sqlite);
    t.same(Object.keys(mine.tables).sort(), Object.keys(theirs.tables).sort(), 'the same tables');
    for (const [table, columns] of Object.entries(theirs.tables)) t.same(mine.tables[table], columns, `${table}: the same columns (name, type, not null, key)`);
    t.same(mine.indexes, theirs.indexes, 'the same secondary indexes (name, table, columns, partial or not)');
    t.same(mine.triggers, theirs.triggers, 'a trigger for each of SQLite\'s (but the search table\'s three)');
    const collations = await pool.query(
      `SELECT table_name, column_name, collation_name FROM information_schema.columns
        WHERE table_schema = current_schema() AND data_type = 'text' AND collation_name IS DISTINCT FROM 'C'`,
    );
    t.same(collations.rows, [], 'every text column compares bytewise, as in SQLite');
  });

  await t.test('triggers leave the same usage, charges and journal records as SQLite\'s', async (t) => {
    const client = await pool.connect();
    t.teardown(async () => {
      await client.query('ROLLBACK').catch(() => undefined); // a failed statement must not leave the pool a broken transaction
      client.release();
    });
    const onPg = async (sql: string, params: unknown[]) => {
      const statement = toPgStatement(sql); // the same text as SQLite's, parameters rewritten
      await client.query(statement.text, bindValues(statement, params));
    };
    const onSqlite = (sql: string, params: unknown[]) => void sqlite.prepare(sql).run(...params);
    // The records each statement leaves, in order; one statement's rows in any order (a multi-row DELETE
    // visits them in primary-key order in SQLite, in heap order here: each record states one row alone).
    const outboxSql = 'SELECT seq, record FROM refs_outbox WHERE seq > ? ORDER BY seq';
    const seen = { pg: 0, sqlite: 0 };
    const newRecords = async () => {
      const mine = (await client.query<{ seq: number; record: string }>(outboxSql.replace('?', '$1'), [seen.pg])).rows;
      const theirs = sqlite.prepare(outboxSql).all(seen.sqlite) as { seq: number; record: string }[];
      seen.pg = mine.at(-1)?.seq ?? seen.pg;
      seen.sqlite = theirs.at(-1)?.seq ?? seen.sqlite;
      // Compared as the JSON text they parse back to: the same keys in the same order, the same values.
      const canonical = (rows: { record: string }[]) => rows.map((r) => JSON.stringify(JSON.parse(r.record))).sort();
      return { mine: canonical(mine), theirs: canonical(theirs) };
    };
    let journaled = 0;
    const usageSql = 'SELECT repo, bytes, blobs FROM repo_usage ORDER BY repo';
    const chargesSql = 'SELECT repo, digest, size, refs FROM repo_charges ORDER BY repo, digest';
    for (const [i, step] of SCENARIO.entries()) {
      await client.query('BEGIN');
      for (const [sql, ...params] of step.statements) {
        onSqlite(sql, params);
        await onPg(sql, params);
        const { mine, theirs } = await newRecords();
        if (!t.same(mine, theirs, 'the same journal records', { statement: sql, params })) break;
        journaled += theirs.length;
      }
      await client.query('COMMIT');
      t.same((await client.query(usageSql)).rows, sqlite.prepare(usageSql).all(), `step ${i + 1} (${step.name}): repo_usage`);
      t.same((await client.query(chargesSql)).rows, sqlite.prepare(chargesSql).all(), `step ${i + 1} (${step.name}): repo_charges`);
    }
    t.ok(journaled > 40, `the scenario journals ${journaled} changes`);
  });

  await t.test('migration 2 drops the reference journal: usage is still kept, no record is written', async (t) => {
    t.same(await migrate(pool), { from: 1, to: PG_MIGRATIONS.length });
    const { rows: left } = await pool.query("SELECT tgname FROM pg_trigger WHERE tgname LIKE 'refs\\_%' AND NOT tgisinternal");
    t.same(left, [], 'no journal trigger left');
    await pool.query("INSERT INTO blobs (digest, size, location, created_at) VALUES ('sha256:j2', 7, 'x', 1)");
    await pool.query("INSERT INTO repositories (name, created_at) VALUES ('j2/r', 1)");
    await pool.query("INSERT INTO repo_blobs (repo, digest, linked_at) VALUES ('j2/r', 'sha256:j2', 1)");
    t.same((await pool.query("SELECT bytes FROM repo_usage WHERE repo = 'j2/r'")).rows, [{ bytes: 7 }], 'the usage triggers still run');
    t.same((await pool.query('SELECT count(*) AS n FROM refs_outbox')).rows, [{ n: 0 }], 'no journal record');
  });

  await t.test('bigint, count(*) and sum() read as numbers, as from SQLite; past 2^53 an error', async (t) => {
    const { rows } = await pool.query("SELECT count(*) AS n, sum(x) AS total, max(x) AS big FROM (VALUES (5000000000::bigint), (7)) v(x)");
    t.same(rows, [{ n: 2, total: 5000000007, big: 5000000000 }]);
    await t.rejects(pool.query('SELECT 9007199254740993::bigint AS n'), { message: /9007199254740993 is not an integer JavaScript can hold exactly/ });
    await t.rejects(pool.query('SELECT 1.5::numeric AS n'), { message: /1.5 is not an integer/ });
  });

  await t.test('name search: ILIKE on the trigram indexes finds what SQLite\'s repo_search finds', async (t) => {
    for (const [name, description] of [['Team/Alpha', 'The ALPHA service'], ['team/beta', 'beta_1 100%'], ['other/gamma', '']]) {
      const params = [name, description, 1];
      sqlite.prepare('INSERT INTO repositories (name, description, created_at) VALUES (?, ?, ?)').run(...params);
      await pool.query('INSERT INTO repositories (name, description, created_at) VALUES ($1, $2, $3)', params);
    }
    for (const q of ['%alpha%', '%TEAM/%', '%a_1%', '%100\\%%', '%eta\\_1%', '%zzz%']) {
      const theirs = sqlite
        .prepare("SELECT r.name FROM repositories r WHERE r.rowid IN (SELECT rowid FROM repo_search WHERE name LIKE ? ESCAPE '\\' OR description LIKE ? ESCAPE '\\') ORDER BY r.name")
        .pluck()
        .all(q, q);
      const mine = await pool.query("SELECT name FROM repositories WHERE name ILIKE $1 ESCAPE '\\' OR description ILIKE $1 ESCAPE '\\' ORDER BY name", [q]);
      t.same(mine.rows.map((r: { name: string }) => r.name), theirs, `search ${q}`);
    }
    const client = await pool.connect();
    try {
      await client.query('SET enable_seqscan = off'); // three rows: the planner would rightly scan them
      const plan = (await client.query("EXPLAIN SELECT name FROM repositories WHERE name ILIKE '%alpha%'")).rows.map((r: { 'QUERY PLAN': string }) => r['QUERY PLAN']).join('\n');
      t.match(plan, /repositories_name_trgm/, 'a substring search can use the trigram index');
    } finally {
      await client.query('RESET enable_seqscan');
      client.release();
    }
  });

  await t.test('an unreachable server stops the start naming host and port, never the password', async (t) => {
    const port = await freePort(); // nothing listens there
    const password = 'Secret-pw-1234';
    const err = await connectPool(`postgres://registry:${password}@127.0.0.1:${port}/registry`).then(
      () => undefined,
      (e: Error) => e,
    );
    t.ok(err instanceof Error);
    t.match(err!.message, `cannot connect to the PostgreSQL index at 127.0.0.1:${port}`);
    t.notMatch(err!.message, password);
    t.notMatch(err!.message, '\n', 'one line');
    t.comment(err!.message);

    const wrong = await connectPool(`postgres://${cluster.user}:${password}@127.0.0.1:${cluster.port}/${cluster.database}`).then(
      () => undefined,
      (e: Error) => e,
    );
    t.match(wrong?.message, `cannot connect to the PostgreSQL index at 127.0.0.1:${cluster.port}: password authentication failed`);
    t.notMatch(wrong!.message, password);

    await t.rejects(connectPool('mysql://x:y@h/d'), { message: 'index.postgres.url must start with postgres:// or postgresql://, not mysql://' });
    await t.rejects(connectPool(`postgres://u:${password}@[bad`), { message: /^index\.postgres\.url is not a valid URL/ });
  });

  await t.test('the registry user need not be a superuser: a trusted pg_trgm, or one a superuser made', async (t) => {
    // The harness's registry user owns its databases (and may create the trusted extension). A user who
    // owns neither gets a hint; once a superuser creates the extension and grants the schema, it migrates.
    await cluster.admin(async (c) => {
      await c.query("CREATE ROLE tenant LOGIN PASSWORD 'tenant-pw'");
      await c.query('CREATE DATABASE shared');
    }, 'postgres');
    const url = `postgres://tenant:tenant-pw@127.0.0.1:${cluster.port}/shared`;
    const tenant = await poolOn(url);
    const advice = /must own the database, or a superuser must first run CREATE EXTENSION pg_trgm in it and GRANT CREATE ON SCHEMA/;
    await t.rejects(migrate(tenant), { message: /^cannot create the PostgreSQL index's version table: permission denied for schema public/ });
    await t.rejects(migrate(tenant), { message: advice });
    await cluster.admin((c) => c.query('GRANT CREATE ON SCHEMA public TO tenant'), 'shared');
    await t.rejects(migrate(tenant), { message: /^PostgreSQL index migration 1 failed: permission denied to create extension "pg_trgm"/ }, 'the extension is the superuser\'s');
    await t.rejects(migrate(tenant), { message: advice });
    await cluster.admin((c) => c.query('CREATE EXTENSION pg_trgm'), 'shared');
    t.same(await migrate(tenant), { from: 0, to: PG_MIGRATIONS.length }, 'with the extension there, the rest is the user\'s');
  });
});

t.test('the cluster is stopped and its directory removed when its test ends', async (t) => {
  if (!started) return t.pass('no cluster was started', { skip: true });
  t.throws(() => process.kill(started!.pid, 0), { code: 'ESRCH' }, 'the postmaster is gone');
  t.notOk(existsSync(started.dir), 'its directory is removed');
});

type Step = { name: string; statements: [string, ...unknown[]][] };

const D = (c: string) => `sha256:${c.repeat(64)}`;
const SET_TAG = `INSERT INTO tags (repo, tag, digest, updated_at, bridged_from_v1) VALUES (@repo, @tag, @digest, @now, @bridged)
  ON CONFLICT (repo, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at, bridged_from_v1 = excluded.bridged_from_v1
  WHERE excluded.bridged_from_v1 IS NULL OR tags.bridged_from_v1 IS NOT NULL`;
const V1_JSON_UPSERT = `INSERT INTO v1_images (repo, id, parent, json_digest, created_at) VALUES (?, ?, ?, ?, ?)
  ON CONFLICT (repo, id) DO UPDATE SET parent = excluded.parent, json_digest = excluded.json_digest, layer_digest = NULL,
    layer_size = NULL, checksum = NULL, complete = 0, layer_format = NULL, diff_id = NULL
  WHERE v1_images.complete = 0`; // qualified: in PostgreSQL a bare \`complete\` is ambiguous (target or excluded), SQLite takes either

/** Changes the index classes make (and some they could), in SQL both databases accept. */
const SCENARIO: Step[] = [
  {
    name: 'blobs and repositories',
    statements: [
      ['INSERT INTO blobs (digest, size, location, created_at) VALUES (?, ?, ?, ?)', D('a'), 100, 'blobs/a', 1700000000000],
      ['INSERT INTO blobs (digest, size, location, created_at) VALUES (?, ?, ?, ?)', D('b'), 2000, 'blobs/b', 1700000000001],
      ['INSERT INTO blobs (digest, size, location, created_at) VALUES (?, ?, ?, ?)', D('c'), 30000, 'blobs/c', 1700000000002],
      ['INSERT INTO blobs (digest, size, location, created_at) VALUES (?, ?, ?, ?)', D('d'), 5_000_000_000, 'blobs/d', 1700000000003],
      ['INSERT INTO repositories (name, created_at) VALUES (?, ?)', 'ns/one', 1700000000010],
      ['INSERT INTO repositories (name, description, v1_private, created_at) VALUES (?, ?, ?, ?)', 'library/two', 'second', 1, 1700000000011],
      ['UPDATE repositories SET description = ? WHERE name = ?', 'first one', 'ns/one'],
      ['UPDATE repositories SET v1_indexed = 1 WHERE name = ?', 'library/two'],
      ['UPDATE repositories SET created_at = 5 WHERE name = ?', 'ns/one'], // not a journaled column
    ],
  },
  {
    name: 'links, one before its blob exists',
    statements: [
      ['INSERT INTO repo_blobs (repo, digest, linked_at) VALUES (?, ?, ?)', 'ns/one', D('a'), 1],
      ['INSERT INTO repo_blobs (repo, digest, linked_at) VALUES (?, ?, ?)', 'ns/one', D('b'), 2],
      ['INSERT INTO repo_blobs (repo, digest, linked_at) VALUES (?, ?, ?)', 'library/two', D('a'), 3],
      ['INSERT INTO repo_blobs (repo, digest, linked_at) VALUES (?, ?, ?)', 'ns/one', D('e'), 4],
      ['INSERT INTO repo_blobs (repo, digest, linked_at) VALUES (?, ?, ?) ON CONFLICT (repo, digest) DO UPDATE SET linked_at = excluded.linked_at', 'ns/one', D('a'), 9],
    ],
  },
  {
    name: 'manifests, their references and tags',
    statements: [
      ['INSERT INTO manifests (repo, digest, media_type, size, artifact_type, subject, annotations, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)', 'ns/one', D('c'), 'application/vnd.oci.image.manifest.v1+json', 30000, null, null, null, 10],
      ['INSERT INTO manifests (repo, digest, media_type, size, artifact_type, subject, annotations, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)', 'ns/one', D('f'), 'application/vnd.oci.image.manifest.v1+json', 12, 'application/sig', D('c'), '{"k":"v \\"q\\" é"}', 11],
      ['INSERT INTO repo_blobs (repo, digest, linked_at) VALUES (?, ?, ?)', 'ns/one', D('c'), 10],
      ['INSERT INTO manifest_refs (repo, digest, child) VALUES (?, ?, ?)', 'ns/one', D('c'), D('a')],
      ['INSERT INTO manifest_refs (repo, digest, child) VALUES (?, ?, ?)', 'ns/one', D('c'), D('b')],
      ['INSERT INTO manifest_refs (repo, digest, child) VALUES (?, ?, ?) ON CONFLICT DO NOTHING', 'ns/one', D('c'), D('b')],
      ['INSERT INTO tags (repo, tag, digest, updated_at) VALUES (?, ?, ?, ?)', 'ns/one', 'latest', D('c'), 20],
      ['INSERT INTO tags (repo, tag, digest, updated_at, bridged_from_v1) VALUES (?, ?, ?, ?, ?)', 'ns/one', 'v1', D('c'), 21, 'ab'.repeat(32)],
      ['UPDATE tags SET pulled_at = ? WHERE repo = ? AND tag = ?', 99, 'ns/one', 'latest'], // not journaled
      ['UPDATE tags SET digest = ?, updated_at = ? WHERE repo = ? AND tag = ?', D('f'), 22, 'ns/one', 'latest'],
      ['INSERT INTO tags (repo, tag, digest, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (repo, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at', 'ns/one', 'latest', D('c'), 23],
      // v2-index setTag (named parameters): a bridged tag does not replace a pushed one, and does replace a bridged one.
      [SET_TAG, { repo: 'ns/one', tag: 'latest', digest: D('f'), now: 24, bridged: '1'.repeat(64) }],
      [SET_TAG, { repo: 'ns/one', tag: 'v1', digest: D('f'), now: 25, bridged: '2'.repeat(64) }],
      ['UPDATE manifests SET pulled_at = ? WHERE repo = ?', 100, 'ns/one'],
    ],
  },
  {
    name: 'v1 images, tags and lists',
    statements: [
      ['INSERT INTO v1_images (repo, id, parent, json_digest, layer_digest, layer_size, checksum, complete, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)', 'library/two', '1'.repeat(64), null, D('b'), null, null, null, 0, 30],
      ['UPDATE v1_images SET layer_digest = ?, layer_size = ? WHERE repo = ? AND id = ?', D('c'), 30000, 'library/two', '1'.repeat(64)],
      ['UPDATE v1_images SET checksum = ?, complete = 1 WHERE repo = ? AND id = ?', 'sha256:sum', 'library/two', '1'.repeat(64)],
      ['UPDATE v1_images SET diff_id = ?, layer_format = ? WHERE repo = ? AND id = ?', D('9'), 'gzip', 'library/two', '1'.repeat(64)],
      // The same blob as JSON and layer is charged once.
      ['INSERT INTO v1_images (repo, id, parent, json_digest, layer_digest, layer_size, checksum, complete, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)', 'library/two', '2'.repeat(64), '1'.repeat(64), D('d'), D('d'), 5, null, 1, 31],
      ['INSERT INTO v1_images (repo, id, parent, json_digest, layer_digest, layer_size, checksum, complete, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)', 'ns/one', '3'.repeat(64), null, D('a'), D('b'), 2000, null, 1, 32],
      ['UPDATE v1_images SET layer_digest = ? WHERE repo = ? AND id = ?', D('b'), 'ns/one', '3'.repeat(64)], // same value: no recharge
      ['UPDATE v1_images SET layer_digest = NULL, layer_size = NULL WHERE repo = ? AND id = ?', 'ns/one', '3'.repeat(64)],
      // A re-sent image JSON (v1-index putV1Json): the upsert's UPDATE recharges like a plain UPDATE; a complete image is left alone.
      [V1_JSON_UPSERT, 'library/two', '4'.repeat(64), null, D('a'), 33],
      ['UPDATE v1_images SET layer_digest = ?, layer_size = ? WHERE repo = ? AND id = ?', D('b'), 2000, 'library/two', '4'.repeat(64)],
      [V1_JSON_UPSERT, 'library/two', '4'.repeat(64), null, D('c'), 34],
      [V1_JSON_UPSERT, 'library/two', '1'.repeat(64), null, D('e'), 35],
      ['INSERT INTO v1_tags (repo, tag, image_id, meta) VALUES (?, ?, ?, ?)', 'library/two', 'latest', '2'.repeat(64), '{"arch":"amd64"}'],
      ['UPDATE v1_tags SET image_id = ? WHERE repo = ? AND tag = ?', '1'.repeat(64), 'library/two', 'latest'],
      ['INSERT INTO v1_repo_images (repo, image_id, checksum, position) VALUES (?, ?, ?, ?)', 'library/two', '1'.repeat(64), null, 0],
      ['INSERT INTO v1_repo_images (repo, image_id, checksum, position) VALUES (?, ?, ?, ?)', 'library/two', '2'.repeat(64), 'sha256:x', 1],
      ['UPDATE v1_repo_images SET checksum = ?, position = ? WHERE repo = ? AND image_id = ?', 'sha256:y', 2, 'library/two', '1'.repeat(64)],
    ],
  },
  {
    name: 'deletions',
    statements: [
      ['DELETE FROM repo_blobs WHERE repo = ? AND digest = ?', 'ns/one', D('b')], // its last reference in ns/one (image 3333 dropped its layer)
      ['DELETE FROM repo_blobs WHERE repo = ? AND digest = ?', 'ns/one', D('a')], // still referenced by v1 image 3333's JSON
      ['DELETE FROM v1_images WHERE repo = ? AND id = ?', 'ns/one', '3'.repeat(64)],
      ['DELETE FROM v1_images WHERE repo = ? AND id = ?', 'library/two', '2'.repeat(64)],
      ['DELETE FROM v1_tags WHERE repo = ?', 'library/two'],
      ['DELETE FROM v1_repo_images WHERE repo = ?', 'library/two'],
      ['DELETE FROM manifest_refs WHERE repo = ? AND digest = ?', 'ns/one', D('c')],
      ['DELETE FROM tags WHERE repo = ? AND tag = ?', 'ns/one', 'v1'],
      ['DELETE FROM manifests WHERE repo = ? AND digest = ?', 'ns/one', D('f')],
      ['DELETE FROM repo_blobs WHERE repo = ?', 'ns/one'],
      ['DELETE FROM blobs WHERE digest = ?', D('d')],
      ['DELETE FROM repositories WHERE name = ?', 'ns/one'],
    ],
  },
  {
    name: 'the last references of a repository',
    statements: [
      ['DELETE FROM v1_images WHERE repo = ?', 'library/two'],
      ['DELETE FROM repo_blobs WHERE repo = ?', 'library/two'],
      ['INSERT INTO repo_blobs (repo, digest, linked_at) VALUES (?, ?, ?)', 'library/two', D('b'), 50],
    ],
  },
];

interface Column {
  name: string;
  type: 'integer' | 'text';
  notNull: boolean;
  key: number;
}
interface Schema {
  tables: Record<string, Column[]>;
  indexes: string[];
  triggers: string[];
}

/** SQLite's tables (without its own and the FTS5 search table and its shadow tables), from the catalogue. */
function sqliteSchema(db: Db): Schema {
  const virtual = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%'").pluck().all() as string[]);
  const isSearch = (name: string) => virtual.some((v) => name === v || name.startsWith(`${v}_`));
  const tables: Record<string, Column[]> = {};
  for (const name of db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'").pluck().all() as string[]) {
    if (isSearch(name)) continue;
    const info = db.pragma(`table_info(${name})`) as { name: string; type: string; notnull: number; pk: number }[];
    tables[name] = info
      .map((c) => ({ name: c.name, type: c.type.toLowerCase() as Column['type'], notNull: c.notnull === 1 || c.pk > 0, key: c.pk }))
      .sort((a, b) => (a.name < b.name ? -1 : 1));
  }
  const indexes = (db.prepare("SELECT name, tbl_name AS t, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL").all() as { name: string; t: string; sql: string }[])
    .filter((i) => !isSearch(i.t))
    .map((i) => `${i.t}.${i.name}(${(db.pragma(`index_info(${i.name})`) as { name: string }[]).map((c) => c.name).join(',')})${/ WHERE /i.test(i.sql) ? ' partial' : ''}`)
    .sort();
  // The triggers that keep the search table in step have no counterpart (PostgreSQL indexes the columns themselves).
  const triggers = (db.prepare("SELECT tbl_name || '.' || name AS n, sql FROM sqlite_master WHERE type = 'trigger'").all() as { n: string; sql: string }[])
    .filter((tr) => !virtual.some((v) => tr.sql.includes(v)))
    .map((tr) => tr.n)
    .sort();
  return { tables, indexes, triggers };
}

/** The same from PostgreSQL's catalogue (without the migrations' version table, primary keys and the trigram indexes). */
async function pgSchema(pool: pg.Pool): Promise<Schema> {
  const cols = await pool.query<{ table_name: string; column_name: string; data_type: string; is_nullable: string; key: number | null }>(`
    SELECT c.table_name, c.column_name, c.data_type, c.is_nullable, k.ordinal_position AS key
      FROM information_schema.columns c
      LEFT JOIN information_schema.table_constraints tc
        ON tc.table_schema = c.table_schema AND tc.table_name = c.table_name AND tc.constraint_type = 'PRIMARY KEY'
      LEFT JOIN information_schema.key_column_usage k
        ON k.constraint_name = tc.constraint_name AND k.table_schema = c.table_schema AND k.table_name = c.table_name AND k.column_name = c.column_name
     WHERE c.table_schema = current_schema() AND c.table_name <> 'schema_migrations'`);
  const tables: Record<string, Column[]> = {};
  for (const c of cols.rows) {
    (tables[c.table_name] ??= []).push({
      name: c.column_name,
      type: c.data_type === 'text' ? 'text' : (['bigint', 'integer'].includes(c.data_type) ? 'integer' : (c.data_type as Column['type'])),
      notNull: c.is_nullable === 'NO',
      key: c.key ?? 0,
    });
  }
  for (const columns of Object.values(tables)) columns.sort((a, b) => (a.name < b.name ? -1 : 1));
  const idx = await pool.query<{ t: string; name: string; cols: string; partial: boolean }>(`
    SELECT t.relname AS t, i.relname AS name, x.indpred IS NOT NULL AS partial,
           (SELECT string_agg(a.attname, ',' ORDER BY k.n) FROM unnest(x.indkey) WITH ORDINALITY k(attnum, n)
              JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum) AS cols
      FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
     WHERE t.relnamespace = current_schema()::regnamespace AND NOT x.indisprimary AND i.relname NOT LIKE '%\\_trgm' AND t.relname <> 'schema_migrations'`);
  const indexes = idx.rows.map((i) => `${i.t}.${i.name}(${i.cols})${i.partial ? ' partial' : ''}`).sort();
  const trg = await pool.query<{ n: string }>(`
    SELECT c.relname || '.' || tg.tgname AS n FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
     WHERE NOT tg.tgisinternal AND c.relnamespace = current_schema()::regnamespace`);
  return { tables, indexes, triggers: trg.rows.map((r) => r.n).sort() };
}

