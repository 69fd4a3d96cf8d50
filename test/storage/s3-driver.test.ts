import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import { Readable } from 'node:stream';
import { HeadObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import t, { type Test } from 'tap';
import { defaultConfig } from '../../src/config/load';
import { openDatabase } from '../../src/index/db';
import { MetadataIndex } from '../../src/index/metadata-index';
import { BlobStore } from '../../src/storage/blob-store';
import type { Digest } from '../../src/storage/digest';
import type { UploadState } from '../../src/storage/driver';
import { createDriver } from '../../src/storage/factory';
import { S3Driver, type S3DriverOptions } from '../../src/storage/s3-driver';
import { startS3rver, type S3rver } from '../helpers/s3rver';
import { tempDir } from '../helpers/server';
import { driverSuite } from './driver-suite';

// The shared driver suite against s3rver, plus what only S3 has: parts, staged tails, the restart path
// without readUpload, s3rver's missing AbortMultipartUpload, key layout and start-up checks.

const MiB = 1024 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const digest = (b: Buffer) => `sha256:${sha(b)}` as Digest;

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** `data` as a stream of odd-sized chunks, like a socket delivers it. */
function chunked(data: Buffer, chunk = 65_521): Readable {
  let off = 0;
  return new Readable({
    read() {
      if (off >= data.length) this.push(null);
      else {
        this.push(data.subarray(off, off + chunk));
        off += chunk;
      }
    },
  });
}

/** Sends `data`, then fails like a client that went away. */
function failingAfter(data: Buffer): Readable {
  let off = 0;
  return new Readable({
    read() {
      if (off >= data.length) this.destroy(new Error('client went away'));
      else {
        this.push(data.subarray(off, off + MiB));
        off += MiB;
      }
    },
  });
}

function driver(t: Test, s3: S3rver, extra: Partial<S3DriverOptions> = {}): S3Driver {
  const d = new S3Driver({ ...s3.driverOptions, ...extra });
  t.teardown(() => d.close());
  return d;
}

/** A plain client to look at the bucket behind the driver's back. */
function inspector(t: Test, s3: S3rver) {
  const client = new S3Client({
    region: 'us-east-1',
    endpoint: s3.endpoint,
    forcePathStyle: true,
    credentials: s3.driverOptions.credentials,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  t.teardown(() => client.destroy());
  return {
    async keys(prefix: string): Promise<string[]> {
      const res = await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix }));
      return (res.Contents ?? []).map((o) => o.Key!).sort();
    },
    async exists(key: string): Promise<boolean> {
      try {
        await client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: key }));
        return true;
      } catch (err) {
        if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return false;
        throw err;
      }
    },
  };
}

type S3State = { mpu?: string; parts: { n: number; size: number }[]; tail: number; gen: number; tok?: string };
const view = (s: UploadState) => s as unknown as S3State;
/** The key of the tail object `state` names, under `dir` (uploads/<id>/). */
const tailIn = (dir: string, state: UploadState) => `${dir}tail.${view(state).gen}${view(state).tok ? `.${view(state).tok}` : ''}`;

async function checkRanges(t: Test, d: S3Driver, key: string, all: Buffer) {
  const ranges: [number, number][] = [
    [0, 0],
    [5 * MiB - 3, 5 * MiB + 2], // across the first part boundary
    [10 * MiB - 1, 15 * MiB], // across two boundaries
    [all.length - 1, all.length - 1],
    [123_457, all.length - 1],
  ];
  for (const [start, end] of ranges) {
    t.ok((await collect(await d.read(key, { start, end }))).equals(all.subarray(start, end + 1)), `range ${start}-${end}`);
  }
}

t.test('S3 driver conformance (s3rver)', async (t) => {
  const s3 = await startS3rver(t);
  driverSuite(t, async (t) => driver(t, s3));
});

