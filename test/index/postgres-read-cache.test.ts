import t, { type Test } from 'tap';
import { defaultConfig } from '../../src/config/load';
import { MetadataIndex } from '../../src/index/metadata-index';
import { openIndex } from '../../src/index/open';
import { ChangeFeed } from '../../src/index/postgres/change-feed';
import { createPool } from '../../src/index/postgres/connect';
import { PostgresDatabase } from '../../src/index/postgres/database';
import { ReadCache } from '../../src/index/read-cache';
import { V2Index } from '../../src/index/v2-index';
import { newPostgresDatabase, sharedPostgres } from '../helpers/index-db';
import { digestOf, manifestRecord } from '../helpers/index-rows';
import { silentRelay } from '../helpers/silent-relay';

// Manifest reads answered from a replica's memory (read-cache.ts): a change made through another
// replica, by an operator command or by hand is seen within index.postgres.cacheStaleness, one made on the
// replica itself at once, and a read under way during a change is never kept.

const STALE_MS = 1000;
const quiet = { info: () => undefined, warn: () => undefined };
const manifest = manifestRecord;

type Replica = { db: PostgresDatabase; v2: V2Index; cache: ReadCache };

function replicaOn(db: PostgresDatabase): Replica {
  return { db, v2: new V2Index(db, new MetadataIndex(db)), cache: db.cache! };
}

/** A replica as the server opens it (its own pool, leadership and change feed), closed at teardown. */
async function openReplica(t: Test, url: string): Promise<Replica> {
  const config = defaultConfig({ index: { driver: 'postgres', postgres: { url, maxConnections: 4, cacheStaleness: STALE_MS } } });
  const opened = await openIndex(config.index);
  t.teardown(async () => {
    await opened.leadership.close();
    await opened.database.close();
  });
  return replicaOn(opened.database as PostgresDatabase);
}

