import { constants, promises as fs, writeSync } from 'node:fs';
import type { LayerInfo } from './layer-analyzer';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import {
  checkRecordKey,
  StagedBytesShortError,
  StorageNotFoundError,
  type ByteRange,
  type StorageDriver,
  type StoredObject,
  type UploadState,
} from './driver';
import { downloadBuffers, pipeFile } from './file-reader';
import type { Digest } from './digest';
import { UploadWorkers, type AppendResult } from './upload-workers';

/** Keys the registry may ask for; anything else is refused before it can become a path. */
const SAFE_KEY = /^(?:blobs\/sha256\/[a-f0-9]{2}\/[a-f0-9]{64}|uploads\/[A-Za-z0-9_-]{1,64})$/;

// Streams read files in 1 MiB chunks: fewer syscalls and event-loop turns than the 64 KiB default.
const READ_CHUNK = 1024 * 1024;
// While an upload streams in, start writing it back to disk every this many bytes: the disk works while
// the rest of the body arrives, so the final fsync finds little left (BENCHMARKS.md, "Design measurements").
const WRITEBACK_EVERY = 8 * 1024 * 1024;

export interface LocalDriverOptions {
  root: string;
  /** fsync data before commit and directories after rename (the default). */
  fsync: boolean;
  /** Write upload bodies with O_DIRECT where the file system takes it (off by default; see docs/storage.md). */
  directWrites?: boolean;
}

/** Files under a root directory; commit is fsync + rename, so a blob is either absent or whole. */
export class LocalDriver implements StorageDriver {
  readonly name = 'local';
  private readonly root: string;
  /** Write and hash upload bodies off the main thread. */
  private readonly workers = new UploadWorkers();
  /** Records being appended to (the journal's open segment), kept open between appends. */
  private readonly appending = new Map<string, fs.FileHandle>();

  constructor(private readonly opts: LocalDriverOptions) {
    this.root = path.resolve(opts.root);
  }

  async init(): Promise<void> {
    await fs.mkdir(path.join(this.root, 'uploads'), { recursive: true });
    await fs.mkdir(path.join(this.root, 'blobs', 'sha256'), { recursive: true });
  }

  private file(key: string): string {
    if (!SAFE_KEY.test(key)) throw new Error(`refusing unsafe storage key ${JSON.stringify(key)}`);
    return path.join(this.root, key);
  }

  async ping(): Promise<void> {
    await fs.access(this.root, constants.R_OK | constants.W_OK);
  }

