import Database from 'better-sqlite3';
import path from 'node:path';
import { setImmediate as yieldToOthers } from 'node:timers/promises';
import t from 'tap';
import { openDatabase } from '../../src/index/db';
import { MetadataIndex } from '../../src/index/metadata-index';
import { UsageIndex } from '../../src/index/usage-index';
import { V2Index } from '../../src/index/v2-index';
import { WalSync } from '../../src/index/wal-sync';
import { Quotas } from '../../src/quota/quotas';
import type { Digest } from '../../src/storage/digest';
import { tempDir } from '../helpers/server';

// The asynchronous index interface on SQLite (docs/development.md, "Index interface"): transactions whose
// callbacks await keep the guarantees the synchronous ones had. Every transaction here yields to the event
// loop between its check and its write, so that other work gets every chance to run in between.

const digestOf = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}` as Digest;

function open(file = ':memory:') {
  const db = openDatabase(file);
  const core = new MetadataIndex(db);
  return { db, core, v2: new V2Index(db, core), usage: new UsageIndex(db) };
}

t.test('a check and the write that depends on it are never split (concurrent links against a quota)', async (t) => {
  const { core, v2, usage } = open();
  const size = 1000;
  let n = 0;
  for (let round = 0; round < 20; round++) {
    const quotas = new Quotas([{ repository: `q/${round}/**`, limit: 7 * size }], usage);
    const blobs = Array.from({ length: 30 }, () => digestOf(++n));
    for (const digest of blobs) await core.putBlob({ digest, size, location: digest });
    let overLimit = 0;
    let reading = true;
    // Readers outside the transactions meanwhile: never more than the limit, whatever they land between.
    const reader = (async () => {
      while (reading) {
        if ((await usage.bytesUsed([{ prefix: `q/${round}/` }])) > 7 * size) overLimit++;
        await yieldToOthers();
      }
    })();
    const results = await Promise.all(
      blobs.map((digest, i) =>
        core
          .transaction(async (tx) => {
            await quotas.checkLink(tx, `q/${round}/r${i % 3}`, digest, size);
            await yieldToOthers(); // a macrotask: other requests' statements would run here without the gate
            await tx(v2).linkBlob(`q/${round}/r${i % 3}`, digest);
          })
          .then(
            () => true,
            (err: Error) => (/quota exceeded/.test(err.message) ? false : Promise.reject(err)),
          ),
      ),
    );
    reading = false;
    await reader;
    t.equal(results.filter(Boolean).length, 7, `round ${round}: exactly as many links as fit`);
    t.equal(await usage.bytesUsed([{ prefix: `q/${round}/` }]), 7 * size, `round ${round}: charged for those alone`);
    t.equal(overLimit, 0, `round ${round}: no reader saw more than the limit`);
  }
});

t.test('nothing a transaction wrote is seen before its COMMIT, nor ever after its ROLLBACK', async (t) => {
  const { core, v2 } = open();
  const digest = digestOf(1);
  await core.putBlob({ digest, size: 1, location: digest });
  let seen = 0;
  let reads = 0;
  let reading = true;
  const reader = (async () => {
    while (reading) {
      if (await v2.isBlobLinked('r/b', digest)) seen++;
      reads++;
      await yieldToOthers();
    }
  })();
  for (let i = 0; i < 200; i++) {
    await t.rejects(
      core.transaction(async (tx) => {
        await tx(v2).linkBlob('r/b', digest);
        t.ok(await tx(v2).isBlobLinked('r/b', digest), 'the transaction sees its own write') || t.bailout();
        await yieldToOthers();
        throw new Error('rolled back');
      }),
      /rolled back/,
    );
  }
  reading = false;
  await reader;
  t.ok(reads > 0, `the reader ran meanwhile (${reads} reads)`);
  t.equal(seen, 0, 'no read saw a link of a transaction that rolled back');
});

t.test('a transaction inside a transaction is a savepoint: its failure undoes its own work only', async (t) => {
  const { core, v2 } = open();
  for (const n of [1, 2]) await core.putBlob({ digest: digestOf(n), size: 1, location: 'x' });
  await core.transaction(async (tx) => {
    await tx(v2).linkBlob('r/s', digestOf(1));
    await t.rejects(
      tx(core).transaction(async (inner) => {
        await inner(v2).linkBlob('r/s', digestOf(2));
        throw new Error('inner fails');
      }),
      /inner fails/,
    );
  });
  t.ok(await v2.isBlobLinked('r/s', digestOf(1)), 'the outer work committed');
  t.notOk(await v2.isBlobLinked('r/s', digestOf(2)), 'the inner work was undone');
});

t.test('an object bound to a transaction cannot be used once it ended', async (t) => {
  const { core, v2 } = open();
  let leaked: V2Index | undefined;
  await core.transaction(async (tx) => void (leaked = tx(v2)));
  await t.rejects(leaked!.isBlobLinked('r/x', digestOf(1)), /used after the transaction ended/);
});

t.test('the write lock is held from BEGIN to COMMIT against other processes (BEGIN IMMEDIATE)', async (t) => {
  const file = path.join(tempDir(t, 'index-tx-'), 'index.db');
  const { db, core } = open(file);
  t.teardown(() => db.close());
  const other = new Database(file, { timeout: 0 }); // another process: the CLI running a garbage collection
  t.teardown(() => other.close());
  await core.transaction(async (tx) => {
    await tx(core).ensureRepository('r/lock');
    await yieldToOthers();
    t.throws(() => other.prepare('BEGIN IMMEDIATE').run(), /database is locked/, 'another connection cannot begin a write meanwhile');
  });
  other.prepare('BEGIN IMMEDIATE').run();
  other.prepare('ROLLBACK').run();
  t.pass('once committed, it can');
});

t.test('the WAL is synced only between transactions, and a flush covers every commit before it', async (t) => {
  const file = path.join(tempDir(t, 'index-wal-'), 'index.db');
  const { db, core, v2 } = open(file);
  t.teardown(() => db.close());
  let syncs = 0;
  let syncedInTransaction = 0;
  let commits = 0;
  let coveredCommits = 0; // commits made before the start of the last sync that completed
  const wal = new WalSync(db, async () => {
    if (db.inTransaction) syncedInTransaction++;
    const covers = commits;
    syncs++;
    await yieldToOthers();
    coveredCommits = Math.max(coveredCommits, covers);
  });
  for (let i = 0; i < 50; i++) await core.putBlob({ digest: digestOf(i), size: 1, location: 'x' });
  await wal.flush();
  const writes = Array.from({ length: 50 }, async (_, i) => {
    let mine = 0;
    await core.transaction(async (tx) => {
      await tx(v2).linkBlob(`r/w${i % 5}`, digestOf(i));
      await yieldToOthers(); // flushes of other writers run here, with this transaction open
      mine = ++commits; // its COMMIT follows before anything else runs on the connection
    });
    await wal.flush();
    return coveredCommits >= mine;
  });
  const covered = await Promise.all(writes);
  t.equal(covered.filter(Boolean).length, 50, 'each flush returned after a sync that began after its commit');
  t.equal(syncedInTransaction, 0, 'no sync started while a transaction was open');
  t.ok(syncs > 1, `synced (${syncs} syncs for 50 commits)`);
});