/** Milliseconds until `read` returns `want` (fails past `ms`). */
async function until(read: () => Promise<unknown>, want: unknown, ms: number): Promise<number> {
  const start = performance.now();
  while ((await read()) !== want) {
    if (performance.now() - start > ms) throw new Error(`still not ${String(want)} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 2));
  }
  return performance.now() - start;
}

/** Milliseconds until a read of `read` is answered from `cache` (A's own writes' notifications may still be arriving). */
async function untilKept(cache: ReadCache, read: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  for (;;) {
    const hits = cache.counts.hit;
    await read();
    if (cache.counts.hit > hits) return performance.now() - start;
    if (performance.now() - start > STALE_MS) throw new Error(`nothing kept within ${STALE_MS} ms`);
  }
}

async function twoReplicas(t: Test) {
  const url = await newPostgresDatabase();
  const a = await openReplica(t, url);
  const b = await openReplica(t, url);
  for (const n of [1, 2]) await a.v2.putManifest(manifest('r/app', n), []);
  await a.v2.putManifest(manifest('r/app', 1), [], 'live');
  const tagged = (r: Replica) => async () => (await r.v2.taggedManifest('r/app', 'live'))?.digest;
  return { url, a, b, tagged };
}

t.test('a read is answered from memory; a tag moved through another replica is seen within the bound', async (t) => {
  const { a, b, tagged } = await twoReplicas(t);
  await untilKept(a.cache, tagged(a));
  const hits = a.cache.counts.hit;
  t.equal(await tagged(a)(), digestOf(1));
  t.equal(a.cache.counts.hit, hits + 1, 'read from memory');

  const waits: number[] = [];
  let atOnce = 0;
  for (let i = 0; i < 40; i++) {
    const n = i % 2 ? 1 : 2;
    await b.v2.putManifest(manifest('r/app', n), [], 'live');
    if ((await tagged(a)()) === digestOf(n)) atOnce++;
    waits.push(await until(tagged(a), digestOf(n), STALE_MS));
  }
  t.pass(`40 moves on B: A's first read after each was already the new one ${atOnce} times; the longest wait was ${Math.max(...waits).toFixed(1)} ms (bound ${STALE_MS})`);
  t.ok(a.cache.counts.hit > hits + 1, 'reads between the moves still came from memory');
});

t.test('a change is seen at once on the replica that made it', async (t) => {
  const { a, tagged } = await twoReplicas(t);
  let stale = 0;
  for (let i = 0; i < 100; i++) {
    const n = i % 2 ? 1 : 2;
    await tagged(a)(); // kept
    await a.v2.putManifest(manifest('r/app', n), [], 'live');
    if ((await tagged(a)()) !== digestOf(n)) stale++;
    if (i % 10 === 0) {
      await a.v2.deleteManifest('r/app', digestOf(3));
      await a.v2.putManifest(manifest('r/app', 3), []);
      if ((await a.v2.getManifest('r/app', digestOf(3)))?.digest !== digestOf(3)) stale++;
      await a.v2.deleteManifest('r/app', digestOf(3));
      if ((await a.v2.getManifest('r/app', digestOf(3))) !== undefined) stale++;
    }
  }
  t.equal(stale, 0, '100 moves and 10 put-and-delete rounds, each read back at once: never the old answer');
});

t.test('changes made outside any replica (SQL by hand, a truncate) are seen too', async (t) => {
  const { url, a, tagged } = await twoReplicas(t);
  const cluster = await sharedPostgres();
  const dbName = new URL(url).pathname.slice(1);
  await tagged(a)();
  await cluster.admin((c) => c.query("UPDATE tags SET digest = $1 WHERE repo = 'r/app' AND tag = 'live'", [digestOf(2)]), dbName);
  t.ok((await until(tagged(a), digestOf(2), STALE_MS)) < STALE_MS, 'an UPDATE by hand');
  await cluster.admin((c) => c.query('TRUNCATE tags'), dbName);
  t.ok((await until(tagged(a), undefined, STALE_MS)) < STALE_MS, 'a TRUNCATE');
});

t.test('a read under way while the tag moves on another replica is never kept (50 forced races)', async (t) => {
  const { a, b, tagged } = await twoReplicas(t);
  // A's read of the tag gets its answer from PostgreSQL before B's move, but is held back until A has heard
  // of the move: its old answer must not be kept.
  let hold: Promise<void> | null = null;
  const query = a.db.query.bind(a.db);
  a.db.query = async (client, q, params) => {
    const result = await query(client, q, params);
    if (hold && q.cached) await hold;
    return result;
  };
  const generation = () => (a.cache as unknown as { generation: number }).generation;
  let kept = 0;
  for (let i = 0; i < 50; i++) {
    const n = i % 2 ? 1 : 2;
    await untilKept(a.cache, tagged(a));
    a.cache.changed(null);
    let release!: () => void;
    hold = new Promise<void>((r) => (release = r));
    const before = tagged(a)();
    await new Promise((r) => setTimeout(r, 5)); // its answer is back (held)
    const heard = generation();
    await b.v2.putManifest(manifest('r/app', n), [], 'live');
    await until(async () => generation() > heard, true, STALE_MS);
    hold = null;
    release();
    t.not(await before, digestOf(n), 'the held read has the old answer');
    if ((await tagged(a)()) !== digestOf(n)) kept++;
  }
  t.equal(kept, 0, 'right after each race, A read the new tag: the old answer was not kept');
});

t.test('a silent change feed (no packet, no reset): within the bound, reads go to PostgreSQL', async (t) => {
  const url = await newPostgresDatabase();
  const b = await openReplica(t, url);
  for (const n of [1, 2]) await b.v2.putManifest(manifest('r/app', n), []);
  await b.v2.putManifest(manifest('r/app', 1), [], 'live');
  // Replica A hears changes through a relay that will stop forwarding; its statements go direct.
  const relay = await silentRelay(t, url);
  let feed: ChangeFeed | undefined;
  const cache = new ReadCache(() => feed!.fresh());
  feed = new ChangeFeed(relay.url, { staleMs: STALE_MS, onChange: (repo) => cache.changed(repo), log: quiet });
  await feed.start();
  const a = replicaOn(new PostgresDatabase(createPool(url, { max: 2 }), url, cache, () => feed!.close()));
  t.teardown(() => a.db.close());
  const tagged = async () => (await a.v2.taggedManifest('r/app', 'live'))?.digest;

  await until(() => Promise.resolve(feed!.fresh()), true, 2000);
  await tagged();
  const hits = cache.counts.hit;
  await tagged();
  t.equal(cache.counts.hit, hits + 1, 'answered from memory while the feed is current');
  relay.silence(true);
  await b.v2.putManifest(manifest('r/app', 2), [], 'live');
  const ms = await until(tagged, digestOf(2), STALE_MS + 200);
  t.ok(ms <= STALE_MS + 100, `the move, never heard, was read from PostgreSQL after ${ms.toFixed(0)} ms (bound ${STALE_MS})`);
  relay.silence(false);
});

t.test('a change feed whose connection ends: reads go to PostgreSQL, and it reconnects', async (t) => {
  const { a, b, tagged } = await twoReplicas(t);
  const cluster = await sharedPostgres();
  await tagged(a)();
  const killed = await cluster.admin((c) => c.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'tsregistry-changes'"));
  t.ok((killed.rowCount ?? 0) >= 1, 'the feeds\' sessions were ended');
  await b.v2.putManifest(manifest('r/app', 2), [], 'live');
  t.ok((await until(tagged(a), digestOf(2), STALE_MS)) < STALE_MS, 'a move made while A\'s feed was down is seen');
  const back = await until(async () => {
    const h = a.cache.counts.hit;
    await tagged(a)();
    await tagged(a)();
    return a.cache.counts.hit > h;
  }, true, 5000);
  t.pass(`memory answers again ${back.toFixed(0)} ms later (the feed retries every second)`);
  await b.v2.putManifest(manifest('r/app', 1), [], 'live');
  t.ok((await until(tagged(a), digestOf(1), STALE_MS)) < STALE_MS, 'and the reconnected feed hears changes');
});

t.test('cacheStaleness 0: no memory, no feed', async (t) => {
  const config = defaultConfig({ index: { driver: 'postgres', postgres: { url: await newPostgresDatabase(), maxConnections: 2, cacheStaleness: 0 } } });
  const opened = await openIndex(config.index);
  t.teardown(async () => {
    await opened.leadership.close();
    await opened.database.close();
  });
  t.equal((opened.database as PostgresDatabase).cache, undefined);
});
