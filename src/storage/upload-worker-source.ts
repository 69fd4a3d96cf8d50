// The code of an upload worker thread (started with `eval`, so the same text runs from src/ under the
// tests' TypeScript loader and from dist/). Messages, all keyed by `job` or by the upload `key`:
//   begin  {job, key, file, position, fsync, writebackEvery, direct, hashPrefix}  open the staged file (created at position 0), drop bytes past `position`
//          (left by a failed append), and take the upload's running hash (re-hashing the file's first
//          `position` bytes if this worker has none at that size: a restart, or another worker died; the job's
//          data waits meanwhile, other jobs go on); with hashPrefix, also a hash of it and the appended bytes
//          (v1's payload checksum)
//   data   {job, slab, length}   write slab[0, length) (whole blocks at an aligned position with O_DIRECT: a
//                                page-aligned copy, gathered into 1 MiB writes) and hash it; the slab goes back as {op:'slab'}
//   end    {job}                 write what is gathered, wait for writes and flushes, fsync (if asked), close; the hash now covers the new
//                                bytes: {op:'done', size, hex, flushes, direct} (the digest so far, so a commit right
//                                after needs no message; background flushes run; bytes written with O_DIRECT,
//                                in how many writes; how many slabs waited for a page-aligned copy, and how
//                                many copies are free now; prefixedHex with hashPrefix)
//   abort  {job}                 the body failed: close, put the hash back as it was: {op:'aborted'}
//   digest {req, key, file, size} the sha256 of the first `size` staged bytes: {op:'digest', hex}
//   drop   {key}                 forget the upload's hash
// A write or flush error fails the job once: the file is closed, the hash restored, and {op:'failed', error}
// is sent; later data for the job only returns its slabs. After a failure the caller truncates the file.
export const UPLOAD_WORKER_SOURCE = String.raw`
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const { createHash } = require('node:crypto');

const hashes = new Map(); // key -> { hash, size }
const jobs = new Map();
const ALIGN = 4096; // O_DIRECT wants the memory, the file position and the length aligned (512 on most disks)
// O_DIRECT writes go from page-aligned copies of the slabs (which come from malloc, 16 bytes past a page;
// WebAssembly memory is mapped by V8 on page boundaries). Copying costs ~0.1-0.2 s per GiB on this thread.
// Shared WebAssembly memory as slabs would need no copy, but V8 fills shared memory byte by byte when source
// and target are not 8-byte co-aligned: +0.5 s of main-thread CPU per GiB, measured.
// A job's copies are gathered into writes of DIRECT_WRITE bytes (pwritev): the file system takes writes that
// extend a file one at a time, and on the bench VM 1 GiB took 0.90-0.94 s of disk time in 256 KiB writes,
// 0.57-0.64 s in 1 MiB ones (dd oflag=direct). The writes run on libuv's pool while this thread hashes. When
// every copy is taken, data waits (its slab with it, which holds the body back) until a write ends: writing
// synchronously instead kept this thread from seeing the writes that had ended, and most slabs went that way.
const BOUNCE = 256 * 1024;
const BOUNCES = 16;
const DIRECT_WRITE = 1024 * 1024;
// V8 reserves ~10 GiB of address space for any WebAssembly memory (its guard regions). Under a virtual memory
// limit (ulimit -v, systemd's LimitAS) it cannot: then there are no copies, and every byte goes through the
// page cache.
let bounceMemory = null;
try {
  bounceMemory = new WebAssembly.Memory({ initial: 4 * BOUNCES + 1, maximum: 4 * BOUNCES + 1 }).buffer;
} catch (err) {
  parentPort.postMessage({ op: 'noDirect', message: 'uploads are written through the page cache, not with O_DIRECT: ' +
    'no address space for the page-aligned copies (' + err.message + '; a virtual memory limit, ulimit -v?)' });
}
const skew = workerData.misalign ? 16 : 0;
const bounces = [];
if (bounceMemory) for (let i = 0; i < BOUNCES; i++) bounces.push(new Uint8Array(bounceMemory, skew + i * BOUNCE, BOUNCE));
const waitingJobs = []; // jobs whose data waits for a copy, in order
let serving = false; // giveBack is handing copies to waiting data (a failure there gives copies back too)

// The running hash of upload 'key' at 'size' bytes: the live one, or the first 'size' bytes of the staged
// file re-hashed (a restart, or another worker died). The reads run on libuv's pool, 1 MiB at a time, the next
// one while this thread hashes the last, so the other uploads on this worker go on meanwhile: a resumed upload
// of several GiB takes seconds to re-hash.
function hashAt(key, fd, size, done) {
  const live = hashes.get(key);
  if (live && live.size === size) return done(null, live.hash);
  const hash = createHash('sha256');
  const chunk = Math.min(size, 1024 * 1024);
  const bufs = [Buffer.allocUnsafe(chunk), Buffer.allocUnsafe(chunk)];
  let asked = 0;
  let turn = 0;
  const read = () => {
    const buf = bufs[turn++ % 2];
    const len = Math.min(chunk, size - asked);
    fs.read(fd, buf, 0, len, asked, (err, n) => {
      // A regular file reads short only at its end.
      if (!err && n !== len) err = Object.assign(new Error('staged file is shorter than ' + size + ' bytes'), { code: 'ESHORT' });
      if (err) return done(err);
      const last = asked === size;
      if (!last) read();
      hash.update(buf.subarray(0, n));
      if (last) finish();
    });
    asked += len;
  };
  const finish = () => {
    hashes.set(key, { hash, size });
    done(null, hash);
  };
  if (size === 0) return finish();
  read();
}

function writeAll(fd, bytes, from, pos) {
  for (let off = from; off < bytes.length; ) {
    const n = fs.writeSync(fd, bytes, off, bytes.length - off, pos + off);
    if (n === 0) throw new Error('write made no progress');
    off += n;
  }
}

// How many of the bytes (whole blocks from an aligned position) go to the file with O_DIRECT: the page cache
// copy is the largest CPU cost of an upload on VMs whose fresh memory pages are slow to fault in (on the
// bench VM a buffered 1 GiB write took 2.1-2.3 s of system CPU, O_DIRECT 0.2-0.5 s).
function directLength(job, bytes) {
  if (job.direct < 0 || job.directOff || job.pos % ALIGN !== 0) return 0;
  return bytes.length - (bytes.length % ALIGN);
}

// Gather a page-aligned copy of bytes[0, n) (file position pos) into the job's next O_DIRECT write; false if
// every copy is taken (then everything gathered is written, so that copies come back).
function gatherDirect(job, bytes, n, pos) {
  if (job.gathered.length > 0 && job.gatheredPos + job.gatheredBytes !== pos) writeGathered(job);
  const copy = bounces.pop();
  if (!copy) {
    for (const other of jobs.values()) if (other.gathered && other.gathered.length > 0) writeGathered(other);
    return false;
  }
  copy.set(bytes.subarray(0, n));
  if (job.gathered.length === 0) job.gatheredPos = pos;
  job.gathered.push(copy.subarray(0, n));
  job.gatheredBytes += n;
  if (job.gatheredBytes >= DIRECT_WRITE) writeGathered(job);
  return true;
}

// Write the job's gathered copies with O_DIRECT, on libuv's pool. A write in flight cannot outlive this
// worker: terminate() waits for it (checked with a write blocked on a full pipe: the worker's 'exit' came
// only once the pipe was drained). What O_DIRECT will not take (EINVAL: another alignment, or none on this
// file system) is written plainly, as is the rest of a short write (a full disk, a size limit: that plain
// write reports the error).
function writeGathered(job) {
  const pieces = job.gathered;
  const pos = job.gatheredPos;
  job.gathered = [];
  job.gatheredBytes = 0;
  job.writes++;
  job.writing++;
  fs.writev(job.direct, pieces, pos, (err, written) => {
    try {
      if (err && err.code !== 'EINVAL') throw err;
      if (err) job.directOff = true;
      directDone(job, pieces, pos, err ? 0 : written);
    } catch (e) {
      fail(job, e);
    }
    job.writing--;
    if (job.writing === 0 && job.drained) job.drained();
    giveBack(pieces);
  });
}

// Copies come back: data that waited for them goes on, in order.
function giveBack(pieces) {
  for (const p of pieces) bounces.push(new Uint8Array(p.buffer, p.byteOffset, BOUNCE));
  if (serving) return;
  serving = true;
  try {
    while (waitingJobs.length > 0 && bounces.length > 0) {
      const job = waitingJobs[0];
      while (job.queue.length > 0 && writeData(job, job.queue[0])) job.queue.shift();
      if (job.queue.length > 0) return;
      waitingJobs.shift();
      if (job.ending) endJob(job, job.ending);
    }
  } finally {
    serving = false;
  }
}

// Count what O_DIRECT took and write the rest plainly.
function directDone(job, pieces, pos, written) {
  job.directBytes += written;
  for (const piece of pieces) {
    const from = Math.min(Math.max(written, 0), piece.length);
    writeAll(job.fd, piece, from, pos);
    job.dirty += piece.length - from;
    written -= piece.length;
    pos += piece.length;
  }
}

function errorOf(err) {
  return { message: String(err && err.message), code: err && err.code, errno: err && err.errno, syscall: err && err.syscall };
}

function flush(job) {
  if (job.flushing || job.dirty < job.writebackEvery) return;
  job.dirty = 0;
  job.flushes++;
  job.flushing = new Promise((resolve) =>
    fs.fdatasync(job.fd, (err) => {
      job.flushing = null;
      if (err) fail(job, err);
      resolve();
    }),
  );
}

// Close the job's file after any flush in flight (and fsync it if asked, on success).
async function close(job, ok) {
  if (job.gathered.length > 0) {
    // On failure the caller truncates these bytes away: drop them.
    if (ok && !job.error) writeGathered(job);
    else {
      giveBack(job.gathered);
      job.gathered = [];
    }
  }
  while (job.writing > 0) await new Promise((resolve) => (job.drained = resolve));
  while (job.flushing) await job.flushing;
  if (job.error) ok = false;
  try {
    if (ok && job.fsync) await new Promise((resolve, reject) => fs.fsync(job.fd, (e) => (e ? reject(e) : resolve())));
  } catch (err) {
    ok = false;
    job.error = job.error || err;
  }
  // On failure the hash goes back to where the append began (the caller truncates the file).
  hashes.set(job.key, ok ? { hash: job.hash, size: job.pos } : { hash: job.backup, size: job.start });
  closeFiles(job);
  jobs.delete(job.job);
  return ok;
}

function closeFiles(job) {
  try { fs.closeSync(job.fd); } catch {}
  if (job.direct >= 0) try { fs.closeSync(job.direct); } catch {}
}

// A data message's slab goes back to the main thread, to be filled again.
function sendBack(m) {
  parentPort.postMessage({ op: 'slab', job: m.job, slab: m.slab }, [m.slab]);
}

function fail(job, err) {
  if (job.error) return;
  job.error = err;
  if (job.closing) return; // the close in progress sees the error and answers 'failed'
  close(job, false).then(() => parentPort.postMessage({ op: 'failed', job: job.job, error: errorOf(err) }));
}

// Write and hash one slab, and send it back; false if it waits for a page-aligned copy (hashed already).
function writeData(job, m) {
  if (!job.error) {
    const bytes = new Uint8Array(m.slab, 0, m.length);
    try {
      if (!m.hashed) {
        job.hash.update(bytes);
        if (job.prefixed) job.prefixed.update(bytes);
        m.hashed = true;
      }
      const direct = directLength(job, bytes);
      if (direct > 0 && !gatherDirect(job, bytes, direct, job.pos)) return false;
      writeAll(job.fd, bytes, direct, job.pos); // the tail that is not whole blocks
      job.dirty += bytes.length - direct;
      job.pos += bytes.length;
      flush(job);
    } catch (err) {
      fail(job, err);
    }
  }
  sendBack(m);
  return true;
}

function endJob(job, m) {
  job.ending = null;
  if (job.error) return; // 'failed' is (or will be) sent by fail()
  job.closing = true;
  close(job, m.op === 'end').then((ok) => {
    if (m.op === 'abort') parentPort.postMessage({ op: 'aborted', job: m.job });
    else if (ok) parentPort.postMessage({ op: 'done', job: m.job, size: job.pos, hex: job.hash.copy().digest('hex'), flushes: job.flushes, direct: job.directBytes, writes: job.writes, waited: job.waited, copiesFree: bounces.length, prefixedHex: job.prefixed ? job.prefixed.digest('hex') : undefined });
    else parentPort.postMessage({ op: 'failed', job: m.job, error: errorOf(job.error) });
  });
}

// A job that never began (its file would not open, or its hash could not be rebuilt): the data that waits goes
// back, later data is ignored, and an end or abort is answered by this 'failed'.
function failBegin(job, err) {
  job.queue.splice(0).forEach(sendBack);
  if (job.ending) jobs.delete(job.job);
  else jobs.set(job.job, { job: job.job, error: err, closing: false, failedEarly: true });
  parentPort.postMessage({ op: 'failed', job: job.job, error: errorOf(err) });
}

parentPort.on('message', (m) => {
  if (m.op === 'data') {
    const job = jobs.get(m.job);
    if (!job || job.failedEarly) sendBack(m);
    else if (!job.hash) job.queue.push(m); // the hash is being rebuilt: served once it is
    else if (job.queue.length > 0 || !writeData(job, m)) {
      // It waits for a copy, or behind data that does.
      job.waited++;
      if (job.queue.push(m) === 1) waitingJobs.push(job);
    }
  } else if (m.op === 'begin') {
    let fd;
    try {
      // At position 0 a missing file is created: a restart can leave an upload's row without it (a crash
      // right after the row was written, or after a commit moved the file and before the index recorded it).
      fd = fs.openSync(m.file, fs.constants.O_RDWR | (m.position === 0 ? fs.constants.O_CREAT : 0));
      if (fs.fstatSync(fd).size > m.position) fs.ftruncateSync(fd, m.position);
    } catch (err) {
      if (fd !== undefined) try { fs.closeSync(fd); } catch {}
      return failBegin({ job: m.job, queue: [], ending: null }, err);
    }
    let direct = -1;
    if (m.direct !== false && bounceMemory) try { direct = fs.openSync(m.file, fs.constants.O_WRONLY | fs.constants.O_DIRECT); } catch {}
    // Until the hash is there (hashAt may take a while), data and the end wait in the job's queue.
    const job = {
      job: m.job, key: m.key, fd, direct, start: m.position, pos: m.position, fsync: m.fsync,
      writebackEvery: m.writebackEvery > 0 ? m.writebackEvery : Infinity, dirty: 0, flushes: 0,
      directOff: false, directBytes: 0, gathered: [], gatheredPos: 0, gatheredBytes: 0, writes: 0, waited: 0, writing: 0, drained: null, queue: [], ending: null,
      flushing: null, backup: null, hash: null, prefixed: m.hashPrefix ? createHash('sha256').update(m.hashPrefix) : null, error: null, closing: false,
    };
    jobs.set(m.job, job);
    hashAt(m.key, fd, m.position, (err, hash) => {
      if (err) {
        closeFiles(job);
        return failBegin(job, err);
      }
      job.backup = hash.copy();
      job.hash = hash;
      while (job.queue.length > 0 && writeData(job, job.queue[0])) job.queue.shift();
      if (job.queue.length > 0) waitingJobs.push(job); // for a page-aligned copy
      else if (job.ending) endJob(job, job.ending);
    });
  } else if (m.op === 'end' || m.op === 'abort') {
    const job = jobs.get(m.job);
    if (!job || job.failedEarly) {
      jobs.delete(m.job);
      return; // already answered with 'failed'
    }
    if (m.op === 'abort') {
      // The body failed: what waits is not written.
      job.queue.splice(0).forEach(sendBack);
      if (waitingJobs.includes(job)) waitingJobs.splice(waitingJobs.indexOf(job), 1);
    }
    if (!job.hash || job.queue.length > 0) job.ending = m; // after the hash, and the data that waits
    else endJob(job, m);
  } else if (m.op === 'digest') {
    let fd;
    const reply = (err, hash) => {
      if (fd !== undefined) try { fs.closeSync(fd); } catch {}
      parentPort.postMessage(err ? { op: 'digest', req: m.req, error: errorOf(err) } : { op: 'digest', req: m.req, hex: hash.copy().digest('hex') });
    };
    const live = hashes.get(m.key);
    if (live && live.size === m.size) return reply(null, live.hash);
    try {
      fd = fs.openSync(m.file, 'r');
    } catch (err) {
      return reply(err);
    }
    hashAt(m.key, fd, m.size, reply);
  } else if (m.op === 'drop') {
    hashes.delete(m.key);
  }
});
`;
