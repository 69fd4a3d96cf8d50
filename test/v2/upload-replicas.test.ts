import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { DeepPartial } from '../../src/config/load';
import type { Config } from '../../src/config/schema';
import { newPostgresDatabase, sharedPostgres } from '../helpers/index-db';
import { startS3rver } from '../helpers/s3rver';
import { startRegistry, tempDir, type TestRegistry } from '../helpers/server';

// One upload, two replicas (two registries on one PostgreSQL index and one store): a request writing to an
// upload on one replica holds it against the others (src/index/upload-locks.ts). Without that, two PATCHes
// from the same offset on two replicas both land in the same staged bytes, and a commit on the replica whose
// running hash says X can record bytes Y under X's digest, for every tenant that pushes X later.

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const REPO = 'team/app';

async function twoReplicas(t: Test, storage: 'local' | 's3'): Promise<[TestRegistry, TestRegistry]> {
  const url = await newPostgresDatabase();
  const store: DeepPartial<Config>['storage'] =
    storage === 's3' ? (await startS3rver(t)).overrides.storage : { driver: 'local', local: { root: path.join(tempDir(t), 'blobs'), shared: true } };
  const overrides = { index: { driver: 'postgres', postgres: { url, maxConnections: 4 } }, storage: store } as DeepPartial<Config>;
  return [await startRegistry(t, overrides), await startRegistry(t, overrides)];
}

async function startUpload(reg: TestRegistry): Promise<string> {
  const r = await fetch(`${reg.url}/v2/${REPO}/blobs/uploads/`, { method: 'POST' });
  if (r.status !== 202) throw new Error(`POST: ${r.status}`);
  return new URL(r.headers.get('location')!, reg.url).pathname;
}

interface Answer {
  status: number;
  body: string;
}

