// The code of an upload worker thread (started with `eval`, so the same text runs from src/ under the
// tests' TypeScript loader and from dist/). Messages, all keyed by `job` or by the upload `key`:
//   begin  {job, key, file, position, fsync, writebackEvery}  open the staged file (created at position 0), drop bytes past `position`
//          (left by a failed append), and take the upload's running hash (re-hashing the file's first
//          `position` bytes if this worker has none at that size: a restart, or another worker died)
//   data   {job, slab, length}   write and hash slab[0, length); the slab goes back as {op:'slab'}
//   end    {job}                 wait for flushes, fsync (if asked), close; the hash now covers the new bytes:
//                                {op:'done', size, hex, flushes} (the digest so far, so a commit right after needs
//                                no message; and how many background flushes ran)
//   abort  {job}                 the body failed: close, put the hash back as it was: {op:'aborted'}
//   digest {req, key, file, size} the sha256 of the first `size` staged bytes: {op:'digest', hex}
//   drop   {key}                 forget the upload's hash
// A write or flush error fails the job once: the file is closed, the hash restored, and {op:'failed', error}
// is sent; later data for the job only returns its slabs. After a failure the caller truncates the file.
export const UPLOAD_WORKER_SOURCE = String.raw`
'use strict';
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const { createHash } = require('node:crypto');

const hashes = new Map(); // key -> { hash, size }
const jobs = new Map();

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

function errorOf(err) {
  return { message: String(err && err.message), code: err && err.code, errno: err && err.errno, syscall: err && err.syscall };
}

function flush(job) {
  if (job.flushing || job.pos - job.flushedUpTo < job.writebackEvery) return;
  job.flushedUpTo = job.pos;
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
        for (let off = 0; off < bytes.length; ) {
          const n = fs.writeSync(job.fd, bytes, off, bytes.length - off, job.pos + off);
          if (n === 0) throw new Error('write made no progress');
          off += n;
        }
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
      jobs.set(m.job, {
        job: m.job, key: m.key, fd, start: m.position, pos: m.position, fsync: m.fsync,
        writebackEvery: m.writebackEvery > 0 ? m.writebackEvery : Infinity, flushedUpTo: m.position, flushes: 0,
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
      else if (ok) parentPort.postMessage({ op: 'done', job: m.job, size: job.pos, hex: job.hash.copy().digest('hex'), flushes: job.flushes });
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
