import type { LayerInfo } from './layer-analyzer';
import type { Readable, Writable } from 'node:stream';
import type { Digest } from './digest';

// The storage driver: the only code that knows where bytes live. It knows nothing of repositories or
// protocols, and of digests only how to compute one over staged bytes if it offers to (stagedDigest);
// the BlobStore above it holds every registry rule (which digest is expected, when a blob is visible).

/** Inclusive byte range. */
export interface ByteRange {
  start: number;
  end: number;
}

/** Driver-specific, JSON-serialisable state of an upload (kept in the index, so uploads survive restarts). */
export type UploadState = Record<string, unknown>;

export interface StorageDriver {
  readonly name: string;
  /** Check that the backend answers (used at start and by readiness checks). */
  ping(): Promise<void>;
  /** Size of a committed object, or null if it does not exist. */
  stat(key: string): Promise<{ size: number } | null>;
  /** Stream a committed object, whole or a byte range. Throws StorageNotFoundError. */
  read(key: string, range?: ByteRange): Promise<Readable>;
  /**
   * Optional fast path for serving bytes: open a committed object (StorageNotFoundError if missing)
   * and return a function that writes bytes `range` of it to `out` without allocating per chunk (see
   * file-reader.ts). The object stays open until that function settles, which it must be called for.
   */
  openWriter?(key: string, range: ByteRange): Promise<(out: Writable) => Promise<void>>;
  /** Remove a committed object; missing objects are not an error. */
  delete(key: string): Promise<void>;