/** A PATCH whose body is written by the caller: the request stays open until end(). */
function openPatch(reg: TestRegistry, upload: string, contentRange?: string) {
  const req = http.request(`${reg.url}${upload}`, {
    method: 'PATCH',
    headers: { 'content-type': 'application/octet-stream', ...(contentRange ? { 'content-range': contentRange } : {}) },
  });
  const answer = new Promise<Answer>((resolve, reject) => {
    req.on('response', (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
  });
  return { write: (b: Buffer) => req.write(b), end: (b?: Buffer) => (req.end(b), answer), answer };
}

const patch = (reg: TestRegistry, upload: string, body: Buffer, contentRange?: string) => openPatch(reg, upload, contentRange).end(body);

/** Until `reg` has a request appending to an upload: it has taken the upload. */
async function appending(reg: TestRegistry): Promise<void> {
  for (let i = 0; i < 500 && reg.app.registry.blobs.appendsInFlight().uploads === 0; i++) await new Promise((r) => setTimeout(r, 10));
  if (reg.app.registry.blobs.appendsInFlight().uploads === 0) throw new Error('no append started');
}

async function finish(reg: TestRegistry, upload: string, digest: string): Promise<number> {
  return (await fetch(`${reg.url}${upload}?digest=${digest}`, { method: 'PUT' })).status;
}

async function blobBytes(reg: TestRegistry, digest: string): Promise<Buffer | number> {
  const r = await fetch(`${reg.url}/v2/${REPO}/blobs/${digest}`);
  return r.status === 200 ? Buffer.from(await r.arrayBuffer()) : r.status;
}

for (const storage of ['local', 's3'] as const) {
  t.test(`${storage}: a PATCH on one replica while another writes the same upload is refused (416) and changes nothing`, async (t) => {
    const [a, b] = await twoReplicas(t, storage);
    const upload = await startUpload(a);
    const first = randomBytes(64 * 1024);
    const rest = randomBytes(64 * 1024);
    const slow = openPatch(a, upload);
    slow.write(first);
    await appending(a);

    const other = await patch(b, upload, randomBytes(1024));
    t.equal(other.status, 416, 'the other replica refuses the second writer');
    t.match(JSON.parse(other.body).errors[0], { code: 'RANGE_INVALID', message: /another request is writing/ });

    const done = await slow.end(rest);
    t.equal(done.status, 202, 'the first writer finishes');
    const all = Buffer.concat([first, rest]);
    t.equal(await finish(b, upload, sha256(all)), 201, 'and the upload is finished on the other replica');
    t.same(await blobBytes(a, sha256(all)), all, 'the blob is the first writer\'s bytes, nothing of the refused one');
  });

  t.test(`${storage}: two PATCHes from offset 0 on two replicas, 30 rounds: one wins, and a blob is always its digest's bytes`, async (t) => {
    const [a, b] = await twoReplicas(t, storage);
    let poisoned = 0;
    let bothAccepted = 0;
    for (let round = 0; round < 30; round++) {
      const upload = await startUpload(round % 2 ? a : b);
      const x = randomBytes(256 * 1024);
      const y = randomBytes(256 * 1024);
      const range = `0-${x.length - 1}`;
      const [ax, by] = await Promise.all([patch(a, upload, x, range), patch(b, upload, y, range)]);
      const won = [ax, by].filter((r) => r.status === 202).length;
      if (won === 2) bothAccepted++;
      t.ok(won >= 1 && [ax, by].every((r) => r.status === 202 || r.status === 416), `round ${round}: ${ax.status}, ${by.status}`);
      // Finished where the winner's running hash is: the replica that would trust it.
      const [winner, bytes] = ax.status === 202 ? [a, x] : [b, y];
      const status = await finish(winner, upload, sha256(bytes));
      if (status !== 201) continue; // a mix of both writes refused by its digest: not stored, so harmless
      const stored = await blobBytes(a, sha256(bytes));
      if (!(Buffer.isBuffer(stored) && sha256(stored) === sha256(bytes))) poisoned++;
    }
    t.equal(bothAccepted, 0, 'never both writers accepted');
    t.equal(poisoned, 0, 'no blob served with bytes that are not its digest\'s');
  });

  t.test(`${storage}: the stale-upload purge on one replica leaves alone an upload another replica is writing`, async (t) => {
    const [a, b] = await twoReplicas(t, storage);
    const upload = await startUpload(b);
    const first = randomBytes(32 * 1024);
    const slow = openPatch(b, upload);
    slow.write(first);
    await appending(b);
    await new Promise((r) => setTimeout(r, 20));
    t.equal(await a.app.registry.blobs.purgeStaleUploads(0), 0, 'the purge on the other replica skips it');
    t.equal((await slow.end()).status, 202);
    t.equal(await finish(b, upload, sha256(first)), 201, 'the upload finishes');
    t.same(await blobBytes(a, sha256(first)), first);
  });
}

t.test('a writer whose hold breaks (its lock session ended) records nothing; another replica resumes from what was', async (t) => {
  const [a, b] = await twoReplicas(t, 'local');
  const upload = await startUpload(a);
  const head = randomBytes(16 * 1024);
  t.equal((await patch(a, upload, head)).status, 202, 'a first chunk is recorded');

  const slow = openPatch(a, upload);
  slow.write(randomBytes(16 * 1024));
  await appending(a);
  const db = new URL(a.config.index.postgres.url).pathname.slice(1);
  const ended = await (await sharedPostgres()).admin((c) =>
    c.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'tsregistry-uploads' AND datname = $1", [db]),
  );
  t.equal(ended.rowCount, 1, "the replica's upload-lock session was ended");
  await new Promise((r) => setTimeout(r, 100));
  const broken = await slow.end(randomBytes(16 * 1024));
  t.equal(broken.status, 503, 'the writer that lost its hold fails as unavailable');
  t.match(JSON.parse(broken.body).errors[0], { code: 'UNAVAILABLE' });

  const tail = randomBytes(8 * 1024);
  const resumed = await patch(b, upload, tail, `${head.length}-${head.length + tail.length - 1}`);
  t.equal(resumed.status, 202, 'another replica appends from the last recorded offset');
  const all = Buffer.concat([head, tail]);
  t.equal(await finish(a, upload, sha256(all)), 201, 'and the replica whose session ended finishes it on a new one');
  t.same(await blobBytes(b, sha256(all)), all);
});
