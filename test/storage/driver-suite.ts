import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Test } from 'tap';
import { StorageNotFoundError, type StorageDriver } from '../../src/storage/driver';

// One conformance suite for every storage driver: run it against each (local now, S3 later).

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

const hexOf = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function failingStream(first: Buffer): Readable {
  let sent = false;
  return new Readable({
    read() {
      if (!sent) {
        sent = true;
        this.push(first);
      } else {
        this.destroy(new Error('client went away'));
      }
    },
  });
}

export function driverSuite(t: Test, make: (t: Test) => Promise<StorageDriver>): void {
  t.test('ping', async (t) => {
    const d = await make(t);
    await d.ping();
    t.pass('answers');
  });

  t.test('upload in chunks, commit, stat, read, ranges, delete', async (t) => {
    const d = await make(t);
    const parts = [randomBytes(1000), randomBytes(3 * 1024 * 1024 + 17), Buffer.alloc(0), randomBytes(5)];
    const all = Buffer.concat(parts);
    const id = 'u' + randomBytes(8).toString('hex');
    let state = await d.startUpload(id);
    let size = 0;
    for (const p of parts) {
      state = await d.appendUpload(id, state, size, Readable.from([p]));
      size += p.length;
    }
    const hex = hexOf(all);
    if (d.stagedDigest) t.equal(await d.stagedDigest(id, state, size), `sha256:${hex}`, 'staged digest over every append');
    const key = await d.commitUpload(id, state, size, hex);
    t.same(await d.stat(key), { size: all.length });
    t.ok((await collect(await d.read(key))).equals(all), 'whole object');
    t.ok((await collect(await d.read(key, { start: 999, end: 1500 }))).equals(all.subarray(999, 1501)), 'range');
    t.ok((await collect(await d.read(key, { start: all.length - 1, end: all.length - 1 }))).equals(all.subarray(-1)), 'last byte');
    await d.delete(key);
    t.equal(await d.stat(key), null, 'gone');
    await d.delete(key);
    t.pass('deleting twice is fine');
    await t.rejects(d.read(key), StorageNotFoundError);
  });

  t.test('an empty blob', async (t) => {
    const d = await make(t);
    const state = await d.startUpload('empty1');
    const key = await d.commitUpload('empty1', state, 0, hexOf(Buffer.alloc(0)));
    t.same(await d.stat(key), { size: 0 });
    t.equal((await collect(await d.read(key))).length, 0);
  });

  t.test('a failed append leaves the upload at its previous size', async (t) => {
    const d = await make(t);
    const first = randomBytes(2048);
    let state = await d.startUpload('fail1');
    state = await d.appendUpload('fail1', state, 0, Readable.from([first]));
    await t.rejects(d.appendUpload('fail1', state, first.length, failingStream(randomBytes(4096))), /went away/);
    const second = randomBytes(100);
    state = await d.appendUpload('fail1', state, first.length, Readable.from([second]));
    const all = Buffer.concat([first, second]);
    if (d.stagedDigest) t.equal(await d.stagedDigest('fail1', state, all.length), `sha256:${hexOf(all)}`, 'no trace of the failed chunk in the staged digest');
    const key = await d.commitUpload('fail1', state, all.length, hexOf(all));
    t.ok((await collect(await d.read(key))).equals(all));
  });

  t.test('a commit repeated after it succeeded returns the same key (the index write after it failed)', async (t) => {
    const d = await make(t);
    // Sizes: one small object; parts plus a tail; parts and no tail (S3: only the Complete is repeated).
    for (const data of [randomBytes(3000), randomBytes(6 * 1024 * 1024 + 5), randomBytes(5 * 1024 * 1024)]) {
      const id = 'again' + randomBytes(6).toString('hex');
      let s = await d.startUpload(id);
      s = await d.appendUpload(id, s, 0, Readable.from([data]));
      const key = await d.commitUpload(id, s, data.length, hexOf(data));
      t.equal(await d.commitUpload(id, s, data.length, hexOf(data)), key, `${data.length} bytes: same key`);
      t.ok((await collect(await d.read(key))).equals(data), 'object intact');
    }
  });

  t.test('abort discards; identical commits share one object', async (t) => {
    const d = await make(t);
    const data = randomBytes(4000);
    const s1 = await d.startUpload('abort1');
    await d.appendUpload('abort1', s1, 0, Readable.from([data]));
    await d.abortUpload('abort1', s1);
    await d.abortUpload('abort1', s1);
    t.pass('abort is idempotent');
    const keys = await Promise.all(
      ['same1', 'same2'].map(async (id) => {
        let s = await d.startUpload(id);
        s = await d.appendUpload(id, s, 0, Readable.from([data]));
        return d.commitUpload(id, s, data.length, hexOf(data));
      }),
    );
    for (const key of keys) t.ok((await collect(await d.read(key))).equals(data), `readable at ${key}`);
  });

  t.test('unsafe keys are refused', async (t) => {
    const d = await make(t);
    for (const key of ['../etc/passwd', 'blobs/sha256/../../x', '/abs', 'uploads/../../x']) {
      await t.rejects(d.read(key), `read ${key}`);
      await t.rejects(d.stat(key), `stat ${key}`);
    }
  });

  t.test('records: written whole, read, listed in key order, replaced, deleted; bad keys refused', async (t) => {
    const d = await make(t);
    t.equal(await d.getRecord('refs/journal/none.jsonl'), null, 'a missing record reads as null');
    const list = async () => {
      const out: string[] = [];
      for await (const r of d.listRecords('refs/journal/')) out.push(`${r.key}:${r.size}`);
      return out;
    };
    t.same(await list(), [], 'nothing listed before anything is written');
    await d.putRecord('refs/journal/b.jsonl', Buffer.from('second\n'));
    await d.putRecord('refs/journal/a.jsonl', Buffer.from('first\n'));
    await d.putRecord('refs/other/x', Buffer.from('elsewhere'));
    t.same(await list(), ['refs/journal/a.jsonl:6', 'refs/journal/b.jsonl:7'], 'only that prefix, in key order');
    await d.putRecord('refs/journal/a.jsonl', Buffer.from('replaced'));
    t.equal((await d.getRecord('refs/journal/a.jsonl'))!.toString(), 'replaced');
    await d.deleteRecord('refs/journal/a.jsonl');
    await d.deleteRecord('refs/journal/a.jsonl');
    t.same(await list(), ['refs/journal/b.jsonl:7'], 'deleted, twice without error');
    for (const bad of ['refs/../x', 'refs/journal/../../etc', 'blobs/sha256/aa', 'refs/journal/a/b', 'refs/Journal/x']) {
      await t.rejects(d.putRecord(bad, Buffer.from('x')), /refusing record key/, `refused: ${bad}`);
    }
  });

  t.test('quarantine moves a committed object aside: it no longer reads at its key', async (t) => {
    const d = await make(t);
    const data = randomBytes(3000);
    const state = await d.startUpload('q1');
    const appended = await d.appendUpload('q1', state, 0, Readable.from([data]));
    const key = await d.commitUpload('q1', appended, data.length, hexOf(data));
    const where = await d.quarantine(key);
    t.match(where, /^quarantine\//);
    t.equal(await d.stat(key), null, 'gone from its key');
    await t.rejects(d.read(key), StorageNotFoundError);
  });
}
