import type { LayerInfo } from './layer-analyzer';

// The messages between UploadWorkers (upload-workers.ts, the main thread) and its worker threads
// (upload-worker.ts). Both sides import these types, so the compiler checks every message on both ends.

export interface AppendOptions {
  file: string;
  position: number;
  fsync: boolean;
  writebackEvery: number;
  /** Write whole blocks with O_DIRECT where the file system takes it (default true). */
  direct?: boolean;
  /** Also hash these bytes followed by the appended ones (v1's payload checksum): `prefixedHex`. */
  hashPrefix?: Uint8Array;
  /** Also tell the layer's compression and the sha256 of its uncompressed tar (v1 layers, for the bridge): `layer`. */
  analyzeLayer?: boolean;
}

/** What an append did, as the worker reports it (for tests and measurements). */
export interface AppendStats {
  /** Background flushes of bytes written through the page cache. */
  flushes: number;
  /** Bytes written with O_DIRECT, in how many writes. */
  direct: number;
  writes: number;
  /** Slabs that waited for one of the worker's page-aligned copies, and how many are free once it ended. */
  waited: number;
  copiesFree: number;
}

export interface AppendResult extends AppendStats {
  /** sha256 (hex) of `hashPrefix` and the appended bytes, if a prefix was given. */
  prefixedHex?: string;
  /** With `analyzeLayer`: what layer-analyzer.ts found. */
  layer?: LayerInfo;
}

/** An error as it crosses the thread boundary (structured clone keeps no class and no `code`). */
export interface WorkerError {
  message: string;
  code?: string;
  errno?: number;
  syscall?: string;
}

/** The worker's `workerData`. */
export interface UploadWorkerData {
  /** For tests: the O_DIRECT copies off their page boundary, which O_DIRECT refuses. */
  misalign: boolean;
}

/**
 * Open the staged file (created at position 0), drop bytes past `position` (left by a failed append) and
 * take the upload's running hash, re-hashing the file's first `position` bytes if this worker has none at
 * that size (a restart, or another worker died; the job's data waits meanwhile, other jobs go on).
 */
export type BeginRequest = { op: 'begin'; job: number; key: string } & AppendOptions;

/**
 * Write slab[0, length) and hash it (whole blocks at an aligned position go with O_DIRECT, from a
 * page-aligned copy, gathered into 1 MiB writes). The slab is transferred and comes back as a `slab` reply.
 */
export interface DataRequest {
  op: 'data';
  job: number;
  slab: ArrayBuffer;
  length: number;
}

/**
 * `end`: write what is gathered, wait for writes and flushes, fsync (if asked) and close; answered by `done`.
 * `abort`: the body failed: drop what waits, close, put the hash back as it was; answered by `aborted`.
 */
export interface EndRequest {
  op: 'end' | 'abort';
  job: number;
}

/** The sha256 of the first `size` staged bytes: answered by a `digest` reply with the same `req`. */
export interface DigestRequest {
  op: 'digest';
  req: number;
  key: string;
  file: string;
  size: number;
}

/** Forget the upload's running hash (committed or discarded). No answer. */
export interface DropRequest {
  op: 'drop';
  key: string;
}

/** Main thread → worker. Appends are keyed by `job`, digests by `req`, running hashes by the upload `key`. */
export type UploadRequest = BeginRequest | DataRequest | EndRequest | DigestRequest | DropRequest;

/**
 * Worker → main thread.
 * - `slab`: a data message's slab, back to be filled again.
 * - `done`: the append is written (and fsynced if asked) and closed; `hex` is the running hash so far, so a
 *   commit right after needs no message.
 * - `aborted`: the answer to `abort`.
 * - `failed`: a write, flush or open error failed the job, once: the file is closed and the hash restored;
 *   later data for the job only returns its slabs, and the caller truncates the file.
 * - `digest`: the answer to a digest request.
 * - `noDirect`: sent once at start if the worker has no page-aligned copies (every byte goes through the
 *   page cache).
 */
export type UploadReply =
  | { op: 'slab'; job: number; slab: ArrayBuffer }
  | ({ op: 'done'; job: number; size: number; hex: string } & AppendResult)
  | { op: 'aborted'; job: number }
  | { op: 'failed'; job: number; error: WorkerError }
  | { op: 'digest'; req: number; hex: string; error?: undefined }
  | { op: 'digest'; req: number; error: WorkerError; hex?: undefined }
  | { op: 'noDirect'; message: string };
