import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, constants, openSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { once } from 'node:events';
import { PassThrough, Readable } from 'node:stream';
import t from 'tap';
import { UploadWorkers } from '../../src/storage/upload-workers';
import { tempDir } from '../helpers/server';

const MiB = 1024 * 1024;
const sha = (...parts: Buffer[]) => createHash('sha256').update(Buffer.concat(parts)).digest('hex');

/** Uneven chunks (1 byte .. ~300 KiB, so some cross the 256 KiB slabs), `total` bytes in all. */
function chunks(total: number, seed = 1): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0, left = total; left > 0; i++) {
    const n = Math.min(left, 1 + ((i * 7919 * seed) % (300 * 1024)));
    out.push(randomBytes(n));
    left -= n;
  }
  return out;
}

/** Bytes of the slabs appends hold beyond their first: what the 8 MiB budget bounds. */
function extraSlabBytes(workers: UploadWorkers): number {
  const jobs = (workers as unknown as { jobs: Map<number, { slabs: number }> }).jobs;
  let extra = 0;
  for (const job of jobs.values()) extra += Math.max(0, job.slabs - 1) * 256 * 1024;
  return extra;
}

function setup(t: Parameters<typeof tempDir>[0], size?: number) {
  const workers = new UploadWorkers(size);
  t.teardown(() => workers.close());
  const file = path.join(tempDir(t), 'staged');
  writeFileSync(file, '');
  const opts = (position: number) => ({ file, position, fsync: true, writebackEvery: 1 * MiB });
  return { workers, file, opts };
}

t.test('appends write every byte in order and extend one running hash', async (t) => {
  const { workers, file, opts } = setup(t);
  const a = chunks(3 * MiB + 17);
  const b = chunks(3 * MiB, 3);
  await workers.append('u1', opts(0), Readable.from(a));
  // From an unaligned position every byte goes through the page cache, flushed in the background.
  const { flushes, direct } = await workers.append('u1', opts(3 * MiB + 17), Readable.from(b));
  t.equal(direct, 0, 'no O_DIRECT write from an unaligned position');
  t.ok(flushes >= 1 && flushes <= 3, `background flushes every 1 MiB, one at a time: ${flushes} for 3 MiB`);
  const all = Buffer.concat([...a, ...b]);
  t.equal(sha(readFileSync(file)), sha(all), 'file holds both appends');
  t.equal(await workers.digest('u1', file, all.length), sha(all), 'running hash covers both');
  t.equal(await workers.digest('u1', file, all.length), sha(all), 'digest does not consume the hash');
  await workers.append('u1', opts(all.length), Readable.from([]));
  t.equal(await workers.digest('u1', file, all.length), sha(all), 'an empty append changes nothing');
  const other = `${file}-2`;
  writeFileSync(other, '');
  const quietData = chunks(2 * MiB);
  const prefix = Buffer.from('{"id":"json"}\n');
  const quiet = await workers.append('u2', { file: other, position: 0, fsync: true, writebackEvery: 0, hashPrefix: prefix }, Readable.from(quietData));
  t.equal(quiet.flushes, 0, 'writeback off: no background flush');
  t.equal(quiet.prefixedHex, sha(prefix, ...quietData), 'hashPrefix: the prefix and the appended bytes hashed too');
  t.equal(await workers.digest('u2', other, 2 * MiB), sha(...quietData), 'the running hash is of the bytes alone');
  t.equal((await workers.append('u1', opts(all.length), Readable.from([]))).prefixedHex, undefined, 'no prefix, no second hash');
});

