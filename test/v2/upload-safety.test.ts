import { randomBytes } from 'node:crypto';
import t from 'tap';
import { http } from '../helpers/http';
import { startRegistry } from '../helpers/server';
import { as, startTenantRegistry, type Tenant } from '../helpers/tenants';
import { sha256 } from '../helpers/v2';

// Issue 22, items 1 and 7: the stale-upload purge racing a PUT, and the number of uploads one caller keeps open.

/** POST an upload in `repo` and PATCH `data` into it; returns its URL path. */
async function openUpload(url: string, user: Tenant, repo: string, data: Buffer): Promise<string> {
  const post = await http(url, 'POST', `/v2/${repo}/blobs/uploads/`, undefined, as(user));
  if (post.status !== 202) throw new Error(`POST: ${post.status}`);
  const location = new URL(post.headers.get('location')!, url);
  const patch = await http(url, 'PATCH', location.pathname, data, { ...as(user), 'content-type': 'application/octet-stream' });
  if (patch.status !== 202) throw new Error(`PATCH: ${patch.status}`);
  return location.pathname;
}

t.test("a PUT racing the stale-upload purge never links another tenant's blob", async (t) => {
  const reg = await startTenantRegistry(t, { log: { level: 'silent' } });
  const size = 256 * 1024;
  const secret = randomBytes(size);
  const d = sha256(secret);
  const push = await http(reg.url, 'POST', `/v2/team-a/vault/blobs/uploads/?digest=${d}`, secret, { ...as('alice'), 'content-type': 'application/octet-stream' });
  t.equal(push.status, 201, "alice's private blob");

  let created = 0;
  const statuses = new Set<number>();
  for (let round = 0; round < 25; round++) {
    const uploads = await Promise.all(Array.from({ length: 6 }, () => openUpload(reg.url, 'carol', 'carol/loot', randomBytes(size))));
    const purge = reg.app.registry.blobs.purgeStaleUploads(-60_000); // every upload counts as stale
    const puts = uploads.map(async (path) => {
      // Keep trying while the purge runs, as the attack did.
      for (let i = 0; i < 4; i++) {
        const r = await http(reg.url, 'PUT', `${path}?digest=${d}`, undefined, as('carol'));
        statuses.add(r.status);
        if (r.status === 201) created++;
        if (r.status === 404) break;
      }
    });
    await Promise.all([purge, ...puts]);
  }
  t.equal(created, 0, 'no PUT was accepted');
  t.notOk(statuses.has(500), `no 500 (${[...statuses].join(', ')})`);
  const steal = await http(reg.url, 'GET', `/v2/carol/loot/blobs/${d}`, undefined, as('carol'));
  t.equal(steal.status, 404, "carol/loot does not serve alice's blob");
});

t.test('uploads.maxOpen bounds the uploads one caller keeps open', async (t) => {
  const reg = await startTenantRegistry(t, { uploads: { maxOpen: 3 } });
  const post = (user: Tenant) => http(reg.url, 'POST', `/v2/${user}/x/blobs/uploads/`, undefined, as(user));
  const first = await Promise.all([post('carol'), post('carol'), post('carol'), post('carol'), post('carol')]);
  t.same(first.map((r) => r.status).sort(), [202, 202, 202, 429, 429], 'concurrent POSTs do not slip past the limit');
  const refused = first.find((r) => r.status === 429)!;
  t.equal(refused.json.errors[0].code, 'TOOMANYREQUESTS');
  t.equal((await post('bob')).status, 202, 'other users are not affected');
  const open = first.find((r) => r.status === 202)!;
  const del = await http(reg.url, 'DELETE', new URL(open.headers.get('location')!, reg.url).pathname, undefined, as('carol'));
  t.equal(del.status, 204);
  t.equal((await post('carol')).status, 202, 'a cancelled upload frees its place');
  const mono = randomBytes(100);
  const whole = await http(reg.url, 'POST', `/v2/carol/x/blobs/uploads/?digest=${sha256(mono)}`, mono, as('carol'));
  t.equal(whole.status, 201, 'a monolithic upload keeps nothing open, so it is not limited');

  const open2 = await startRegistry(t, { uploads: { maxOpen: 1 } });
  t.equal((await http(open2.url, 'POST', '/v2/anon/x/blobs/uploads/')).status, 202);
  t.equal((await http(open2.url, 'POST', '/v2/anon/x/blobs/uploads/')).status, 429, 'anonymous callers are counted by address');
});