  async stat(key: string): Promise<{ size: number } | null> {
    try {
      const st = await fs.stat(this.file(key));
      return { size: st.size };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async read(key: string, range?: ByteRange): Promise<Readable> {
    const handle = await this.openCommitted(key);
    return handle.createReadStream({ start: range?.start, end: range?.end, highWaterMark: READ_CHUNK });
  }

  async openWriter(key: string, range: ByteRange): Promise<(out: Writable) => Promise<void>> {
    const handle = await this.openCommitted(key);
    return (out) => pipeFile(handle, range, out);
  }

  private async openCommitted(key: string): Promise<fs.FileHandle> {
    try {
      return await fs.open(this.file(key), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new StorageNotFoundError(key);
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    await fs.rm(this.file(key), { force: true });
  }

  private uploadFile(id: string): string {
    return this.file(`uploads/${id}`);
  }

  async startUpload(id: string): Promise<UploadState> {
    await fs.writeFile(this.uploadFile(id), '', { flag: 'wx' });
    return {};
  }

  async appendUpload(id: string, state: UploadState, size: number, body: AsyncIterable<Buffer>): Promise<UploadState> {
    await this.append(id, size, body);
    return state;
  }

  async appendUploadPrefixed(
    id: string,
    state: UploadState,
    size: number,
    body: AsyncIterable<Buffer>,
    prefix: Buffer,
    analyzeLayer?: boolean,
  ): Promise<{ state: UploadState; prefixedHex: string; layer?: LayerInfo }> {
    const { prefixedHex, layer } = await this.append(id, size, body, prefix, analyzeLayer);
    return { state, prefixedHex: prefixedHex!, layer };
  }

  private async append(id: string, size: number, body: AsyncIterable<Buffer>, hashPrefix?: Buffer, analyzeLayer?: boolean): Promise<AppendResult> {
    const file = this.uploadFile(id);
    const writebackEvery = this.opts.fsync ? WRITEBACK_EVERY : 0;
    try {
      const direct = this.opts.directWrites ?? false;
      return await this.workers.append(id, { file, position: size, fsync: this.opts.fsync, writebackEvery, direct, hashPrefix, analyzeLayer }, body);
    } catch (err) {
      // Lost staged bytes cannot be rolled back to `size` (a truncate of a short file would append zeros).
      const lost = lostStagedBytes(err, id);
      if (lost) throw lost;
      // The worker is done with the file (or dead): drop the bytes this append wrote, never counted.
      await fs.truncate(file, size).catch(() => undefined);
      throw err;
    }
  }

  async stagedDigest(id: string, _state: UploadState, size: number): Promise<Digest> {
    try {
      return `sha256:${await this.workers.digest(id, this.uploadFile(id), size)}`;
    } catch (err) {
      throw lostStagedBytes(err, id) ?? err;
    }
  }

  async commitUpload(id: string, _state: UploadState, size: number, hex: string): Promise<string> {
    const staged = this.uploadFile(id);
    const key = `blobs/sha256/${hex.slice(0, 2)}/${hex}`;
    const target = this.file(key);
    const st = await fs.stat(staged).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
      return null;
    });
    if (!st) {
      // Renamed by an earlier call whose index write then failed: the object is already in place.
      if ((await this.stat(key))?.size === size) return key;
      throw new StorageNotFoundError(`uploads/${id}`);
    }
    if (st.size < size) throw new Error(`upload ${id}: staged ${st.size} bytes, expected ${size}`);
    // Bytes past `size` are an append never counted (refused after writing, or its rollback failed): not
    // the blob's, whose digest covers the first `size` bytes. Durably cut before the file gets its name.
    if (st.size > size) await truncateDurably(staged, size, this.opts.fsync);
    const dir = path.dirname(target);
    const created = await fs.mkdir(dir, { recursive: true });
    if (created && this.opts.fsync) await fsyncDir(path.dirname(dir));
    // Same content under the same name: renaming over an existing copy is harmless and atomic.
    await fs.rename(staged, target);
    if (this.opts.fsync) await fsyncDir(dir);
    return key;
  }

  forgetUpload(id: string): void {
    this.workers.drop(id);
  }

  async abortUpload(id: string): Promise<void> {
    this.workers.drop(id);
    await fs.rm(this.uploadFile(id), { force: true });
  }

  async listStaged(): Promise<{ id: string; size: number }[]> {
    const out: { id: string; size: number }[] = [];
    for (const name of await fs.readdir(path.join(this.root, 'uploads'))) {
      if (!SAFE_KEY.test(`uploads/${name}`)) continue; // not ours: never touched
      const st = await fs.stat(this.uploadFile(name)).catch(() => null);
      if (st?.isFile()) out.push({ id: name, size: st.size });
    }
    return out;
  }

  async *listObjects(): AsyncIterable<StoredObject> {
    const top = path.join(this.root, 'blobs', 'sha256');
    for (const dir of (await fs.readdir(top)).sort()) {
      if (!/^[a-f0-9]{2}$/.test(dir)) continue;
      for (const name of (await fs.readdir(path.join(top, dir)).catch(() => [] as string[])).sort()) {
        if (!name.startsWith(dir) || !/^[a-f0-9]{64}$/.test(name)) continue;
        const key = `blobs/sha256/${dir}/${name}`;
        const st = await fs.stat(this.file(key)).catch(() => null);
        if (st?.isFile()) yield { key, size: st.size, modifiedMs: st.mtimeMs, digest: `sha256:${name}` };
      }
    }
  }

  // ---- records: small files written to a temporary name, synced, renamed ----

  async putRecord(key: string, data: Buffer): Promise<void> {
    checkRecordKey(key);
    const target = path.join(this.root, key);
    const dir = path.dirname(target);
    const created = await fs.mkdir(dir, { recursive: true });
    if (created && this.opts.fsync) await fsyncDir(path.dirname(dir));
    const tmp = `${target}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    const handle = await fs.open(tmp, 'w');
    try {
      await handle.writeFile(data);
      if (this.opts.fsync) await handle.datasync();
    } finally {
      await handle.close();
    }
    await fs.rename(tmp, target);
    if (this.opts.fsync) await fsyncDir(dir);
  }

  async getRecord(key: string): Promise<Buffer | null> {
    checkRecordKey(key);
    try {
      return await fs.readFile(path.join(this.root, key));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async *listRecords(prefix: string): AsyncIterable<{ key: string; size: number }> {
    const [, kind] = /^refs\/([a-z]{1,32})\/$/.exec(prefix) ?? [];
    if (!kind) throw new Error(`refusing record prefix ${JSON.stringify(prefix)}`);
    const dir = path.join(this.root, 'refs', kind);
    const names = await fs.readdir(dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [] as string[];
      throw err;
    });
    for (const name of names.sort()) {
      const key = `${prefix}${name}`;
      if (name.endsWith('.tmp') || !/^[A-Za-z0-9._-]{1,200}$/.test(name)) continue; // a write that never finished
      const st = await fs.stat(path.join(dir, name)).catch(() => null);
      if (st?.isFile()) yield { key, size: st.size };
    }
  }

  async appendRecord(key: string, data: Buffer): Promise<void> {
    checkRecordKey(key);
    let handle = this.appending.get(key);
    if (!handle) {
      const file = path.join(this.root, key);
      const created = await fs.mkdir(path.dirname(file), { recursive: true });
      if (created && this.opts.fsync) await fsyncDir(path.dirname(path.dirname(file)));
      handle = await fs.open(file, 'a');
      this.appending.set(key, handle);
      if (this.opts.fsync) await fsyncDir(path.dirname(file)); // the new name survives a power loss too
    }
    // In place, as SQLite writes its WAL on every commit: a few hundred bytes into the page cache. A trip
    // through the thread pool cost four times the write itself (BENCHMARKS.md, "Design measurements").
    for (let done = 0; done < data.length; ) done += writeSync(handle.fd, data, done);
  }

  async syncRecord(key: string): Promise<void> {
    if (this.opts.fsync) await this.appending.get(key)?.datasync();
  }

  async renameRecord(from: string, to: string): Promise<void> {
    checkRecordKey(from);
    checkRecordKey(to);
    await this.appending.get(from)?.close();
    this.appending.delete(from);
    await fs.rename(path.join(this.root, from), path.join(this.root, to));
    if (this.opts.fsync) await fsyncDir(path.dirname(path.join(this.root, to)));
  }

  async deleteRecord(key: string): Promise<void> {
    checkRecordKey(key);
    await fs.rm(path.join(this.root, key), { force: true });
  }

  async quarantine(key: string): Promise<string> {
    const from = this.file(key);
    const to = `quarantine/${path.basename(key)}-${Date.now()}`;
    await fs.mkdir(path.join(this.root, 'quarantine'), { recursive: true });
    await fs.rename(from, path.join(this.root, to));
    if (this.opts.fsync) await fsyncDir(path.join(this.root, 'quarantine'));
    return to;
  }

  releaseIdleMemory(): number {
    return this.workers.releaseSpare() + downloadBuffers.release();
  }

  async close(): Promise<void> {
    for (const handle of this.appending.values()) await handle.close();
    this.appending.clear();
    await this.workers.close();
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const h = await fs.open(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

async function truncateDurably(file: string, size: number, fsync: boolean): Promise<void> {
  const h = await fs.open(file, 'r+');
  try {
    await h.truncate(size);
    if (fsync) await h.sync();
  } finally {
    await h.close();
  }
}

/**
 * The driver error for an upload's staged bytes that are gone (ENOENT: moved into place by a commit whose
 * index write never happened, see BlobStore.commit, or removed by hand) or fewer than its recorded size
 * (ESHORT from the upload worker: lost in a crash with fsync off, or cut by hand); undefined for other errors.
 */
function lostStagedBytes(err: unknown, id: string): Error | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT') return new StorageNotFoundError(`uploads/${id}`);
  if (code === 'ESHORT') return new StagedBytesShortError(`uploads/${id}`);
  return undefined;
}
