import path from 'node:path';
import t from 'tap';
import { connectionOf } from '../../src/index/connection';
import { openDatabase } from '../../src/index/db';
import { MetadataIndex } from '../../src/index/metadata-index';
import { ANNOUNCED_TABLES } from '../../src/index/postgres/schema-v3';
import { ReadCache } from '../../src/index/read-cache';
import { CACHED_QUERIES, sql } from '../../src/index/sql';
import { V2Index } from '../../src/index/v2-index';
import type { Digest } from '../../src/storage/digest';
import { tempDir } from '../helpers/server';

// The memory index reads may be answered from, and how SQLite keeps it current (PostgreSQL's change feed:
// postgres-read-cache).

function counting(rows: unknown[]) {
  const read = async () => {
    read.calls++;
    return rows.map((r) => ({ ...(r as object) }));
  };
  read.calls = 0;
  return read;
}

t.test('a kept read is answered from memory until its repository changes', async (t) => {
  const cache = new ReadCache(() => true);
  const read = counting([{ digest: 'a' }]);
  t.same(await cache.rows('r/one', 'k', read), [{ digest: 'a' }]);
  t.same(await cache.rows('r/one', 'k', read), [{ digest: 'a' }]);
  t.equal(read.calls, 1, 'read once');
  t.equal(cache.counts.hit, 1);
  t.throws(() => ((cache as unknown as { repos: Map<string, Map<string, { rows: { digest: string }[] }>> }).repos.get('r/one')!.get('k')!.rows[0]!.digest = 'b'), 'kept rows cannot be changed by a reader');

  cache.changed('r/other');
  await cache.rows('r/one', 'k', read);
  t.equal(read.calls, 1, 'another repository changing keeps it');
  cache.changed('r/one');
  await cache.rows('r/one', 'k', read);
  t.equal(read.calls, 2, 'its own changing drops it');
  cache.changed(null);
  await cache.rows('r/one', 'k', read);
  t.equal(read.calls, 3, 'a change of any repository drops it');
});

t.test('a read under way while anything changes is answered but not kept', async (t) => {
  const cache = new ReadCache(() => true);
  for (const change of ['r/one', 'r/elsewhere', null]) {
    let release!: () => void;
    const read = async () => {
      await new Promise<void>((r) => (release = r));
      return [{ digest: 'old' }];
    };
    const pending = cache.rows('r/one', 'k', read);
    await new Promise((r) => setImmediate(r));
    cache.changed(change);
    release();
    t.same(await pending, [{ digest: 'old' }], 'the reader gets what it read');
    const again = counting([{ digest: 'new' }]);
    t.same(await cache.rows('r/one', 'k', again), [{ digest: 'new' }], `not kept after a change of ${change ?? 'every repository'}`);
    t.equal(again.calls, 1);
    cache.changed(null);
  }
});

t.test('while the change feed cannot vouch for memory, every read goes to the database', async (t) => {
  let fresh = true;
  const cache = new ReadCache(() => fresh);
  const read = counting([{ digest: 'a' }]);
  await cache.rows('r', 'k', read);
  fresh = false;
  await cache.rows('r', 'k', read);
  await cache.rows('r', 'k', read);
  t.equal(read.calls, 3, 'kept rows are not used');
  fresh = true;
  await cache.rows('r', 'k', read);
  t.equal(read.calls, 3, 'and are used again once it can (it empties memory itself when it reconnects)');
  t.same(cache.counts, { hit: 1, miss: 1, bypass: 2 }, 'counted for the metrics');

  // A read that began while fresh and ended while not is not kept either.
  cache.changed(null);
  const slow = async () => {
    fresh = false;
    return [{ digest: 'b' }];
  };
  await cache.rows('r', 'k', slow);
  fresh = true;
  const after = counting([{ digest: 'b' }]);
  await cache.rows('r', 'k', after);
  t.equal(after.calls, 1);
});

t.test('a change noticed only by the freshness check after a read (SQLite\'s data_version) keeps that read out', async (t) => {
  let version = 1;
  let seen = 1;
  const cache: ReadCache = new ReadCache(() => {
    if (version !== seen) {
      seen = version;
      cache.changed(null);
    }
    return true;
  });
  const read = async () => {
    const rows = [{ digest: 'old' }];
    version++; // another process commits after the SELECT, before the reader goes on
    return rows;
  };
  t.same(await cache.rows('r', 'k', read), [{ digest: 'old' }]);
  const again = counting([{ digest: 'new' }]);
  t.same(await cache.rows('r', 'k', again), [{ digest: 'new' }], 'the old rows were not kept');
  t.equal(again.calls, 1);
});