t.test('whole blocks from an aligned position are written with O_DIRECT, the rest plainly; refused, all plainly', async (t) => {
  const { workers, file, opts } = setup(t);
  const directOk = (() => {
    try {
      closeSync(openSync(file, constants.O_WRONLY | constants.O_DIRECT));
      return true;
    } catch {
      return false;
    }
  })();
  const data = chunks(2 * MiB + 5000, 5);
  const { direct, flushes, writes } = await workers.append('d', opts(0), Readable.from(data));
  const all = Buffer.concat(data);
  t.equal(direct, directOk ? 2 * MiB + 4096 : 0, `whole 4 KiB blocks with O_DIRECT (${directOk ? 'supported here' : 'not supported here'})`);
  if (directOk) {
    t.equal(flushes, 0, 'nothing left in the page cache to flush in the background');
    // One write per slab would be 9 (a 64 KiB first slab, then 256 KiB ones).
    t.ok(writes >= 2 && writes <= 3, `gathered into writes of 1 MiB or more, but for the last: ${writes}`);
  }
  t.equal(sha(readFileSync(file)), sha(all), 'the file holds every byte in order');
  t.equal(await workers.digest('d', file, all.length), sha(all));
  const off = `${file}-off`;
  writeFileSync(off, '');
  const asked = await workers.append('o', { file: off, position: 0, fsync: true, writebackEvery: 1 * MiB, direct: false }, Readable.from(data));
  t.equal(asked.direct, 0, 'direct: false (storage.local.directWrites) writes through the page cache');
  t.ok(asked.flushes >= 1, `and flushes it in the background: ${asked.flushes}`);
  t.equal(sha(readFileSync(off)), sha(all));

  // Eight appends at once on one worker: more whole blocks than its sixteen page-aligned copies, so data
  // waits for writes to end and give copies back; every file still holds its own bytes.
  const one = new UploadWorkers(1);
  t.teardown(() => one.close());
  const many = Array.from({ length: 8 }, (_, i) => ({ file: `${file}-many-${i}`, data: chunks(2 * MiB, 11 + i) }));
  for (const m of many) writeFileSync(m.file, '');
  const results = await Promise.all(
    many.map((m, i) => one.append(`m${i}`, { file: m.file, position: 0, fsync: false, writebackEvery: 0 }, Readable.from(m.data))),
  );
  t.ok(
    many.every((m) => sha(readFileSync(m.file)) === sha(...m.data)),
    'eight parallel appends on one worker: each file holds its own bytes',
  );
  t.ok(results.every((r) => r.direct === (directOk ? 2 * MiB : 0)), 'all of them with O_DIRECT');
  if (directOk) t.ok(results.some((r) => r.waited > 0), `some data waited for a copy: ${results.map((r) => r.waited).join(' ')}`);

  // The same, with one body failing half-way: its append rejects, what it had waiting is not written (the
  // caller truncates), and the others are whole. Then a lone append finds all sixteen copies back.
  for (const m of many) writeFileSync(m.file, '');
  const failing = async function* () {
    yield* many[0]!.data.slice(0, 4);
    throw new Error('client went away');
  };
  const settled = await Promise.allSettled(
    many.map((m, i) =>
      one.append(`f${i}`, { file: m.file, position: 0, fsync: false, writebackEvery: 0 }, i === 0 ? Readable.from(failing()) : Readable.from(m.data)),
    ),
  );
  t.match(settled[0], { status: 'rejected', reason: { message: 'client went away' } }, 'the failed body rejects its append');
  t.ok(
    many.slice(1).every((m, i) => settled[i + 1]!.status === 'fulfilled' && sha(readFileSync(m.file)) === sha(...m.data)),
    'the seven others hold their own bytes',
  );
  const lone = `${file}-lone`;
  writeFileSync(lone, '');
  // A 64 KiB first slab, then 15 of 256 KiB and 100 bytes: at most sixteen copies taken at once, so with all
  // of them back it never waits, however slow the disk.
  const sixteen = 64 * 1024 + 15 * 256 * 1024;
  const after = await one.append('lone', { file: lone, position: 0, fsync: false, writebackEvery: 0 }, Readable.from([randomBytes(sixteen + 100)]));
  if (directOk) t.match(after, { direct: sixteen, waited: 0, copiesFree: 16 }, 'every copy came back: an append that needs all sixteen never waits');

  // A buffer off its page boundary (the test's misalign option): O_DIRECT answers EINVAL and the bytes go
  // through the page cache instead.
  const plain = new UploadWorkers(1, true);
  t.teardown(() => plain.close());
  const other = `${file}-plain`;
  writeFileSync(other, '');
  const res = await plain.append('p', { file: other, position: 0, fsync: true, writebackEvery: 1 * MiB }, Readable.from(data));
  t.equal(res.direct, 0, 'refused by O_DIRECT: none written with it');
  t.equal(sha(readFileSync(other)), sha(all), 'every byte written anyway');
});

