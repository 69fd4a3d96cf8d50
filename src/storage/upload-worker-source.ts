// The code of an upload worker thread (started with `eval`, so the same text runs from src/ under the
// tests' TypeScript loader and from dist/). Messages, all keyed by `job` or by the upload `key`:
//   begin  {job, key, file, position, fsync, writebackEvery, direct}  open the staged file (created at position 0), drop bytes past `position`
//          (left by a failed append), and take the upload's running hash (re-hashing the file's first
//          `position` bytes if this worker has none at that size: a restart, or another worker died)
//   data   {job, slab, length}   write slab[0, length) (whole blocks at an aligned position with O_DIRECT, through
//                                a page-aligned copy) and hash it; the slab goes back as {op:'slab'}
//   end    {job}                 wait for flushes, fsync (if asked), close; the hash now covers the new
//                                bytes: {op:'done', size, hex, flushes, direct} (the digest so far, so a commit right
//                                after needs no message; background flushes run; bytes written with O_DIRECT)
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
// and target are not 8-byte co-aligned: +0.5 s of main-thread CPU per GiB, measured. BOUNCES writes may be
// in flight at once (as with the page cache's writeback), so the disk works while this thread hashes;
// one more buffer serves a write that finds them all busy, synchronously.
const BOUNCE = 256 * 1024;
const BOUNCES = 4;
const bounceMemory = new WebAssembly.Memory({ initial: 4 * (BOUNCES + 1) + 1, maximum: 4 * (BOUNCES + 1) + 1 }).buffer;
const bounces = [];
for (let i = 0; i <= BOUNCES; i++) bounces.push(new Uint8Array(bounceMemory, (workerData && workerData.misalign ? 16 : 0) + i * BOUNCE, BOUNCE));
const waitingBounce = bounces.shift(); // the synchronous one

