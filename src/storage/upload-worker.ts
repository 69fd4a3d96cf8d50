// An upload worker thread, started by UploadWorkers (upload-workers.ts) from this file: it writes appends to
// their staged files and sha256es them in the same pass. The messages are in upload-protocol.ts.
// Imported on the main thread it does nothing (only its types are of use there).
import { createHash, type Hash } from 'node:crypto';
import fs from 'node:fs';
import { isMainThread, parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { LayerAnalyzer } from './layer-analyzer';
import type { DataRequest, EndRequest, UploadReply, UploadRequest, UploadWorkerData, WorkerError } from './upload-protocol';

// lib ES2022 and @types/node 20 declare no WebAssembly: the one constructor used here.
declare const WebAssembly: {
  Memory: new (descriptor: { initial: number; maximum?: number }) => { readonly buffer: ArrayBuffer };
};

/** How a running hash is got: an error, or the hash. */
type HashDone = (...result: [err: NodeJS.ErrnoException, hash: undefined] | [err: null, hash: Hash]) => void;

/**
 * A data message waiting in its job's queue; `hashed` once its bytes are in the hash (it waits for a copy).
 * `analyzing` while the layer analyzer (zlib, on libuv's pool) still reads the slab: it goes back after that.
 */
type QueuedData = DataRequest & { hashed?: boolean; analyzing?: boolean; done?: boolean };

/** An append in progress. */
interface Job {
  job: number;
  key: string;
  /** The staged file, and the same file opened with O_DIRECT (-1: none). */
  fd: number;
  direct: number;
  /** Where the append began, and where the next byte goes. */
  start: number;
  pos: number;
  fsync: boolean;
  writebackEvery: number;
  /** Bytes written through the page cache since the last background flush. */
  dirty: number;
  flushes: number;
  /** O_DIRECT refused a write (EINVAL): the rest of the job goes through the page cache. */
  directOff: boolean;
  directBytes: number;
  /** Page-aligned copies gathered for the next O_DIRECT write, from file position gatheredPos. */
  gathered: Uint8Array[];
  gatheredPos: number;
  gatheredBytes: number;
  writes: number;
  waited: number;
  /** O_DIRECT writes in flight; drained is called when the last one ends. */
  writing: number;
  drained: (() => void) | null;
  /** Data that waits (for the hash to be rebuilt, or for a copy), and the end or abort that waits behind it. */
  queue: QueuedData[];
  ending: EndRequest | null;
  flushing: Promise<void> | null;
  /** The hash where the append began (put back on failure), the running hash, and v1's prefixed one. */
  backup: Hash | null;
  hash: Hash | null;
  prefixed: Hash | null;
  /** With analyzeLayer: the v1 layer's compression and uncompressed digest, in the same pass. */
  analyzer: LayerAnalyzer | null;
  error: unknown;
  closing: boolean;
  failedEarly?: false;
}

/** A job that never began, kept until its end or abort arrives (already answered with 'failed'). */
interface FailedJob {
  job: number;
  error: unknown;
  closing: false;
  failedEarly: true;
}

const hashes = new Map<string, { hash: Hash; size: number }>();
const jobs = new Map<number, Job | FailedJob>();
const ALIGN = 4096; // O_DIRECT wants the memory, the file position and the length aligned (512 on most disks)
// O_DIRECT writes go from page-aligned copies of the slabs (which come from malloc, 16 bytes past a page;
// WebAssembly memory is mapped by V8 on page boundaries). The copy is cheap on this thread; shared
// WebAssembly memory as slabs would need none, but V8 fills it byte by byte when source and target are not
// 8-byte co-aligned, on the main thread.
// A job's copies are gathered into writes of DIRECT_WRITE bytes (pwritev): the file system takes writes that
// extend a file one at a time, and larger writes take less disk time (BENCHMARKS.md, "Design measurements").
// The writes run on libuv's pool while this thread hashes. When every copy is taken, data waits
// (its slab with it, which holds the body back) until a write ends: writing synchronously instead kept this
// thread from seeing the writes that had ended, and most slabs went that way.
const BOUNCE = 256 * 1024;
const BOUNCES = 16;
const DIRECT_WRITE = 1024 * 1024;

let port: MessagePort;
// V8 reserves ~10 GiB of address space for any WebAssembly memory (its guard regions). Under a virtual memory
// limit (ulimit -v, systemd's LimitAS) it cannot: then there are no copies, and every byte goes through the
// page cache.
let bounceMemory: ArrayBuffer | null = null;
const bounces: Uint8Array[] = [];
const waitingJobs: Job[] = []; // jobs whose data waits for a copy, in order
let serving = false; // giveBack is handing copies to waiting data (a failure there gives copies back too)

function post(reply: UploadReply, transfer?: ArrayBuffer[]): void {
  port.postMessage(reply, transfer);
}

// The running hash of upload 'key' at 'size' bytes: the live one, or the first 'size' bytes of the staged
// file re-hashed (a restart, or another worker died). The reads run on libuv's pool, 1 MiB at a time, the next
// one while this thread hashes the last, so the other uploads on this worker go on during a re-hash of
// several GiB.
function hashAt(key: string, fd: number, size: number, done: HashDone): void {
  const live = hashes.get(key);
  if (live && live.size === size) return done(null, live.hash);
  const hash = createHash('sha256');
  const chunk = Math.min(size, 1024 * 1024);
  const bufs = [Buffer.allocUnsafe(chunk), Buffer.allocUnsafe(chunk)];
  let asked = 0;
  let turn = 0;
  const read = () => {
    const buf = bufs[turn++ % 2]!;
    const len = Math.min(chunk, size - asked);
    fs.read(fd, buf, 0, len, asked, (err, n) => {
      // A regular file reads short only at its end.
      if (!err && n !== len) err = Object.assign(new Error('staged file is shorter than ' + size + ' bytes'), { code: 'ESHORT' });
      if (err) return done(err, undefined);
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

function writeAll(fd: number, bytes: Uint8Array, from: number, pos: number): void {
  for (let off = from; off < bytes.length; ) {
    const n = fs.writeSync(fd, bytes, off, bytes.length - off, pos + off);
    if (n === 0) throw new Error('write made no progress');
    off += n;
  }
}

// How many of the bytes (whole blocks from an aligned position) go to the file with O_DIRECT: the page cache
// copy is the largest CPU cost of an upload on VMs whose fresh memory pages are slow to fault in.
function directLength(job: Job, bytes: Uint8Array): number {
  if (job.direct < 0 || job.directOff || job.pos % ALIGN !== 0) return 0;
  return bytes.length - (bytes.length % ALIGN);
}

// Gather a page-aligned copy of bytes[0, n) (file position pos) into the job's next O_DIRECT write; false if
// every copy is taken (then everything gathered is written, so that copies come back).
function gatherDirect(job: Job, bytes: Uint8Array, n: number, pos: number): boolean {
  if (job.gathered.length > 0 && job.gatheredPos + job.gatheredBytes !== pos) writeGathered(job);
  const copy = bounces.pop();
  if (!copy) {
    for (const other of jobs.values()) if (!other.failedEarly && other.gathered.length > 0) writeGathered(other);
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
function writeGathered(job: Job): void {
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
function giveBack(pieces: Uint8Array[]): void {
  for (const p of pieces) bounces.push(new Uint8Array(p.buffer, p.byteOffset, BOUNCE));
  if (serving) return;
  serving = true;
  try {
    while (waitingJobs.length > 0 && bounces.length > 0) {
      const job = waitingJobs[0]!;
      while (job.queue.length > 0 && writeData(job, job.queue[0]!)) job.queue.shift();
      if (job.queue.length > 0) return;
      waitingJobs.shift();
      if (job.ending) endJob(job, job.ending);
    }
  } finally {
    serving = false;
  }
}

// Count what O_DIRECT took and write the rest plainly.
function directDone(job: Job, pieces: Uint8Array[], pos: number, written: number): void {
  job.directBytes += written;
  for (const piece of pieces) {
    const from = Math.min(Math.max(written, 0), piece.length);
    writeAll(job.fd, piece, from, pos);
    job.dirty += piece.length - from;
    written -= piece.length;
    pos += piece.length;
  }
}

function errorOf(err: unknown): WorkerError {
  const e = err as Partial<NodeJS.ErrnoException> | null | undefined;
  return { message: String(e && e.message), code: e?.code, errno: e?.errno, syscall: e?.syscall };
}

function flush(job: Job): void {
  if (job.flushing || job.dirty < job.writebackEvery) return;
  job.dirty = 0;
  job.flushes++;
  job.flushing = new Promise<void>((resolve) =>
    fs.fdatasync(job.fd, (err) => {
      job.flushing = null;
      if (err) fail(job, err);
      resolve();
    }),
  );
}

// Close the job's file after any flush in flight (and fsync it if asked, on success).
async function close(job: Job, ok: boolean): Promise<boolean> {
  if (job.gathered.length > 0) {
    // On failure the caller truncates these bytes away: drop them.
    if (ok && !job.error) writeGathered(job);
    else {
      giveBack(job.gathered);
      job.gathered = [];
    }
  }
  while (job.writing > 0) await new Promise<void>((resolve) => (job.drained = resolve));
  while (job.flushing) await job.flushing;
  if (job.error) ok = false;
  try {
    if (ok && job.fsync) await new Promise<void>((resolve, reject) => fs.fsync(job.fd, (e) => (e ? reject(e) : resolve())));
  } catch (err) {
    ok = false;
    job.error = job.error || err;
  }
  // On failure the hash goes back to where the append began (the caller truncates the file). Both are set:
  // close runs only once the job has its hash.
  hashes.set(job.key, ok ? { hash: job.hash!, size: job.pos } : { hash: job.backup!, size: job.start });
  closeFiles(job);
  jobs.delete(job.job);
  return ok;
}

function closeFiles(job: Job): void {
  try { fs.closeSync(job.fd); } catch {}
  if (job.direct >= 0) try { fs.closeSync(job.direct); } catch {}
}

// A data message's slab goes back to the main thread, to be filled again.
function sendBack(m: DataRequest): void {
  post({ op: 'slab', job: m.job, slab: m.slab }, [m.slab]);
}

// A data message is done with: its slab goes back, once the layer analyzer has read it too.
function release(m: QueuedData): void {
  m.done = true;
  if (!m.analyzing) sendBack(m);
}

function fail(job: Job, err: unknown): void {
  if (job.error) return;
  job.error = err;
  if (job.closing) return; // the close in progress sees the error and answers 'failed'
  close(job, false).then(() => post({ op: 'failed', job: job.job, error: errorOf(err) }));
}

// Write and hash one slab, and send it back; false if it waits for a page-aligned copy (hashed already).
function writeData(job: Job, m: QueuedData): boolean {
  if (!job.error) {
    const bytes = new Uint8Array(m.slab, 0, m.length);
    try {
      if (!m.hashed) {
        job.hash!.update(bytes); // data is written only once the job has its hash
        if (job.prefixed) job.prefixed.update(bytes);
        if (job.analyzer) {
          m.analyzing = true;
          job.analyzer.write(bytes, () => {
            m.analyzing = false;
            if (m.done) sendBack(m);
          });
        }
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
  release(m);
  return true;
}

function endJob(job: Job, m: EndRequest): void {
  job.ending = null;
  if (job.error) return; // 'failed' is (or will be) sent by fail()
  job.closing = true;
  if (m.op === 'abort' || job.error) job.analyzer?.abort();
  close(job, m.op === 'end').then(async (ok) => {
    // The analyzer had every byte: its verdict waits only for zlib's last chunk.
    const layer = ok && m.op === 'end' && job.analyzer ? await job.analyzer.end() : undefined;
    if (m.op === 'abort') post({ op: 'aborted', job: m.job });
    else if (ok) post({ op: 'done', job: m.job, size: job.pos, hex: job.hash!.copy().digest('hex'), flushes: job.flushes, direct: job.directBytes, writes: job.writes, waited: job.waited, copiesFree: bounces.length, prefixedHex: job.prefixed ? job.prefixed.digest('hex') : undefined, layer });
    else post({ op: 'failed', job: m.job, error: errorOf(job.error) });
  });
}

// A job that never began (its file would not open, or its hash could not be rebuilt): the data that waits goes
// back, later data is ignored, and an end or abort is answered by this 'failed'.
function failBegin(job: Pick<Job, 'job' | 'queue' | 'ending'>, err: unknown): void {
  job.queue.splice(0).forEach(sendBack);
  if (job.ending) jobs.delete(job.job);
  else jobs.set(job.job, { job: job.job, error: err, closing: false, failedEarly: true });
  post({ op: 'failed', job: job.job, error: errorOf(err) });
}

function onMessage(m: UploadRequest): void {
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
    let fd: number | undefined;
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
    const job: Job = {
      job: m.job, key: m.key, fd, direct, start: m.position, pos: m.position, fsync: m.fsync,
      writebackEvery: m.writebackEvery > 0 ? m.writebackEvery : Infinity, dirty: 0, flushes: 0,
      directOff: false, directBytes: 0, gathered: [], gatheredPos: 0, gatheredBytes: 0, writes: 0, waited: 0, writing: 0, drained: null, queue: [], ending: null,
      flushing: null, backup: null, hash: null, prefixed: m.hashPrefix ? createHash('sha256').update(m.hashPrefix) : null,
      analyzer: m.analyzeLayer ? new LayerAnalyzer() : null, error: null, closing: false,
    };
    jobs.set(m.job, job);
    hashAt(m.key, fd, m.position, (err, hash) => {
      if (err) {
        closeFiles(job);
        return failBegin(job, err);
      }
      job.backup = hash.copy();
      job.hash = hash;
      while (job.queue.length > 0 && writeData(job, job.queue[0]!)) job.queue.shift();
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
      job.queue.splice(0).forEach(release);
      if (waitingJobs.includes(job)) waitingJobs.splice(waitingJobs.indexOf(job), 1);
    }
    if (!job.hash || job.queue.length > 0) job.ending = m; // after the hash, and the data that waits
    else endJob(job, m);
  } else if (m.op === 'digest') {
    let fd: number | undefined;
    const reply: HashDone = (err, hash) => {
      if (fd !== undefined) try { fs.closeSync(fd); } catch {}
      post(err ? { op: 'digest', req: m.req, error: errorOf(err) } : { op: 'digest', req: m.req, hex: hash.copy().digest('hex') });
    };
    const live = hashes.get(m.key);
    if (live && live.size === m.size) return reply(null, live.hash);
    try {
      fd = fs.openSync(m.file, 'r');
    } catch (err) {
      return reply(err as NodeJS.ErrnoException, undefined);
    }
    hashAt(m.key, fd, m.size, reply);
  } else if (m.op === 'drop') {
    hashes.delete(m.key);
  }
}

function start(parent: MessagePort, data: UploadWorkerData): void {
  port = parent;
  try {
    bounceMemory = new WebAssembly.Memory({ initial: 4 * BOUNCES + 1, maximum: 4 * BOUNCES + 1 }).buffer;
  } catch (err) {
    post({ op: 'noDirect', message: 'uploads are written through the page cache, not with O_DIRECT: ' +
      'no address space for the page-aligned copies (' + (err as Error).message + '; a virtual memory limit, ulimit -v?)' });
  }
  const skew = data.misalign ? 16 : 0;
  if (bounceMemory) for (let i = 0; i < BOUNCES; i++) bounces.push(new Uint8Array(bounceMemory, skew + i * BOUNCE, BOUNCE));
  parent.on('message', onMessage);
}

if (!isMainThread && parentPort) start(parentPort, workerData as UploadWorkerData);
