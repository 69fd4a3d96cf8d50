import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, rmSync, truncateSync } from 'node:fs';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import t from 'tap';
import { RegistryError } from '../../src/errors';
import type { Tx } from '../../src/index/database';
import { openDatabase } from '../../src/index/db';
import { MetadataIndex } from '../../src/index/metadata-index';
import type { UploadLocks } from '../../src/index/upload-locks';
import { BlobStore } from '../../src/storage/blob-store';
import type { Digest } from '../../src/storage/digest';
import { LocalDriver } from '../../src/storage/local-driver';
import { tempDir } from '../helpers/server';

const digest = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}` as Digest;

async function setup(t: Parameters<typeof tempDir>[0]) {
  const root = tempDir(t);
  const open = async () => {
    const driver = new LocalDriver({ root: path.join(root, 'blobs'), fsync: false });
    await driver.init();
    const index = new MetadataIndex(openDatabase(path.join(root, 'index.db')));
    return { driver, index, store: new BlobStore(driver, index) };
  };
  const first = await open();
  return { root, ...first, reopen: async () => { first.index.close(); return open(); } };
}

async function bytesOf(stream: Readable) {
  const c: Buffer[] = [];
  for await (const x of stream) c.push(x as Buffer);
  return Buffer.concat(c);
}

t.test('ingest verifies the digest and stores once', async (t) => {
  const { store, root, index } = await setup(t);
  const data = randomBytes(100_000);
  await t.rejects(store.ingest(Readable.from([data]), { expected: digest(Buffer.from('other')) }), { code: 'DIGEST_INVALID' });
  t.equal(await store.stat(digest(data)), undefined, 'nothing recorded after a mismatch');
  t.same(readdirSync(path.join(root, 'blobs/uploads')), [], 'no staged leftovers');
  const [a, b] = await Promise.all([store.ingest(Readable.from([data])), store.ingest(Readable.from([data]))]);
  t.equal(a.digest, digest(data));
  t.same(a, b, 'identical concurrent ingests end as one blob');
  t.ok((await bytesOf(await store.open(a.digest))).equals(data));
  t.ok((await bytesOf(await store.open(a.digest, { start: 5, end: 9 }))).equals(data.subarray(5, 10)));
  await store.settle(); // the duplicate's staged copy is deleted after the ingest returned
  t.same(await index.staleUploads(Date.now() + 1000), [], 'no upload rows left');
  t.same(readdirSync(path.join(root, 'blobs/uploads')), [], 'no staged copies left');
  await t.rejects(store.open(digest(Buffer.from('nope'))), { code: 'BLOB_UNKNOWN' });
});

t.test('ingest with hashPrefix also returns sha256(prefix + body): from the workers, or hashed here without appendUploadPrefixed', async (t) => {
  const { store, driver, index } = await setup(t);
  const prefix = Buffer.from('{"id":"v1 image json"}\n');
  const data = randomBytes(3 * 1024 * 1024 + 5);
  let onWorkers = 0;
  const real = driver.appendUploadPrefixed.bind(driver);
  driver.appendUploadPrefixed = (...args) => {
    onWorkers++;
    return real(...args);
  };
  const a = await store.ingest(Readable.from([data.subarray(0, 1000), data.subarray(1000)]), { hashPrefix: prefix });
  t.same([a.digest, a.prefixedDigest, onWorkers], [digest(data), digest(Buffer.concat([prefix, data])), 1], 'local driver: hashed on its workers');
  const without = Object.assign(Object.create(driver) as LocalDriver, { appendUploadPrefixed: undefined });
  const other = randomBytes(70_000);
  const b = await new BlobStore(without, index).ingest(Readable.from([other]), { hashPrefix: prefix });
  t.same([b.digest, b.prefixedDigest], [digest(other), digest(Buffer.concat([prefix, other]))], 'a driver without it: hashed as the bytes pass');
  const c = await store.ingest(Readable.from([Buffer.from('plain')]));
  t.equal(c.prefixedDigest, undefined, 'none without hashPrefix');
});

t.test('an upload of content already stored: answered at once, its staged copy deleted after', async (t) => {
  const { store, root, index } = await setup(t);
  const data = randomBytes(300_000);
  await store.ingest(Readable.from([data]));
  const upload = await store.startUpload('library/dup');
  await store.appendUpload(upload.id, Readable.from([data]));
  const blob = await store.commitUpload(upload.id, digest(data));
  t.equal(blob.digest, digest(data));
  // The staged copy is deleted a little later, off every client's path; the upload is finished at once.
  t.equal(readdirSync(path.join(root, 'blobs/uploads')).length, 1, 'staged copy still there right after the commit');
  t.equal(await store.getUpload(upload.id), undefined, 'but the upload is unknown to clients');
  await t.rejects(store.appendUpload(upload.id, Readable.from([Buffer.from('x')])), { code: 'BLOB_UPLOAD_UNKNOWN' });
  await t.rejects(store.cancelUpload(upload.id), { code: 'BLOB_UPLOAD_UNKNOWN' });
  t.equal(await store.purgeStaleUploads(0), 0, 'the purge leaves it to the pending delete');
  await store.settle();
  t.same(readdirSync(path.join(root, 'blobs/uploads')), [], 'staged copy deleted');
  t.equal(await index.getUpload(upload.id), undefined, 'upload row gone');
  await t.rejects(store.appendUpload(upload.id, Readable.from([Buffer.from('x')])), { code: 'BLOB_UPLOAD_UNKNOWN' });
});

t.test('a final chunk whose commit fails is still counted, so the client can retry the PUT alone', async (t) => {
  const { store, index } = await setup(t);
  const data = randomBytes(200_000);
  const upload = await store.startUpload('library/retry');
  await store.appendUpload(upload.id, Readable.from([data.subarray(0, 1000)]));
  await t.rejects(store.commitUpload(upload.id, digest(Buffer.from('wrong')), Readable.from([data.subarray(1000)])), {
    code: 'DIGEST_INVALID',
  });
  t.equal((await index.getUpload(upload.id))?.size, data.length, 'the last chunk is in the upload');
  const blob = await store.commitUpload(upload.id, digest(data));
  t.equal(blob.size, data.length);
  t.equal(await index.getUpload(upload.id), undefined, 'row gone after the commit');
});

t.test('a failed commit whose progress cannot be saved either still reports the commit error', async (t) => {
  const { store, index } = await setup(t);
  const upload = await store.startUpload('library/retry');
  index.updateUpload = () => {
    throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
  };
  await t.rejects(store.commitUpload(upload.id, digest(Buffer.from('wrong')), Readable.from([Buffer.from('data')])), {
    code: 'DIGEST_INVALID',
  });
});

t.test('size limit', async (t) => {
  const { store } = await setup(t);
  await t.rejects(store.ingest(Readable.from([randomBytes(2000)]), { limit: 1000 }), { code: 'TOO_LARGE' });
});

t.test('a body past the size limit is not read to its end: it is destroyed, nothing is staged', async (t) => {
  const { store, root } = await setup(t);
  const body = new PassThrough();
  body.write(randomBytes(800));
  body.write(randomBytes(800)); // never ended: only destroying it can settle the ingest
  await t.rejects(store.ingest(body, { limit: 1000 }), { code: 'TOO_LARGE' });
  t.ok(body.destroyed, 'body destroyed');
  t.same(readdirSync(path.join(root, 'blobs/uploads')), []);
});

t.test('a driver that fails half-way: the body is destroyed and the upload keeps its size', async (t) => {
  const { store, driver, index } = await setup(t);
  const upload = await store.startUpload('library/fail');
  await store.appendUpload(upload.id, Readable.from([Buffer.from('first')]));
  const realAppend = driver.appendUpload.bind(driver);
  driver.appendUpload = async (_id, _state, _size, chunks) => {
    for await (const _chunk of chunks) throw new Error('disk went away');
    throw new Error('no chunk arrived');
  };
  const body = new PassThrough();
  body.write(randomBytes(100));
  await t.rejects(store.appendUpload(upload.id, body), /disk went away/);
  t.ok(body.destroyed, 'body destroyed');
  t.equal((await index.getUpload(upload.id))?.size, 5, 'size unchanged');
  driver.appendUpload = realAppend;
  await store.appendUpload(upload.id, Readable.from([Buffer.from('second')]));
  const blob = await store.commitUpload(upload.id, digest(Buffer.from('firstsecond')));
  t.equal(blob.size, 11, 'the hash did not see the failed bytes');
});

t.test('a client that goes away stores nothing', async (t) => {
  const { store, root } = await setup(t);
  const body = new PassThrough();
  // Under load the hang-up may come before the store reads the body: its error is then the store's to find, not an uncaught one.
  body.on('error', () => undefined);
  const p = store.ingest(body);
  body.write(randomBytes(1000));
  setTimeout(() => body.destroy(new Error('socket hang up')), 20);
  await t.rejects(p, /socket hang up/);
  const uploads = path.join(root, 'blobs/uploads');
  t.same(existsSync(uploads) ? readdirSync(uploads) : [], []);
});

t.test('chunked upload: order enforced, resumable across a restart, hash kept', async (t) => {
  const s = await setup(t);
  const parts = [randomBytes(70_000), randomBytes(1), randomBytes(123_456)];
  const all = Buffer.concat(parts);
  const up = await s.store.startUpload('r/x');
  await s.store.appendUpload(up.id, Readable.from([parts[0]!]), { start: 0 });
  const err = await s.store.appendUpload(up.id, Readable.from([parts[1]!]), { start: 5 }).catch((e: RegistryError) => e);
  t.match(err, { code: 'RANGE_INVALID', detail: { size: 70_000 } }, 'out of order chunk refused with the current size');
  await s.store.appendUpload(up.id, Readable.from([parts[1]!]), { start: 70_000 });

  // "Restart": a fresh store over the same files and database has no in-memory hash.
  const again = await s.reopen();
  t.equal((await again.store.getUpload(up.id))!.size, 70_001, 'upload state survived');
  await again.store.appendUpload(up.id, Readable.from([parts[2]!]), { start: 70_001 });
  await t.rejects(again.store.commitUpload(up.id, digest(Buffer.from('x'))), { code: 'DIGEST_INVALID' });
  const blob = await again.store.commitUpload(up.id, digest(all));
  t.same(blob.size, all.length);
  t.ok((await bytesOf(await again.store.open(blob.digest))).equals(all));
  await t.rejects(again.store.appendUpload(up.id, Readable.from([parts[0]!])), { code: 'BLOB_UPLOAD_UNKNOWN' }, 'gone after commit');
  again.index.close();
});

t.test('staged bytes cut short (lost in a crash with fsync off, or by hand): the upload ends with BLOB_UPLOAD_UNKNOWN, never a 500', async (t) => {
  const s = await setup(t);
  const data = randomBytes(300_000);
  const resumed = await s.store.startUpload('r/short');
  await s.store.appendUpload(resumed.id, Readable.from([data]));
  const committed = await s.store.startUpload('r/short');
  await s.store.appendUpload(committed.id, Readable.from([data]));
  const again = await s.reopen(); // no live hash: the next append or commit re-hashes the staged file
  const staged = (id: string) => path.join(s.root, 'blobs/uploads', id);
  truncateSync(staged(resumed.id), 200_000);
  truncateSync(staged(committed.id), 200_000);
  const gone = { code: 'BLOB_UPLOAD_UNKNOWN', message: /staged bytes are gone or cut short/ };
  await t.rejects(again.store.appendUpload(resumed.id, Readable.from([data]), { start: 300_000 }), gone, 'a resumed PATCH');
  await t.rejects(again.store.commitUpload(committed.id, digest(data)), gone, 'the PUT that ends it');
  for (const id of [resumed.id, committed.id]) {
    t.equal(await again.store.getUpload(id), undefined, 'the upload is gone');
    t.notOk(existsSync(staged(id)), 'and its staged bytes');
  }
  t.equal(await again.store.stat(digest(data)), undefined, 'nothing stored');
  again.index.close();
});

t.test('a restart between the commit moving the bytes into place and the index recording it: the retried PUT succeeds', async (t) => {
  const s = await setup(t);
  const data = randomBytes(100_000);
  const crash = () => {
    throw new Error('process stopped here');
  };
  const up = await s.store.startUpload('r/crash');
  await s.store.appendUpload(up.id, Readable.from([data]));
  // onStored throwing rolls back the record after the driver's commit moved the bytes: as if the process had stopped.
  await t.rejects(s.store.commitUpload(up.id, digest(data), undefined, { onStored: crash }), { message: 'process stopped here' });
  const other = await s.store.startUpload('r/crash');
  await s.store.appendUpload(other.id, Readable.from([data.subarray(1)]));
  await t.rejects(s.store.commitUpload(other.id, digest(data.subarray(1)), undefined, { onStored: crash }));

  const again = await s.reopen();
  t.equal(await again.store.stat(digest(data)), undefined, 'not recorded before the retry');
  await t.rejects(again.store.commitUpload(other.id, digest(data)), { code: 'DIGEST_INVALID' }, 'a digest the moved bytes do not have');
  t.equal(await again.store.getUpload(other.id), undefined, 'that upload is gone: nothing is left to append to');
  const blob = await again.store.commitUpload(up.id, digest(data));
  t.equal(blob.size, data.length);
  t.ok((await bytesOf(await again.store.open(blob.digest))).equals(data), 'served from where the first commit put it');
  t.equal(await again.store.getUpload(up.id), undefined, 'upload finished');

  // A monolithic PUT (body and digest at once) stopped at the same point: the retry sends the whole body
  // again, but the bytes were moved into place already (the row says so): it is stored once.
  const mono = randomBytes(50_000);
  const up3 = await again.store.startUpload('r/crash');
  await t.rejects(again.store.commitUpload(up3.id, digest(mono), Readable.from([mono]), { onStored: crash }));
  again.index.close();
  const third = await s.reopen();
  const stored = await third.store.commitUpload(up3.id, digest(mono), Readable.from([mono]));
  t.ok((await bytesOf(await third.store.open(stored.digest))).equals(mono), 'the retried PUT with its body is stored');
  third.index.close();
});

t.test('an upload whose staged bytes are gone ends with BLOB_UPLOAD_UNKNOWN, not a 500', async (t) => {
  const { store, root } = await setup(t);
  const up = await store.startUpload('r/gone');
  await store.appendUpload(up.id, Readable.from([randomBytes(1000)]));
  rmSync(path.join(root, 'blobs/uploads', up.id));
  await t.rejects(store.appendUpload(up.id, Readable.from([randomBytes(10)]), { start: 1000 }), { code: 'BLOB_UPLOAD_UNKNOWN' });
  t.equal(await store.getUpload(up.id), undefined, 'the upload is gone: the client starts a new one');
});

t.test("an upload whose staged bytes were removed never links the client's digest, even of a stored blob of its size", async (t) => {
  const s = await setup(t);
  const secret = randomBytes(4096);
  const stored = await s.store.ingest(Readable.from([secret]));
  const up = await s.store.startUpload('r/thief');
  await s.store.appendUpload(up.id, Readable.from([randomBytes(4096)]));
  rmSync(path.join(s.root, 'blobs/uploads', up.id)); // as the old purge did: the file before the row
  const { store, index } = await s.reopen(); // and no running hash left in memory
  let linked = false;
  await t.rejects(store.commitUpload(up.id, stored.digest, undefined, { onStored: async () => void (linked = true) }), { code: 'BLOB_UPLOAD_UNKNOWN' });
  t.notOk(linked, 'nothing linked');
  t.equal(await index.getUpload(up.id), undefined, 'the upload ended');
  index.close();
});

t.test('an upload being purged is refused to a PUT, never half-served', async (t) => {
  const { store, index } = await setup(t);
  const up = await store.startUpload('r/p');
  await store.appendUpload(up.id, Readable.from([randomBytes(1000)]));
  const purging = store.purgeStaleUploads(-1000);
  const during = await store.commitUpload(up.id, digest(Buffer.from('x'))).catch((err: RegistryError) => err.code);
  // Whichever takes the upload first (the order of their index reads decides), the other stays off it.
  if (during === 'DIGEST_INVALID') {
    t.equal(await purging, 0, 'the PUT had it: the purge left it alone');
    t.equal(await store.purgeStaleUploads(-1000), 1, 'and purges it once the PUT is done');
  } else {
    t.ok(during === 'RANGE_INVALID' || during === 'BLOB_UPLOAD_UNKNOWN', `refused (${during})`);
    t.equal(await purging, 1);
  }
  t.equal(await index.getUpload(up.id), undefined);
  await t.rejects(store.commitUpload(up.id, digest(Buffer.from('x'))), { code: 'BLOB_UPLOAD_UNKNOWN' });
});

t.test('commit with a final chunk; cancel; purge of stale uploads', async (t) => {
  const { store, index, root } = await setup(t);
  const data = randomBytes(5000);
  const up = await store.startUpload('r/y');
  const blob = await store.commitUpload(up.id, digest(data), Readable.from([data]));
  t.equal(blob.digest, digest(data));

  const c = await store.startUpload('r/y');
  await store.cancelUpload(c.id);
  t.equal(await store.getUpload(c.id), undefined);
  await t.rejects(store.cancelUpload(c.id), { code: 'BLOB_UPLOAD_UNKNOWN' });

  const stale = await store.startUpload('r/z');
  await store.appendUpload(stale.id, Readable.from([data]));
  t.equal(await store.purgeStaleUploads(60_000), 0, 'fresh uploads stay');
  t.equal(await store.purgeStaleUploads(-1), 1, 'old ones go');
  t.equal(await index.getUpload(stale.id), undefined);
  t.same(readdirSync(path.join(root, 'blobs/uploads')), []);
});

t.test('onStored runs in the transaction that records the blob, or alone if the content was already stored', async (t) => {
  const { store, index } = await setup(t);
  const data = randomBytes(3000);
  const refuse = async () => {
    throw new Error('link failed');
  };
  await t.rejects(store.ingest(Readable.from([data]), { onStored: refuse }), { message: 'link failed' });
  t.equal(await store.stat(digest(data)), undefined, 'a failing onStored rolls the blob record back with it');

  const seen: string[] = [];
  const record = async (tx: Tx, b: { digest: Digest }) => {
    seen.push(`${b.digest === digest(data)} ${(await tx(index).getBlob(b.digest)) !== undefined}`);
  };
  await store.ingest(Readable.from([data]), { onStored: record });
  await store.ingest(Readable.from([data]), { onStored: record });
  const up = await store.startUpload('r/linked');
  await store.commitUpload(up.id, digest(data), Readable.from([data]), { onStored: record });
  t.same(seen, ['true true', 'true true', 'true true'], 'called once per commit, with the blob already visible to it');

  const other = randomBytes(10);
  const up2 = await store.startUpload('r/linked');
  await t.rejects(store.commitUpload(up2.id, digest(other), Readable.from([other]), { onStored: refuse }), { message: 'link failed' });
  t.equal(await store.stat(digest(other)), undefined, 'same for a client upload');
  const retried = await store.commitUpload(up2.id, digest(other), undefined, { onStored: record });
  t.equal(retried.digest, digest(other), 'whose client can retry the PUT alone (its bytes were already moved into place)');
  t.equal(seen.length, 4);
});

t.test('onVerified: told the digest once the bytes match, before the blob is recorded; never on a mismatch', async (t) => {
  const { store } = await setup(t);
  const data = randomBytes(70_000);
  const told: string[] = [];
  const recorded: Promise<unknown>[] = [];
  const blob = await store.ingest(Readable.from([data]), {
    expected: digest(data),
    onVerified: (d) => {
      told.push(d);
      recorded.push(store.stat(d)); // read at once, before the ingest goes on
    },
  });
  t.same(told, [blob.digest], 'once');
  t.same(await Promise.all(recorded), [undefined], 'before the blob is visible');
  told.length = 0;
  await store.ingest(Readable.from([data]), { onVerified: (d) => told.push(d) });
  t.same(told, [digest(data)], 'also for content already stored');
  told.length = 0;
  await t.rejects(store.ingest(Readable.from([randomBytes(10)]), { expected: digest(data), onVerified: (d) => told.push(d) }), { code: 'DIGEST_INVALID' });
  t.same(told, [], 'not for bytes that do not match');
});

t.test('a second writer on a busy upload is refused', async (t) => {
  const { store } = await setup(t);
  const up = await store.startUpload('r/busy');
  const slow = new PassThrough();
  const first = store.appendUpload(up.id, slow);
  slow.write(randomBytes(10));
  await new Promise((r) => setTimeout(r, 20));
  await t.rejects(store.appendUpload(up.id, Readable.from([Buffer.from('x')])), { code: 'RANGE_INVALID' });
  slow.end(randomBytes(10));
  t.equal((await first).size, 20);
});

t.test('a hold the index no longer confirms (another process may have taken the upload): nothing is recorded, 503', async (t) => {
  const { store, index } = await setup(t);
  let confirmed = true;
  const ended = new AbortController();
  const locks: UploadLocks = {
    tryTake: async () => ({ lost: ended.signal, confirm: async () => confirmed, release: async () => undefined }),
    close: async () => undefined,
  };
  Object.defineProperty((index as unknown as { database: object }).database, 'uploadLocks', { value: locks });
  const head = randomBytes(1000);
  const up = await store.startUpload('r/held');
  await store.appendUpload(up.id, Readable.from([head]));
  confirmed = false;
  await t.rejects(store.appendUpload(up.id, Readable.from([randomBytes(500)])), { code: 'UNAVAILABLE' }, 'a chunk is refused');
  t.equal((await store.getUpload(up.id))!.size, 1000, 'and its size not recorded');
  await t.rejects(store.commitUpload(up.id, digest(head)), { code: 'UNAVAILABLE' }, 'a commit too');
  t.equal(await store.stat(digest(head)), undefined, 'nothing recorded');
  confirmed = true;
  const blob = await store.commitUpload(up.id, digest(head));
  t.ok((await bytesOf(await store.open(blob.digest))).equals(head), 'once the hold is confirmed, the upload finishes from what was recorded');

  const next = await store.startUpload('r/held');
  const slow = new PassThrough();
  const writing = store.appendUpload(next.id, slow);
  slow.write(randomBytes(100));
  await new Promise((r) => setTimeout(r, 20));
  ended.abort(); // the hold's connection broke
  slow.end(randomBytes(100));
  await t.rejects(writing, { code: 'UNAVAILABLE' }, 'an append under way stops at its next chunk');
  t.equal((await store.getUpload(next.id))!.size, 0, 'recording nothing');
});

t.test('finished uploads leave no running hash behind in the driver', async (t) => {
  const { store, driver } = await setup(t);
  const pool = (driver as unknown as { workers: { homeOf: Map<string, unknown>; lastDigest: Map<string, unknown> } }).workers;
  const data = randomBytes(70_000);
  await store.ingest(Readable.from([data])); // committed by rename
  await store.ingest(Readable.from([data])); // already stored: its staged copy is discarded
  const up = await store.startUpload('r/leak');
  await store.appendUpload(up.id, Readable.from([data.subarray(0, 10)]));
  await t.rejects(store.commitUpload(up.id, digest(Buffer.from('wrong'))), { code: 'DIGEST_INVALID' });
  t.equal(pool.homeOf.size, 1, 'an upload still open keeps its hash');
  await store.cancelUpload(up.id);
  await t.rejects(store.ingest(Readable.from([randomBytes(2000)]), { limit: 1000 }), { code: 'TOO_LARGE' });
  await store.settle();
  t.equal(pool.homeOf.size, 0, 'no upload left in the worker map');
  t.equal(pool.lastDigest.size, 0, 'no digest left in the cache');
});