t.test('a write error past the file size limit fails the append with its code, with O_DIRECT or without', async (t) => {
  const dir = tempDir(t);
  const fixture = path.join(__dirname, 'fixtures', 'append-past-limit.ts');
  for (const mode of ['direct', 'plain']) {
    const small = path.join(dir, `small-${mode}`);
    const big = path.join(dir, `big-${mode}`);
    writeFileSync(small, '');
    writeFileSync(big, '');
    const child = spawn(process.execPath, [...process.execArgv, fixture, small, big, mode], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    const exited = once(child, 'exit');
    while (!out.includes('ready\n') && child.exitCode === null) await Promise.race([once(child.stdout, 'data'), exited]);
    // The limit comes after the child's start: its TypeScript loader writes caches of its own.
    const limit = spawnSync('prlimit', ['--pid', String(child.pid), '--fsize=1048576:1048576'], { encoding: 'utf8' });
    t.equal(limit.status, 0, `prlimit ${limit.stderr}`);
    child.stdin.write('go\n');
    const [code, signal] = await exited;
    t.equal(code, 0, `${mode}: the child ran (${signal ?? ''})`);
    const result = JSON.parse(out.trim().split('\n').pop() ?? '{}');
    if (mode === 'direct') t.equal(result.smallDirect, 512 * 1024, 'under the limit, O_DIRECT was used');
    else t.equal(result.smallDirect, 0, 'plain writes only');
    t.same(result.big, { ok: false, code: 'EFBIG' }, `${mode}: 2 MiB past a 1 MiB limit rejects with EFBIG`);
    t.ok(readFileSync(big).length <= 1024 * 1024, 'nothing written past the limit');
  }
});

t.test("the caller's buffers are copied, never taken", async (t) => {
  const { workers, file, opts } = setup(t);
  const big = randomBytes(1 * MiB); // owns its whole ArrayBuffer, so a transfer would detach it
  await workers.append('u', opts(0), Readable.from([big]));
  t.equal(big.length, 1 * MiB, 'still readable after the append');
  t.equal(sha(readFileSync(file)), sha(big));
});

t.test('slabs are reused across appends, and the pool keeps a bounded number of each size', async (t) => {
  const { workers, file, opts } = setup(t);
  const spare = (workers as unknown as { spare: Map<number, ArrayBuffer[]> }).spare;
  const count = () => [...spare.values()].map((s) => s.length);
  await workers.append('u', opts(0), Readable.from([]));
  t.same(count(), [0, 0], 'an empty body takes no slab');
  for (let i = 1; i <= 3; i++) {
    await workers.append('u', opts((i - 1) * 64 * 1024), Readable.from([randomBytes(64 * 1024)]));
    t.same(count(), [1, 0], `64 KiB append ${i}: the one small slab again, no full slab taken for nothing`);
  }
  await workers.append('u', opts(3 * 64 * 1024), Readable.from(chunks(1 * MiB)));
  const [small, full] = count();
  t.equal(small, 1, 'the small first slab went back to the pool');
  t.ok(full >= 1 && full <= 4, `at most 4 full slabs for one append: ${full}`);
  t.equal(readFileSync(file).length, 3 * 64 * 1024 + 1 * MiB, 'every byte written');

  const files = Array.from({ length: 300 }, (_, i) => `${file}-${i}`);
  for (const f of files) writeFileSync(f, '');
  const bodies = files.map(() => new PassThrough());
  const appends = files.map((f, i) => workers.append(`p${i}`, { file: f, position: 0, fsync: false, writebackEvery: 0 }, bodies[i]));
  for (const b of bodies) b.end(randomBytes(64 * 1024));
  await Promise.all(appends);
  t.equal(count()[0], 256, '300 parallel small appends: 256 small slabs kept, the rest left to the garbage collector');

  const kept = 256 * 64 * 1024 + full * 256 * 1024;
  t.equal(workers.releaseSpare(), kept, 'releaseSpare (the server went quiet) lets go of every spare slab');
  t.same(count(), [0, 0]);
  t.equal(workers.releaseSpare(), 0, 'nothing left to let go');
  await workers.append('p0', { file: files[0], position: 64 * 1024, fsync: false, writebackEvery: 0 }, Readable.from([randomBytes(1000)]));
  t.equal(readFileSync(files[0]).length, 64 * 1024 + 1000, 'appends go on with new slabs');
  t.same(count(), [1, 0]);
});

t.test('bytes past the position (left by a failed append) are dropped first', async (t) => {
  const { workers, file, opts } = setup(t);
  const head = randomBytes(1000);
  writeFileSync(file, Buffer.concat([head, randomBytes(5000)]));
  const tail = randomBytes(300);
  await workers.append('u', opts(1000), Readable.from([tail]));
  t.equal(sha(readFileSync(file)), sha(head, tail));
  t.equal(await workers.digest('u', file, 1300), sha(head, tail), 'hash rebuilt from the first 1000 staged bytes');
});

t.test('a body that fails: the append rejects with its error, and the hash is as it was', async (t) => {
  const { workers, file, opts } = setup(t);
  const first = randomBytes(2 * MiB);
  await workers.append('u', opts(0), Readable.from([first]));
  const body = new PassThrough();
  const failing = workers.append('u', opts(first.length), body);
  body.write(randomBytes(1 * MiB));
  setTimeout(() => body.destroy(new Error('client went away')), 20);
  await t.rejects(failing, /client went away/);
  // The caller (the local driver) truncates the file; the hash must not have seen the lost bytes.
  t.equal(await workers.digest('u', file, first.length), sha(first));
  const second = randomBytes(5000);
  await workers.append('u', opts(first.length), Readable.from([second]));
  t.equal(await workers.digest('u', file, first.length + 5000), sha(first, second));
  t.equal(sha(readFileSync(file)), sha(first, second), 'the retry overwrote what the failed append left');
});

t.test('a write error fails the append with its code and stops reading the body', async (t) => {
  const { workers } = setup(t);
  // Every write to /dev/full fails with ENOSPC, like a full disk.
  const body = Readable.from(chunks(4 * MiB));
  await t.rejects(workers.append('full', { file: '/dev/full', position: 0, fsync: false, writebackEvery: 0 }, body), {
    code: 'ENOSPC',
  });
  t.ok(body.destroyed, 'body destroyed');
});

t.test('a staged file that cannot be opened fails the append with its code; at position 0 a missing one is created', async (t) => {
  const { workers, file } = setup(t);
  const missing = `${file}-missing`;
  await t.rejects(workers.append('m', { file: missing, position: 10, fsync: false, writebackEvery: 0 }, Readable.from([])), {
    code: 'ENOENT',
  });
  await t.rejects(workers.digest('m', missing, 10), { code: 'ENOENT' });
  await t.rejects(workers.append('m', { file: path.join(missing, 'x'), position: 0, fsync: false, writebackEvery: 0 }, Readable.from([])), {
    code: 'ENOENT',
  });
  const data = randomBytes(1000);
  await workers.append('m', { file: missing, position: 0, fsync: false, writebackEvery: 0 }, Readable.from([data]));
  t.ok(readFileSync(missing).equals(data), 'created at position 0 (a restart can leave an upload row without its file)');
});

t.test('flow control: a slow worker holds the body back instead of buffering it', async (t) => {
  const { workers, file, opts } = setup(t, 1);
  let read = 0;
  async function* body() {
    for (let i = 0; i < 64; i++) {
      read += 1;
      yield randomBytes(256 * 1024);
    }
  }
  // Keep the only worker busy hashing a large staged file while the append starts.
  const busyFile = path.join(path.dirname(file), 'busy');
  writeFileSync(busyFile, randomBytes(64 * MiB));
  const busy = workers.digest('busy', busyFile, 64 * MiB);
  const append = workers.append('slow', opts(0), body());
  await new Promise((r) => setTimeout(r, 5));
  t.ok(read <= 8, `at most a few slabs read ahead of a busy worker (read ${read} of 64)`);
  await busy;
  await append;
  t.equal(read, 64, 'the whole body once the worker is free');
});

t.test('many appends at once: slabs past each one\'s first stay within an 8 MiB budget', async (t) => {
  const { workers, file } = setup(t, 1);
  const out = () => (workers as unknown as { slabBytes: number }).slabBytes;
  const chunk = Buffer.alloc(256 * 1024, 7);
  let stop = false;
  async function* body() {
    for (let i = 0; i < 16 && !stop; i++) yield chunk;
  }
  const busyFile = path.join(path.dirname(file), 'busy');
  writeFileSync(busyFile, randomBytes(64 * MiB));
  const busy = workers.digest('busy', busyFile, 64 * MiB);
  const appends = Array.from({ length: 40 }, (_, i) => {
    const f = `${file}-${i}`;
    writeFileSync(f, '');
    return workers.append(`m${i}`, { file: f, position: 0, fsync: false, writebackEvery: 0 }, body());
  });
  await new Promise((r) => setTimeout(r, 20));
  const held = out();
  t.ok(held >= 40 * 64 * 1024, `every append has its first slab: ${held} bytes out`);
  t.ok(held <= 8 * MiB + 40 * 256 * 1024, `the budget plus one slab per append at most (four each would be 40 MiB): ${held} bytes out`);
  const extra = extraSlabBytes(workers);
  t.ok(extra > 0 && extra <= 8 * MiB, `slabs beyond each append's first within the budget: ${extra} bytes`);
  stop = true;
  await busy;
  await Promise.all(appends);
  t.equal(out(), 0, 'all given back');
});

t.test('64 appends at once of 1 MiB each: every byte lands, and slabs out never pass the budget plus one slab per append', async (t) => {
  const { workers, file } = setup(t, 2);
  const out = () => (workers as unknown as { slabBytes: number }).slabBytes;
  let most = 0;
  let mostExtra = 0;
  const sample = () => {
    most = Math.max(most, out());
    mostExtra = Math.max(mostExtra, extraSlabBytes(workers));
  };
  const sampler = setInterval(sample, 1);
  const n = 64;
  const data = Array.from({ length: n }, (_, i) => chunks(1 * MiB, i + 2));
  const files = data.map((_, i) => `${file}-${i}`);
  for (const f of files) writeFileSync(f, '');
  // Bodies that hand over a chunk at a time, as sockets do, so the appends interleave.
  async function* body(parts: Buffer[]) {
    for (const p of parts) {
      sample();
      yield p;
      await new Promise((r) => setImmediate(r));
    }
  }
  const results = await Promise.all(
    files.map((f, i) => workers.append(`q${i}`, { file: f, position: 0, fsync: false, writebackEvery: 0 }, body(data[i]!))),
  );
  clearInterval(sampler);
  t.equal(results.length, n);
  for (let i = 0; i < n; i++) {
    if (sha(readFileSync(files[i]!)) !== sha(...data[i]!)) t.fail(`append ${i}: file differs from its body`);
    if ((await workers.digest(`q${i}`, files[i]!, 1 * MiB)) !== sha(...data[i]!)) t.fail(`append ${i}: running hash differs`);
  }
  t.ok(most > 0, `sampled: at most ${(most / MiB).toFixed(2)} MiB out`);
  t.ok(most <= 8 * MiB + n * 256 * 1024, `within the budget plus one slab per append: ${(most / MiB).toFixed(2)} MiB`);
  t.ok(mostExtra <= 8 * MiB, `slabs beyond each append's first within the budget: at most ${(mostExtra / MiB).toFixed(2)} MiB`);
  t.equal(out(), 0, 'all given back');
});

t.test('a worker that dies fails what waits on it; the next append re-hashes the staged bytes', async (t) => {
  const { workers, file, opts } = setup(t, 1);
  const first = randomBytes(3 * MiB);
  await workers.append('u', opts(0), Readable.from([first]));
  const body = new PassThrough();
  const failing = workers.append('u', opts(first.length), body);
  body.write(randomBytes(1 * MiB));
  await new Promise((r) => setTimeout(r, 20));
  const homes = (workers as unknown as { homes: { worker: { terminate(): Promise<number> } }[] }).homes;
  const rejected = t.rejects(failing, /exited/);
  await homes[0]!.worker.terminate();
  body.write(randomBytes(1000)); // the failure is seen when the next chunk arrives (or the body ends)
  await rejected;
  t.ok(body.destroyed, 'body destroyed');
  const second = randomBytes(1000);
  await workers.append('u', opts(first.length), Readable.from([second]));
  t.equal(await workers.digest('u', file, first.length + 1000), sha(first, second), 'a new worker re-hashed the file');
});

t.test('a re-hash (after a restart) reads on libuv\'s pool: the other uploads on the worker go on meanwhile', async (t) => {
  const { workers, file, opts } = setup(t, 1);
  const big = `${file}-sparse`;
  writeFileSync(big, '');
  truncateSync(big, 512 * MiB); // read fast, but still ~0.3 s of reading and hashing
  const order: string[] = [];
  const done = (what: string) => () => void order.push(what);
  const failed = (what: string) => (err: { code?: string }) => void order.push(`${what}: ${err.code}`);
  // One byte past the end: the whole file is re-hashed before that is found (ESHORT).
  const resumed = workers.append('big', { file: big, position: 512 * MiB + 1, fsync: false, writebackEvery: 0 }, Readable.from([randomBytes(1000)]));
  const digest = workers.digest('big2', big, 512 * MiB);
  const small = workers.append('small', opts(0), Readable.from([randomBytes(1000)]));
  await Promise.all([resumed.then(done('resume'), failed('resume')), digest.then(done('digest')), small.then(done('small'))]);
  t.equal(order[0], 'small', `the small append did not wait for the re-hashes: ${order.join(', ')}`);
  t.ok(order.includes('resume: ESHORT'), 'a staged file shorter than the upload fails the append');
  const zeros = createHash('sha256');
  for (let i = 0; i < 512; i++) zeros.update(Buffer.alloc(MiB));
  t.equal(await digest, zeros.digest('hex'), 'the digest re-hashed on the pool is right');

  // Data and the end that arrive during a re-hash wait for it, then go in order.
  const head = randomBytes(32 * MiB);
  writeFileSync(file, head);
  const body = chunks(3 * MiB, 7);
  await workers.append('r', opts(head.length), Readable.from(body));
  t.equal(await workers.digest('r', file, head.length + 3 * MiB), sha(head, ...body), 'the resumed upload hashes as one');
  t.equal(sha(readFileSync(file)), sha(head, ...body), 'and its file holds every byte in order');
  workers.drop('r');
  await workers.append('r', opts(head.length + 3 * MiB), Readable.from([]));
  t.equal(await workers.digest('r', file, head.length + 3 * MiB), sha(head, ...body), 'an empty body: the end waits for the re-hash');
  workers.drop('r');
  const failing = new Readable({ read() { this.destroy(Object.assign(new Error('client went away'), { code: 'ECONNRESET' })); } });
  await t.rejects(workers.append('r', opts(head.length + 3 * MiB), failing), { code: 'ECONNRESET' }, 'a body that fails during the re-hash');
  t.equal(await workers.digest('r', file, head.length + 3 * MiB), sha(head, ...body), 'the hash is where the append began');
});

t.test('the digest after an append comes with its answer: no message to the worker', async (t) => {
  const { workers, file, opts } = setup(t, 1);
  const data = randomBytes(300 * 1024);
  await workers.append('u', opts(0), Readable.from([data]));
  const homes = (workers as unknown as { homes: { worker: { terminate(): Promise<number> } }[] }).homes;
  await homes[0]!.worker.terminate(); // a digest that needed the worker would now fail
  t.equal(await workers.digest('u', file, data.length), sha(data));
  workers.drop('u');
  t.equal(await workers.digest('u', file, data.length), sha(data), 'after drop: re-hashed from the file by a new worker');
});