t.test('a final PUT retried after a crash between moving the bytes and recording them succeeds, with or without its body', async (t) => {
  let reg = await startRegistry(t);
  const crash = () => {
    throw new Error('process stopped here');
  };
  for (const retryWithBody of [true, false]) {
    const data = randomBytes(300_000);
    const [head, tail] = [data.subarray(0, 200_000), data.subarray(200_000)];
    const post = await http(reg.url, 'POST', '/v2/crash/r/blobs/uploads/');
    const path = new URL(post.headers.get('location')!, reg.url).pathname;
    t.equal((await http(reg.url, 'PATCH', path, head, { 'content-type': 'application/octet-stream' })).status, 202);
    // The PUT's own work, stopped where a kill -9 would leave it: bytes moved into place, index not written.
    const id = path.split('/').pop()!;
    const { Readable } = await import('node:stream');
    await t.rejects(reg.app.registry.blobs.commitUpload(id, sha256(data) as never, Readable.from([tail]), { onStored: crash }));
    reg = await reg.restart();
    const patch = await http(reg.url, 'PATCH', path, randomBytes(10), { 'content-type': 'application/octet-stream' });
    t.same([patch.status, patch.json?.errors?.[0]?.code], [400, 'BLOB_UPLOAD_INVALID'], 'no more bytes once a final PUT was committing');
    const retry = await http(reg.url, 'PUT', `${path}?digest=${sha256(data)}`, retryWithBody ? tail : undefined, { 'content-type': 'application/octet-stream' });
    t.equal(retry.status, 201, `the retried PUT ${retryWithBody ? 'with' : 'without'} its last chunk is accepted`);
    const blob = await http(reg.url, 'GET', `/v2/crash/r/blobs/${sha256(data)}`);
    t.ok(blob.status === 200 && blob.buf.equals(data), 'and the blob is whole');
  }
});

t.test('at start, staged uploads that can never resume are removed; resumable ones stay', async (t) => {
  const { mkdirSync, readdirSync, writeFileSync, rmSync } = await import('node:fs');
  const path = await import('node:path');
  const reg = await startRegistry(t);
  const index = reg.app.registry.index;
  const uploadsDir = path.join(reg.dir, 'blobs', 'uploads');
  const open = async () => {
    const post = await http(reg.url, 'POST', '/v2/start/r/blobs/uploads/');
    const loc = new URL(post.headers.get('location')!, reg.url).pathname;
    await http(reg.url, 'PATCH', loc, randomBytes(1000), { 'content-type': 'application/octet-stream' });
    return loc.split('/').pop()!;
  };
  const resumable = await open();
  const lostBytes = await open();
  rmSync(path.join(uploadsDir, lostBytes)); // bytes gone, no digest recorded before a move: cannot go on
  const movedBeforeCrash = await open();
  await index.setUploadDigest(movedBeforeCrash, sha256('x') as never, 1000, {});
  rmSync(path.join(uploadsDir, movedBeforeCrash)); // a retried PUT still finishes it (see above)
  await index.createUpload('oneshot', null, {}); // a monolithic PUT or v1 layer cut off by a stop
  writeFileSync(path.join(uploadsDir, 'oneshot'), randomBytes(5000));
  writeFileSync(path.join(uploadsDir, 'orphan'), randomBytes(7000)); // staged bytes no row names
  mkdirSync(path.join(uploadsDir, 'not-ours.d'));

  const again = await reg.restart();
  const left = (await again.app.registry.index.allUploads()).map((u) => u.id).sort();
  t.same(left, [resumable, movedBeforeCrash].sort(), 'only resumable uploads are left');
  t.same(readdirSync(uploadsDir).sort(), [resumable, 'not-ours.d'].sort(), 'and only their staged files');
  const status = await http(again.url, 'GET', `/v2/start/r/blobs/uploads/${resumable}`);
  t.equal(status.headers.get('range'), '0-999', 'the resumable one goes on where it was');
});