t.test('S3 specifics', async (t) => {
  const s3 = await startS3rver(t);
  const look = inspector(t, s3);

  t.test('a multi-part blob streamed in one append', async (t) => {
    const d = driver(t, s3);
    const all = randomBytes(23 * MiB + 12_345);
    let state = await d.startUpload('one');
    state = await d.appendUpload('one', state, 0, chunked(all));
    t.equal(view(state).parts.length, 4, 'four full 5 MiB parts');
    t.ok(view(state).parts.every((p) => p.size === 5 * MiB), 'of partSize each');
    t.equal(view(state).tail, 3 * MiB + 12_345, 'the remainder is a staged tail, not a part');
    t.ok(await look.exists(tailIn('uploads/one/', state)), 'tail object staged');
    t.notOk(await look.exists('blobs/one'), 'nothing visible before commit');
    const key = await d.commitUpload('one', state, all.length, sha(all));
    t.equal(key, 'blobs/one', 'the key is the upload\'s own object');
    t.same(await d.stat(key), { size: all.length });
    t.ok((await collect(await d.read(key))).equals(all), 'byte-identical read back');
    await checkRanges(t, d, key, all);
    t.same(await look.keys('uploads/one/'), [], 'no staged tail left after commit');
  });

  t.test('several appends of odd sizes (1 MiB, 7 MiB, 3 bytes, 6 MiB, 9 MiB)', async (t) => {
    const d = driver(t, s3);
    const sizes = [MiB, 7 * MiB, 3, 6 * MiB, 9 * MiB];
    const pieces = sizes.map((n) => randomBytes(n));
    const all = Buffer.concat(pieces);
    let state = await d.startUpload('odd');
    let size = 0;
    const shapes: string[] = [];
    for (const p of pieces) {
      const previous = state;
      state = await d.appendUpload('odd', state, size, chunked(p, 100_003));
      await d.recorded('odd', previous, state); // as the BlobStore says once the index holds it
      size += p.length;
      const s = view(state);
      t.equal(s.parts.reduce((n, x) => n + x.size, 0) + s.tail, size, `state accounts for ${size} bytes`);
      t.ok(s.tail < 5 * MiB, 'tails stay under 5 MiB');
      t.ok(s.parts.every((x) => x.size >= 5 * MiB), 'every part so far is at least 5 MiB');
      t.same(s.parts.map((x) => x.n), s.parts.map((_, i) => i + 1), 'part numbers 1..n');
      shapes.push(`${s.parts.length}p+${s.tail}`);
    }
    t.same(shapes, ['0p+1048576', '1p+3145728', '1p+3145731', '2p+4194307', '4p+3145731'], 'parts fill up; remainders are staged');
    t.same(await look.keys('uploads/odd/'), [tailIn('uploads/odd/', state)], 'only the current tail is kept');
    const key = await d.commitUpload('odd', state, size, sha(all));
    t.ok((await collect(await d.read(key))).equals(all), 'byte-identical read back');
    await checkRanges(t, d, key, all);
    t.same(await look.keys('uploads/odd/'), [], 'tail gone after commit');
  });

  t.test('a remainder of 5 MiB or more becomes a part; an empty append changes nothing', async (t) => {
    const d = driver(t, s3, { partSize: 8 * MiB });
    const a = randomBytes(6 * MiB);
    const b = randomBytes(100);
    let state = await d.startUpload('rem');
    state = await d.appendUpload('rem', state, 0, chunked(a));
    t.same([view(state).parts.map((p) => p.size), view(state).tail], [[6 * MiB], 0], 'one 6 MiB part, no tail');
    const same = await d.appendUpload('rem', state, a.length, Readable.from([]));
    t.same(same, state, 'empty append: same state');
    state = await d.appendUpload('rem', state, a.length, Readable.from([b]));
    const key = await d.commitUpload('rem', state, a.length + b.length, '');
    t.ok((await collect(await d.read(key))).equals(Buffer.concat([a, b])), 'the 100-byte tail went up as the last part');
  });

  t.test('a failed append records nothing and its part numbers are reused', async (t) => {
    const d = driver(t, s3);
    const first = randomBytes(6 * MiB + 1);
    const second = randomBytes(2 * MiB);
    // First append fails after two parts' worth: the multipart upload it created is recorded nowhere.
    const s0 = await d.startUpload('failmp');
    await t.rejects(d.appendUpload('failmp', s0, 0, failingAfter(randomBytes(11 * MiB))), /went away/);
    let state = await d.appendUpload('failmp', s0, 0, chunked(first));
    t.equal(view(state).parts.length, 1);
    await t.rejects(d.appendUpload('failmp', state, first.length, failingAfter(randomBytes(12 * MiB))), /went away/);
    t.same(await look.keys('uploads/failmp/'), [tailIn('uploads/failmp/', state)], 'the previous tail is intact');
    state = await d.appendUpload('failmp', state, first.length, chunked(second));
    const all = Buffer.concat([first, second]);
    const key = await d.commitUpload('failmp', state, all.length, sha(all));
    t.ok((await collect(await d.read(key))).equals(all), 'no trace of the failed appends');
  });

  t.test('two appends from one state (a writer whose hold broke, and the next) never write the same tail', async (t) => {
    const d = driver(t, s3);
    const head = randomBytes(1000);
    const s0 = await d.appendUpload('twice', await d.startUpload('twice'), 0, chunked(head));
    const mine = randomBytes(3000);
    const stale = randomBytes(3000); // as long, so that both states count the same bytes
    // The stale append has read the old tail (its body is pulled only after) and waits while the next runs whole.
    let pulled!: () => void;
    const reading = new Promise<void>((r) => (pulled = r));
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const staleAppend = d.appendUpload('twice', s0, head.length, (async function* () {
      pulled();
      await held;
      yield stale;
    })());
    await reading;
    const recorded = await d.appendUpload('twice', s0, head.length, chunked(mine));
    release();
    await staleAppend; // lands after, from the same state
    t.not(tailIn('', recorded), tailIn('', s0), 'a new tail key');
    const all = Buffer.concat([head, mine]);
    const key = await d.commitUpload('twice', recorded, all.length, sha(all));
    t.ok((await collect(await d.read(key))).equals(all), "the recorded state's bytes, none of the stale writer's");
    t.same(await look.keys('uploads/twice/'), [], "no staging left, the stale writer's tail included");
  });

  t.test('an append refused after it staged its tail (its state never recorded) leaves the upload whole', async (t) => {
    const d = driver(t, s3);
    const head = randomBytes(2000);
    const s0 = await d.appendUpload('refused', await d.startUpload('refused'), 0, chunked(head));
    await d.appendUpload('refused', s0, head.length, chunked(randomBytes(500))); // not recorded: s0 stays
    const more = randomBytes(700);
    const s1 = await d.appendUpload('refused', s0, head.length, chunked(more));
    await d.recorded('refused', s0, s1);
    const all = Buffer.concat([head, more]);
    const key = await d.commitUpload('refused', s1, all.length, sha(all));
    t.ok((await collect(await d.read(key))).equals(all), 'the recorded bytes, from the tail the recorded state named');
    t.same(await look.keys('uploads/refused/'), [], 'no staging left');
  });

  t.test('a failed Complete is reported as itself, also when the check for a finished object fails too', async (t) => {
    const d = driver(t, s3);
    const data = randomBytes(5 * MiB); // one part, no tail: the commit is the Complete alone
    const state = await d.appendUpload('complete', await d.startUpload('complete'), 0, chunked(data));
    const client = (d as unknown as { client: S3Client }).client;
    const send = client.send.bind(client);
    client.send = (async (command: { constructor: { name: string } }) => {
      const name = command.constructor.name;
      if (name === 'CompleteMultipartUploadCommand') throw Object.assign(new Error('the Complete failed'), { name: 'InvalidPart' });
      if (name === 'HeadObjectCommand') throw new Error('the endpoint went away');
      return send(command as never);
    }) as never;
    await t.rejects(d.commitUpload('complete', state, data.length, ''), { message: 'the Complete failed' });
    client.send = send;
    const key = await d.commitUpload('complete', state, data.length, '');
    t.ok((await collect(await d.read(key))).equals(data), 'committed once the backend answers again');
  });

  t.test('a state that disagrees with the size is refused', async (t) => {
    const d = driver(t, s3);
    const state = await d.appendUpload('mismatch', await d.startUpload('mismatch'), 0, Readable.from([randomBytes(10)]));
    await t.rejects(d.appendUpload('mismatch', state, 9, Readable.from([randomBytes(1)])), /holds 10 bytes, 9 expected/);
    await t.rejects(d.commitUpload('mismatch', state, 11, ''), /holds 10 bytes, 11 expected/);
    await t.rejects(d.startUpload('../x'), /refusing upload id/);
    await d.abortUpload('mismatch', state);
  });

  t.test('abort of an abandoned multipart upload: s3rver refuses AbortMultipartUpload, the tail goes', async (t) => {
    const d = driver(t, s3);
    let state = await d.startUpload('abandoned');
    state = await d.appendUpload('abandoned', state, 0, chunked(randomBytes(12 * MiB)));
    t.ok(view(state).mpu, 'a multipart upload is open');
    t.equal(view(state).tail, 2 * MiB);
    await d.abortUpload('abandoned', state);
    await d.abortUpload('abandoned', state);
    t.pass('abort does not throw, twice');
    t.same(await look.keys('uploads/abandoned/'), [], 'tail deleted');
    t.notOk(await look.exists('blobs/abandoned'), 'no object');
    await d.abortUpload('never-started', {});
    t.pass('abort of a state never written by startUpload ({}) is fine');
  });

  t.test('prefix: every key lives under it', async (t) => {
    const d = driver(t, s3, { prefix: 'reg/v1' });
    const data = randomBytes(6 * MiB + 3);
    let state = await d.startUpload('pfx');
    state = await d.appendUpload('pfx', state, 0, chunked(data));
    t.same(await look.keys('reg/v1/uploads/'), [tailIn('reg/v1/uploads/pfx/', state)]);
    const key = await d.commitUpload('pfx', state, data.length, sha(data));
    t.equal(key, 'blobs/pfx', 'the index key does not include the prefix');
    t.same(await look.keys('reg/v1/blobs/'), ['reg/v1/blobs/pfx']);
    t.notOk(await look.exists('blobs/pfx'));
    t.ok((await collect(await d.read(key))).equals(data));
  });

  t.test('presigned redirect URL serves the object', async (t) => {
    const d = driver(t, s3);
    const data = randomBytes(1000);
    let state = await d.startUpload('presign');
    state = await d.appendUpload('presign', state, 0, Readable.from([data]));
    const key = await d.commitUpload('presign', state, data.length, sha(data));
    const url = await d.redirectUrl(key, 60);
    t.match(url, /X-Amz-Expires=60/);
    const res = await fetch(url);
    t.equal(res.status, 200);
    t.ok(Buffer.from(await res.arrayBuffer()).equals(data), 'same bytes');
    const ranged = await fetch(url, { headers: { range: 'bytes=10-19' } });
    t.equal(ranged.status, 206);
    t.ok(Buffer.from(await ranged.arrayBuffer()).equals(data.subarray(10, 20)), 'ranged GET on the URL');
  });
});