function hashOf(key, fd, size) {
  const live = hashes.get(key);
  if (live && live.size === size) return live;
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(1024 * 1024);
  for (let at = 0; at < size; ) {
    const n = fs.readSync(fd, buf, 0, Math.min(buf.length, size - at), at);
    if (n === 0) throw Object.assign(new Error('staged file is shorter than ' + size + ' bytes'), { code: 'ESHORT' });
    hash.update(buf.subarray(0, n));
    at += n;
  }
  const rebuilt = { hash, size };
  hashes.set(key, rebuilt);
  return rebuilt;
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

// Write bytes[0, n) at pos with O_DIRECT, from a page-aligned copy, off this thread if a copy is free. A write
// in flight on libuv's pool cannot outlive this worker: terminate() waits for it (checked with a write
// blocked on a full pipe: the worker's 'exit' came only once the pipe was drained).
// What O_DIRECT will not take (EINVAL: another alignment, or none on this file system) is written plainly.
function writeDirect(job, bytes, n, pos) {
  const bounce = bounces.pop();
  const copy = bounce || waitingBounce;
  copy.set(bytes.subarray(0, n));
  if (!bounce) return directDone(job, copy, n, pos, writeDirectNow(job, copy, n, pos));
  job.writing++;
  fs.write(job.direct, copy, 0, n, pos, (err, written) => {
    try {
      if (err && err.code !== 'EINVAL') throw err;
      if (err) job.directOff = true;
      directDone(job, copy, n, pos, err ? 0 : written);
    } catch (e) {
      fail(job, e);
    }
    bounces.push(copy);
    job.writing--;
    if (job.writing === 0 && job.drained) job.drained();
  });
}

function writeDirectNow(job, copy, n, pos) {
  let written = 0;
  try {
    for (let k; written < n; written += k) {
      k = fs.writeSync(job.direct, copy, written, n - written, pos + written);
      if (k === 0 || k % ALIGN !== 0) return written + k; // short of whole blocks: the rest goes plainly
    }
  } catch (err) {
    if (err.code !== 'EINVAL') throw err;
    job.directOff = true;
  }
  return written;
}

// Count what O_DIRECT took and write the rest plainly.
function directDone(job, copy, n, pos, written) {
  job.directBytes += written;
  writeAll(job.fd, copy.subarray(0, n), written, pos);
  job.dirty += n - written;
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
  try { fs.closeSync(job.fd); } catch {}
  if (job.direct >= 0) try { fs.closeSync(job.direct); } catch {}
  jobs.delete(job.job);
  return ok;
}

function fail(job, err) {
  if (job.error) return;
  job.error = err;
  if (job.closing) return; // the close in progress sees the error and answers 'failed'
  close(job, false).then(() => parentPort.postMessage({ op: 'failed', job: job.job, error: errorOf(err) }));
}

parentPort.on('message', (m) => {
  if (m.op === 'data') {
    const job = jobs.get(m.job);
    if (job && !job.error && !job.closing) {
      const bytes = new Uint8Array(m.slab, 0, m.length);
      try {
        const direct = directLength(job, bytes);
        if (direct > 0) writeDirect(job, bytes, direct, job.pos);
        writeAll(job.fd, bytes, direct, job.pos); // the tail that is not whole blocks
        job.dirty += bytes.length - direct;
        job.hash.update(bytes);
        job.pos += bytes.length;
        flush(job);
      } catch (err) {
        fail(job, err);
      }
    }
    parentPort.postMessage({ op: 'slab', job: m.job, slab: m.slab }, [m.slab]);
  } else if (m.op === 'begin') {
    let fd;
    try {
      // At position 0 a missing file is created: a restart can leave an upload's row without it (a crash
      // right after the row was written, or after a commit moved the file and before the index recorded it).
      fd = fs.openSync(m.file, fs.constants.O_RDWR | (m.position === 0 ? fs.constants.O_CREAT : 0));
      if (fs.fstatSync(fd).size > m.position) fs.ftruncateSync(fd, m.position);
      const live = hashOf(m.key, fd, m.position);
      let direct = -1;
      if (m.direct !== false) try { direct = fs.openSync(m.file, fs.constants.O_WRONLY | fs.constants.O_DIRECT); } catch {}
      jobs.set(m.job, {
        job: m.job, key: m.key, fd, direct, start: m.position, pos: m.position, fsync: m.fsync,
        writebackEvery: m.writebackEvery > 0 ? m.writebackEvery : Infinity, dirty: 0, flushes: 0,
        directOff: false, directBytes: 0, writing: 0, drained: null,
        flushing: null, backup: live.hash.copy(), hash: live.hash, error: null, closing: false,
      });
    } catch (err) {
      if (fd !== undefined) try { fs.closeSync(fd); } catch {}
      // A job that never began: its data is ignored, and its end or abort answers with this error.
      jobs.set(m.job, { job: m.job, error: err, closing: false, failedEarly: true });
      parentPort.postMessage({ op: 'failed', job: m.job, error: errorOf(err) });
    }
  } else if (m.op === 'end' || m.op === 'abort') {
    const job = jobs.get(m.job);
    if (!job || job.failedEarly) {
      jobs.delete(m.job);
      return; // already answered with 'failed'
    }
    if (job.error) return; // 'failed' is (or will be) sent by fail()
    job.closing = true;
    close(job, m.op === 'end').then((ok) => {
      if (m.op === 'abort') parentPort.postMessage({ op: 'aborted', job: m.job });
      else if (ok) parentPort.postMessage({ op: 'done', job: m.job, size: job.pos, hex: job.hash.copy().digest('hex'), flushes: job.flushes, direct: job.directBytes });
      else parentPort.postMessage({ op: 'failed', job: m.job, error: errorOf(job.error) });
    });
  } else if (m.op === 'digest') {
    let fd;
    try {
      const live = hashes.get(m.key);
      let hex;
      if (live && live.size === m.size) hex = live.hash.copy().digest('hex');
      else {
        fd = fs.openSync(m.file, 'r');
        hex = hashOf(m.key, fd, m.size).hash.copy().digest('hex');
      }
      parentPort.postMessage({ op: 'digest', req: m.req, hex });
    } catch (err) {
      parentPort.postMessage({ op: 'digest', req: m.req, error: errorOf(err) });
    } finally {
      if (fd !== undefined) try { fs.closeSync(fd); } catch {}
    }
  } else if (m.op === 'drop') {
    hashes.delete(m.key);
  }
});
`;