  /** Open a staging area for upload `id`. Nothing in it is visible until commitUpload. */
  startUpload(id: string): Promise<UploadState>;
  /**
   * Append `body` at offset `size` (the bytes committed to the staging area so far). The driver only
   * iterates `body` (a plain async iterable, so the caller can meter bytes without a stream in between).
   * Resolves with the new state once every byte is durable enough to be counted; on failure
   * the staging area is left at `size` bytes (partial writes are discarded), or StorageNotFoundError
   * if the staged bytes are gone, StagedBytesShortError if there are fewer than `size`.
   */
  appendUpload(id: string, state: UploadState, size: number, body: AsyncIterable<Buffer>): Promise<UploadState>;
  /**
   * Optional, with stagedDigest: appendUpload that also returns sha256(prefix + the bytes appended),
   * computed where the driver hashes them (the local driver: on its upload workers, off the event loop).
   * v1's payload checksum is sha256(image JSON + "\n" + layer). With `analyzeLayer`, also what
   * layer-analyzer.ts finds of the bytes (a v1 layer's compression and uncompressed digest), in the same pass.
   */
  appendUploadPrefixed?(
    id: string,
    state: UploadState,
    size: number,
    body: AsyncIterable<Buffer>,
    prefix: Buffer,
    analyzeLayer?: boolean,
  ): Promise<{ state: UploadState; prefixedHex: string; layer?: LayerInfo }>;
  /**
   * Optional: the sha256 of the first `size` staged bytes, which the driver computes as it appends (the
   * local driver hashes where it writes, on its upload workers), also after a restart. When present the
   * BlobStore does not hash upload bytes itself. Rejects if the staged bytes cannot be read, with
   * StorageNotFoundError if they are gone (an earlier commitUpload moved them), StagedBytesShortError if
   * there are fewer than `size`.
   * A driver without it (S3: multipart parts cannot be read back) must commit every upload to a key of
   * its own that does not depend on `hex`: the BlobStore hashes bytes as they pass, and an upload whose
   * running hash was lost (a restart) after its commit, from the committed object.
   */
  stagedDigest?(id: string, state: UploadState, size: number): Promise<Digest>;
  /**
   * Make the staged bytes a permanent object and return its key. `hex` is the content's sha256, or
   * '' when the caller does not know it yet (only for drivers without stagedDigest, which must ignore it).
   * Must be atomic: the object is either absent or complete. May be called again after it succeeded
   * (the index write that followed failed, and the client retries): it then returns the same key, and
   * StorageNotFoundError if nothing is staged and no object of `size` bytes is there for `hex`.
   */
  commitUpload(id: string, state: UploadState, size: number, hex: string): Promise<string>;
  /**
   * Optional: the BlobStore is done with upload `id` (recorded after its commit, or discarded): release
   * what the driver keeps in memory for it (the local driver's running hash).
   */
  forgetUpload?(id: string): void;
  /** Discard an upload's staging area (idempotent). */
  abortUpload(id: string, state: UploadState): Promise<void>;
  /**
   * Optional: told after the index recorded `current`, the state an append returned, in place of
   * `previous`. Staging only `previous` named can go now, and not before: until then `previous` is what
   * a retried append starts from.
   */
  recorded?(id: string, previous: UploadState, current: UploadState): Promise<void>;
  /**
   * Optional: every staging area there is, with its size in bytes, so that staged bytes no upload row
   * names can be removed at start (S3 cannot list multipart uploads everywhere: a bucket lifecycle rule
   * aborts those).
   */
  listStaged?(): Promise<{ id: string; size: number }[]>;
  /**
   * Optional: every committed object there is, for garbage collection to find those the index never
   * recorded (a process killed between moving bytes into place and recording them). Each names what an
   * upload moving its bytes there would have recorded: the content `digest` where the key comes from it
   * (local), the `upload` id where the key is per upload (S3).
   */
  listObjects?(): AsyncIterable<StoredObject>;
  /**
   * Write a small record (the reference journal, refs/<kind>/<name>) whole: it is either absent or
   * complete, and durable once this resolves. Writing the same key again replaces it.
   */
  putRecord(key: string, data: Buffer): Promise<void>;
  /** A record's bytes, or null if there is none. */
  getRecord(key: string): Promise<Buffer | null>;
  /** The records under `prefix` (e.g. "refs/journal/"), in key order. */
  listRecords(prefix: string): AsyncIterable<{ key: string; size: number }>;
  /** Remove a record; missing records are not an error. */
  deleteRecord(key: string): Promise<void>;
  /**
   * Optional: append to a record (created if missing; the name itself is durable once this resolves, the
   * bytes once syncRecord resolves). Where a file can grow, the journal keeps one segment open per process
   * and syncs it in groups, instead of making and syncing a file per write.
   */
  appendRecord?(key: string, data: Buffer): Promise<void>;
  /** With appendRecord: make what was appended to `key` durable. */
  syncRecord?(key: string): Promise<void>;
  /** With appendRecord: give a record its final name (it is no longer appended to). */
  renameRecord?(from: string, to: string): Promise<void>;
  /**
   * Move a committed object aside (a corrupt blob found by `registry check --repair`) where nothing reads
   * it and garbage collection does not look, for an operator to inspect; returns where it went.
   */
  quarantine(key: string): Promise<string>;
  /**
   * Optional: a short-lived URL from which a client can GET a committed object directly
   * (S3: a presigned GetObject URL). Routes may redirect blob downloads to it.
   */
  redirectUrl?(key: string, expiresInSeconds: number): Promise<string>;
  /**
   * Optional: drop buffers kept for reuse; called each second the server is quiet. Returns the bytes dropped;
   * when that is more than 0 a garbage collection follows (only it frees them).
   */
  releaseIdleMemory?(): number;
  /** Release connections and timers (optional). */
  close?(): void | Promise<void>;
}

/** Record keys: refs/<kind>/<name>, one level, names of letters, digits, dot, dash and underscore. */
export const RECORD_KEY = /^refs\/[a-z]{1,32}\/[A-Za-z0-9._-]{1,200}$/;

export function checkRecordKey(key: string): void {
  if (!RECORD_KEY.test(key) || key.includes('..')) throw new Error(`refusing record key ${JSON.stringify(key)}`);
}

export interface StoredObject {
  key: string;
  size: number;
  modifiedMs: number;
  digest?: Digest;
  upload?: string;
}

/** An upload's staged bytes are fewer than its recorded size: lost in a crash with fsync off, or cut by hand. */
export class StagedBytesShortError extends Error {
  override name = 'StagedBytesShortError';
  constructor(readonly key: string) {
    super(`staged bytes cut short: ${key}`);
  }
}

export class StorageNotFoundError extends Error {
  override name = 'StorageNotFoundError';
  constructor(readonly key: string) {
    super(`storage object not found: ${key}`);
  }
}