t.test('memory is bounded: past the budget it starts over', async (t) => {
  const cache = new ReadCache(() => true, 4096);
  const big = counting([{ blob: 'x'.repeat(1000) }]);
  for (let i = 0; i < 10; i++) await cache.rows('r', `k${i}`, big);
  const bytes = (cache as unknown as { bytes: number }).bytes;
  t.ok(bytes <= 4096 && bytes > 0, `${bytes} bytes kept, within 4096`);
  const huge = counting([{ blob: 'x'.repeat(10_000) }]);
  await cache.rows('r', 'huge', huge);
  await cache.rows('r', 'huge', huge);
  t.equal(huge.calls, 2, 'an entry larger than the budget is never kept');
});

t.test('SQLite: tag reads come from memory; this connection\'s writes and other connections\' commits are seen at once', async (t) => {
  const file = path.join(tempDir(t), 'index.db');
  const server = connectionOf(openDatabase(file));
  t.teardown(() => server.close());
  const core = new MetadataIndex(server);
  const v2 = new V2Index(server, core);
  const digest = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}` as Digest;
  const manifest = (n: number) => ({ repo: 'r/app', digest: digest(n), mediaType: 'application/vnd.oci.image.manifest.v1+json', size: n, artifactType: null, subject: null, annotations: null });
  for (const n of [1, 2]) await v2.putManifest(manifest(n), []);
  await v2.putManifest(manifest(1), [], 'live');

  const tagged = async () => (await v2.taggedManifest('r/app', 'live'))?.digest;
  t.equal(await tagged(), digest(1));
  const hits = server.cache.counts.hit;
  t.equal(await tagged(), digest(1));
  t.same(await v2.listTags('r/app', '', 10), ['live']);
  t.same(await v2.listTags('r/app', '', 10), ['live']);
  t.equal(server.cache.counts.hit, hits + 2, 'read again from memory');

  await v2.putManifest(manifest(2), [], 'live');
  t.equal(await tagged(), digest(2), 'a write of this connection is seen at once');
  await core.transaction(async (tx) => void (await tx(v2).putManifest(manifest(1), [], 'next')));
  t.same(await v2.listTags('r/app', '', 10), ['live', 'next'], 'so is a transaction of it');
  t.equal(await v2.deleteTag('r/app', 'next'), true);
  t.same(await v2.listTags('r/app', '', 10), ['live'], 'and a lone statement');
  await v2.putManifest(manifest(1), [], 'next');
  t.equal(await tagged(), digest(2));
  t.same(await v2.listTags('r/app', '', 10), ['live', 'next']);

  // An operator command: another connection to the same file.
  const other = openDatabase(file);
  other.prepare("UPDATE tags SET digest = ? WHERE repo = 'r/app' AND tag = 'live'").run(digest(1));
  other.prepare("DELETE FROM tags WHERE tag = 'next'").run();
  other.close();
  t.equal(await tagged(), digest(1), 'another connection\'s commit is seen at the next read');
  t.same(await v2.listTags('r/app', '', 10), ['live']);
});

t.test('every cached statement names its repository first and reads only tables whose changes PostgreSQL announces', async (t) => {
  t.ok(CACHED_QUERIES.length >= 4, `${CACHED_QUERIES.length} cached statements (the manifest GET's reads, the tag list)`);
  for (const q of CACHED_QUERIES) {
    const tables = [...q.postgres.matchAll(/\b(?:FROM|JOIN)\s+([a-z_0-9]+)/gi)].map((m) => m[1]!.toLowerCase());
    t.ok(tables.length > 0, `${q.id} reads tables`);
    for (const table of tables) t.ok((ANNOUNCED_TABLES as readonly string[]).includes(table), `${q.id} reads ${table}, whose changes are announced`);
  }
  t.throws(() => sql('SELECT 1 FROM manifests WHERE digest = ? AND repo = ?', { cached: true }), /first parameter \(or @repo\) must be its repository/);
  t.throws(() => sql('SELECT 1 FROM tags WHERE tag = @tag', { cached: true }), /must be its repository/);
  t.throws(() => sql('DELETE FROM tags WHERE repo = ?', { cached: true }), /only a read can be cached/);
});