t.test('BlobStore on S3', async (t) => {
  const s3 = await startS3rver(t);
  const look = inspector(t, s3);

  const setup = (t: Test) => {
    const dir = tempDir(t);
    const open = () => {
      const d = driver(t, s3);
      const index = new MetadataIndex(openDatabase(path.join(dir, 'index.db')));
      t.teardown(() => index.close());
      return { driver: d, index, store: new BlobStore(d, index) };
    };
    return { first: open(), open };
  };

  t.test('a restart in the middle of a chunked upload continues it; the digest is verified', async (t) => {
    const { first, open } = setup(t);
    const pieces = [randomBytes(7 * MiB), randomBytes(3), randomBytes(6 * MiB), randomBytes(MiB + 5)];
    const all = Buffer.concat(pieces);

    // Right digest: two chunks before the restart, one after, and a final chunk with the PUT.
    const up = await first.store.startUpload('r/x');
    await first.store.appendUpload(up.id, chunked(pieces[0]!), { start: 0 });
    await first.store.appendUpload(up.id, Readable.from([pieces[1]!]), { start: 7 * MiB });
    // A second upload left half-done, to be committed with a wrong digest.
    const bad = await first.store.startUpload('r/x');
    await first.store.appendUpload(bad.id, chunked(pieces[0]!), { start: 0 });
    first.index.close();

    const again = open();
    t.equal((await again.store.getUpload(up.id))!.size, 7 * MiB + 3, 'upload state survived the restart');
    await again.store.appendUpload(up.id, chunked(pieces[2]!), { start: 7 * MiB + 3 });
    const blob = await again.store.commitUpload(up.id, digest(all), chunked(pieces[3]!));
    t.equal(blob.digest, digest(all), 'committed under the verified digest');
    t.equal(blob.size, all.length);
    t.equal(blob.location, `blobs/${up.id}`, 'at the upload\'s own key');
    t.ok((await collect(await again.store.open(blob.digest))).equals(all), 'byte-identical');
    t.ok((await collect(await again.store.open(blob.digest, { start: 7 * MiB - 2, end: 7 * MiB + 4 }))).equals(all.subarray(7 * MiB - 2, 7 * MiB + 5)), 'ranged');
    t.equal(await again.store.getUpload(up.id), undefined, 'upload row gone');

    // Wrong digest after a restart: the bytes were committed to check them, so the upload goes with them.
    const wrong = digest(Buffer.from('something else'));
    await again.store.appendUpload(bad.id, Readable.from([pieces[1]!]), { start: 7 * MiB });
    await t.rejects(again.store.commitUpload(bad.id, wrong), { code: 'DIGEST_INVALID' });
    t.equal(await again.store.stat(wrong), undefined, 'nothing recorded under the claimed digest');
    t.equal(await again.store.stat(digest(Buffer.concat([pieces[0]!, pieces[1]!]))), undefined, 'nor under the real one');
    t.notOk(await look.exists(`blobs/${bad.id}`), 'the checked object is deleted');
    t.same(await look.keys(`uploads/${bad.id}/`), [], 'no staged tail left');
    await t.rejects(again.store.appendUpload(bad.id, Readable.from([Buffer.from('x')])), { code: 'BLOB_UPLOAD_UNKNOWN' }, 'the upload is gone');
  });

  t.test('without a restart the digest is checked before anything is committed', async (t) => {
    const { first } = setup(t);
    const data = randomBytes(6 * MiB);
    const up = await first.store.startUpload('r/y');
    await first.store.appendUpload(up.id, chunked(data));
    await t.rejects(first.store.commitUpload(up.id, digest(Buffer.from('x'))), { code: 'DIGEST_INVALID' });
    t.notOk(await look.exists(`blobs/${up.id}`), 'no object');
    const blob = await first.store.commitUpload(up.id, digest(data));
    t.ok((await collect(await first.store.open(blob.digest))).equals(data), 'and the upload can still be committed');
  });

  t.test('identical concurrent uploads end as one stored blob', async (t) => {
    const { first } = setup(t);
    const before = await look.keys('blobs/');
    const data = randomBytes(11 * MiB + 7);
    const [a, b] = await Promise.all([first.store.ingest(chunked(data)), first.store.ingest(chunked(data))]);
    t.same(a, b, 'one record');
    const ups = await Promise.all(
      [0, 1].map(async () => {
        const up = await first.store.startUpload('r/same');
        await first.store.appendUpload(up.id, chunked(data.subarray(0, 6 * MiB)));
        return up;
      }),
    );
    const [c, d] = await Promise.all(ups.map((up) => first.store.commitUpload(up.id, digest(data), chunked(data.subarray(6 * MiB)))));
    t.same(c, a, 'chunked uploads of the same bytes resolve to the same record');
    t.same(d, a);
    const added = (await look.keys('blobs/')).filter((k) => !before.includes(k));
    t.same(added, [a.location], 'exactly one object in the bucket for the four uploads');
    t.ok((await collect(await first.store.open(a.digest))).equals(data));
    await first.store.settle(); // the duplicates' staged parts are deleted a little later
    t.same(await first.index.staleUploads(Date.now() + 1000), [], 'no upload rows left');
  });

  t.test('the stale-upload purge removes an abandoned multipart upload', async (t) => {
    const { first } = setup(t);
    const up = await first.store.startUpload('r/stale');
    await first.store.appendUpload(up.id, chunked(randomBytes(13 * MiB)));
    t.equal(view((await first.store.getUpload(up.id))!.state).parts.length, 2, 'two parts uploaded');
    t.same(await look.keys(`uploads/${up.id}/`), [tailIn(`uploads/${up.id}/`, (await first.store.getUpload(up.id))!.state)], 'a tail staged');
    t.equal(await first.store.purgeStaleUploads(60_000), 0, 'fresh uploads stay');
    t.equal(await first.store.purgeStaleUploads(-1), 1, 'the old one goes (AbortMultipartUpload refused by s3rver: ignored)');
    t.equal(await first.store.getUpload(up.id), undefined, 'row gone');
    t.same(await look.keys(`uploads/${up.id}/`), [], 'tail gone');
    t.notOk(await look.exists(`blobs/${up.id}`), 'no object');
  });

  t.test('small blobs (one PutObject) and a client that goes away', async (t) => {
    const { first } = setup(t);
    const small = randomBytes(300);
    const blob = await first.store.putBytes(small, digest(small));
    t.ok((await first.store.readBytes(blob.digest)).equals(small));
    const empty = await first.store.putBytes(Buffer.alloc(0));
    t.equal(empty.size, 0);
    t.equal((await first.store.readBytes(empty.digest)).length, 0);
    await t.rejects(first.store.ingest(failingAfter(randomBytes(7 * MiB))), /went away/);
    await first.store.settle(); // the duplicates' staged parts are deleted a little later
    t.same(await first.index.staleUploads(Date.now() + 1000), [], 'no upload rows left');
  });
});

t.test('factory: storage.driver s3 checks the bucket at start', async (t) => {
  const s3 = await startS3rver(t);
  const base = s3.overrides.storage!.s3!;
  const config = (s3o: Record<string, unknown>) => defaultConfig({ storage: { driver: 's3', s3: { ...base, ...s3o } } });

  const d = await createDriver(config({}));
  t.equal(d.name, 's3');
  t.equal(d.stagedDigest, undefined, 'no stagedDigest: the BlobStore hashes, and after commit on a restart');
  (d as S3Driver).close();

  await t.rejects(createDriver(config({ bucket: '' })), /storage\.s3\.bucket is empty/);
  await t.rejects(createDriver(config({ secretAccessKey: '' })), /go together/);
  await t.rejects(createDriver(config({ bucket: 'nope' })), /cannot reach bucket nope at endpoint http:\/\/127\.0\.0\.1:\d+: NotFound \(HTTP 404\)/);
  await s3.stop();
  await t.rejects(createDriver(config({})), /cannot reach bucket registry at endpoint http:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/);
});
