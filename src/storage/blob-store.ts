import { randomUUID } from 'node:crypto';
import type { Hash } from 'node:crypto';
import { Readable, type Writable } from 'node:stream';
import { RegistryError } from '../errors';
import type { Tx } from '../index/database';
import type { BlobRecord, MetadataIndex, UploadRecord } from '../index/metadata-index';
import type { UploadHold } from '../index/upload-locks';
import { digestOf, hexOf, newHash, type Digest } from './digest';
import { ByteCache } from './byte-cache';
import { LayerAnalyzer, MAX_BEHIND, type LayerFormat, type LayerInfo } from './layer-analyzer';
import { StagedBytesShortError, StorageNotFoundError, type ByteRange, type StorageDriver } from './driver';

// The one content-addressed blob store, shared by v1 and v2 and by every driver.
// Bytes are hashed while they stream to the driver's staging area, verified, then committed
// atomically; only then does the index learn the digest. Nothing half-written is ever visible.

/** How long a duplicate upload's staged copy waits before it is deleted (see discardSoon). */
const DISCARD_DELAY_MS = 2000;
/** How long a commit waits for a garbage collection deleting an older blob of the same digest. */
const DOOMED_WAIT_MS = 30_000;

export interface IngestOptions {
  /** The digest the client announced: a mismatch is DIGEST_INVALID and nothing is stored. */
  expected?: Digest;
  /** Largest accepted size in bytes (TOO_LARGE beyond it). */
  limit?: number;
  /**
   * Also compute sha256(hashPrefix + body) in the same pass (v1's payload checksum): ingest returns it as
   * `prefixedDigest`. Where the driver hashes as it writes (the local driver), off the event loop too.
   */
  hashPrefix?: Buffer;
  /**
   * Also find the layer's compression and the sha256 of its uncompressed tar (layer-analyzer.ts), in the
   * same pass (on the upload workers where the driver hashes there): passed to onStored and returned as `layer`.
   */
  analyzeLayer?: boolean;
  /**
   * Index writes that belong with the blob (a repository link, a manifest, a v1 image's layer): run inside
   * the transaction that records the blob, or finds it already stored, so they land together in one fsync
   * and garbage collection never sees the blob unreferenced in between. Throwing rolls that transaction
   * back. Its index work goes through `tx`. With `hashPrefix`, ingest passes the prefixed digest too.
   */
  onStored?: (tx: Tx, blob: BlobRecord, prefixedDigest?: Digest, layer?: StoredLayerInfo) => Promise<void>;
  /**
   * Told once the bytes are known to match `expected` (or their digest, without one), before they are made
   * durable and recorded: a reader streaming them on (the pull-through cache) need not wait for the disk.
   */
  onVerified?: (digest: Digest) => void;
}

/** What a commit did: the blob, and whether the upload (its row, maybe its staged copy) is left to discard. */
interface Committed {
  blob: BlobRecord;
  leftOver: boolean;
}

/** What an analyzed layer is, with its diff id (for a plain tar: the blob's own digest). */
export interface StoredLayerInfo {
  format: LayerFormat;
  diffId: Digest | null;
}

/** The analysis with the diff id as a digest: a plain tar's is its own digest. */
export function storedLayerInfo(info: LayerInfo, digest: Digest): StoredLayerInfo {
  const diffId = info.diffIdHex ? (`sha256:${info.diffIdHex}` as Digest) : info.format === 'tar' ? digest : null;
  return { format: info.format, diffId };
}

/**
 * An upload in this process. `recordedDigest`: a one-shot ingest's announced digest, recorded in its row from
 * the start (createAnnouncedUpload); never trusted as what the bytes are (`digest` is null until verified).
 */
type Staged = UploadRecord & { recordedDigest?: Digest };

/** An upload after an append: with `hashPrefix`, the hex of sha256(prefix + the appended bytes). */
type Appended = Staged & { prefixedHex?: string; layer?: LayerInfo };

interface LiveHash {
  hash: Hash;
  size: number;
}

/** What uploads have done since start, for monitoring (src/metrics reads it at scrape time). */
export interface UploadCounts {
  /** Bytes appended to uploads and one-shot ingests (manifests, v1 bodies); a failed append's are rolled back, not counted. */
  appendedBytes: number;
  /** Uploads (and one-shot ingests) that became a blob, or found it stored already. */
  completed: number;
  /** Uploads refused because their owner had uploads.maxOpen open already. */
  refusedOpen: number;
}

export class BlobStore {
  readonly counts: UploadCounts = { appendedBytes: 0, completed: 0, refusedOpen: 0 };
  /** Appends streaming now, each with the bytes it has received so far. */
  private readonly appending = new Set<HashMeter>();
  /** Running hashes of open uploads, so a commit never re-reads the bytes. Rebuilt from storage after a restart. */
  private readonly hashes = new Map<string, LiveHash>();
  /** Manifests and image JSON are read on every pull: keep the hot ones in memory (16 MiB at most). */
  private readonly small = new ByteCache(16 * 1024 * 1024);
  /** Uploads with a request in flight: a second concurrent writer is refused. */
  private readonly busy = new Set<string>();
  /** Committed uploads whose staged copy waits to be deleted (see discardSoon): unknown to clients. */
  private readonly leaving = new Map<string, { done: Promise<void>; now: () => void }>();

  constructor(
    readonly driver: StorageDriver,
    private readonly index: MetadataIndex,
    /** Seconds a redirect URL stays valid; 0: never redirect (serve the bytes ourselves). */
    private readonly redirectExpiry = 0,
    /** Told about failures of work no request waits for (deleting a leftover staged copy). */
    private readonly onBackgroundError: (err: unknown) => void = () => undefined,
  ) {}

  /** Appends streaming bytes at this moment, and the bytes they have received so far. */
  appendsInFlight(): { uploads: number; bytes: number } {
    let bytes = 0;
    for (const meter of this.appending) bytes += meter.bytes;
    return { uploads: this.appending.size, bytes };
  }

  /** A URL the client may fetch the blob from directly (presigned S3 GET), if redirects are on. */
  async redirectUrl(blob: BlobRecord): Promise<string | undefined> {
    if (!this.redirectExpiry || !this.driver.redirectUrl || blob.size === 0) return undefined;
    return this.driver.redirectUrl(blob.location, this.redirectExpiry);
  }

  stat(digest: Digest): Promise<BlobRecord | undefined> {
    return this.index.getBlob(digest);
  }

  /** Stream a blob (or a range of it). BLOB_UNKNOWN if the index does not know it. */
  async open(digest: Digest, range?: ByteRange): Promise<Readable> {
    const blob = await this.stat(digest);
    if (!blob) throw new RegistryError('BLOB_UNKNOWN', undefined, { detail: { digest } });
    return this.driver.read(blob.location, range);
  }

  /**
   * The driver's allocation-free writer for a blob range, if it has one (local files); else undefined
   * and the caller streams open(). StorageNotFoundError if the bytes are missing.
   */
  async openWriter(blob: BlobRecord, range: ByteRange): Promise<((out: Writable) => Promise<void>) | undefined> {
    return this.driver.openWriter?.(blob.location, range);
  }

  /** Read a small blob whole (image JSON, manifests); recently read ones come from memory. */
  async readBytes(digest: Digest): Promise<Buffer> {
    const cached = this.small.get(digest);
    if (cached) return cached;
    const chunks: Buffer[] = [];
    for await (const chunk of await this.open(digest)) chunks.push(chunk as Buffer);
    const bytes = Buffer.concat(chunks);
    this.small.set(digest, bytes);
    return bytes;
  }

  /** Store a stream as one blob, in one pass. */
  async ingest(body: Readable, opts: IngestOptions = {}): Promise<BlobRecord & { prefixedDigest?: Digest; layer?: StoredLayerInfo }> {
    let upload: Appended = await this.createUpload(null, null, Infinity, opts.expected);
    let blob: BlobRecord;
    let leftOver: boolean;
    let layer: StoredLayerInfo | undefined;
    try {
      upload = await this.append(upload, body, opts);
      const prefixed = upload.prefixedHex === undefined ? undefined : (`sha256:${upload.prefixedHex}` as Digest);
      const analyzed = upload.layer;
      const onStored = opts.onStored && ((tx: Tx, stored: BlobRecord) => {
        layer = analyzed && storedLayerInfo(analyzed, stored.digest);
        return opts.onStored!(tx, stored, prefixed, layer);
      });
      ({ blob, leftOver } = await this.commit(upload, opts.expected, onStored, opts.onVerified));
      if (analyzed) layer ??= storedLayerInfo(analyzed, blob.digest);
    } catch (err) {
      await this.discard(upload);
      throw err;
    }
    this.counts.completed++;
    this.finished(upload, leftOver);
    return {
      ...blob,
      ...(upload.prefixedHex === undefined ? {} : { prefixedDigest: `sha256:${upload.prefixedHex}` as Digest }),
      ...(layer ? { layer } : {}),
    };
  }

  /** Store bytes as one blob; `onStored` runs in the transaction that records (or finds) it, as for ingest. */
  async putBytes(data: Uint8Array, expected?: Digest, onStored?: IngestOptions['onStored']): Promise<BlobRecord> {
    return this.ingest(Readable.from([Buffer.from(data.buffer, data.byteOffset, data.byteLength)]), { expected, onStored });
  }

  // ---- resumable uploads (v2 chunked uploads build on these) ----

  /** Open an upload in `repo` for `owner`; TOOMANYREQUESTS if the owner already has `maxOpen` open. */
  async startUpload(repo: string, owner: string | null = null, maxOpen = Infinity): Promise<UploadRecord> {
    return this.createUpload(repo, owner, maxOpen);
  }

  async getUpload(id: string): Promise<UploadRecord | undefined> {
    if (this.leaving.has(id)) return undefined;
    const upload = await this.index.getUpload(id);
    return this.leaving.has(id) ? undefined : upload; // finished meanwhile
  }

  /**
   * Append a chunk. `start`, if given, must equal the current size (else RANGE_INVALID with the
   * current size in the error detail) so out-of-order or overlapping chunks are refused.
   */
  async appendUpload(id: string, body: Readable, opts: IngestOptions & { start?: number } = {}): Promise<UploadRecord> {
    return this.exclusive(id, async (upload, hold) => {
      // A recorded digest describes the bytes a final PUT was committing: more bytes would belie it.
      if (upload.digest) throw new RegistryError('BLOB_UPLOAD_INVALID', 'the upload is being finished: retry its final PUT');
      if (opts.start !== undefined && opts.start !== upload.size) {
        throw new RegistryError('RANGE_INVALID', 'chunk does not start at the end of the upload', {
          detail: { size: upload.size },
        });
      }
      return this.append(upload, body, opts, hold);
    });
  }

  /** Finish an upload: optional last chunk, digest check, atomic commit. The upload is gone afterwards. */
  async commitUpload(id: string, expected: Digest, last?: Readable, opts: IngestOptions = {}): Promise<BlobRecord> {
    return this.exclusive(id, async (upload, hold) => {
      // The last chunk's progress is written to the index only with the verified digest, just before the
      // move (see commit), or if the commit fails: on success the row goes in the commit's transaction.
      // A recorded digest means this is a retried final PUT whose chunk is already staged, or already
      // moved into place before a crash: its body is the same chunk, so it is read and dropped.
      if (last && upload.digest) await drain(last);
      else if (last) upload = await this.append(upload, last, opts, hold, false);
      let done: Committed;
      try {
        done = await this.commit(upload, expected, opts.onStored, undefined, hold);
      } catch (err) {
        // Best effort: if this write fails too, the commit's error is still the one the client sees.
        if (last) await this.persistProgress(upload, hold);
        throw err;
      }
      this.counts.completed++;
      this.finished(upload, done.leftOver);
      return done.blob;
    });
  }

  private async persistProgress(upload: UploadRecord, hold: UploadHold): Promise<void> {
    try {
      if (!(await hold.confirm())) return; // another process may have written to it since: what was stays
      await this.index.updateUpload(upload.id, upload.size, upload.state);
    } catch (err) {
      this.onBackgroundError(err);
    }
  }

  async cancelUpload(id: string): Promise<void> {
    await this.exclusive(id, async (upload) => {
      await this.discard(upload);
      return upload;
    });
  }

  /**
   * Remove uploads untouched for `maxAgeMs`; returns how many went. Each is taken like a request takes
   * it (busy), so a PATCH or PUT arriving meanwhile is refused instead of finding it half-removed.
   */
  async purgeStaleUploads(maxAgeMs: number): Promise<number> {
    const cutoff = Date.now() - maxAgeMs;
    let purged = 0;
    for (const { id } of await this.index.staleUploads(cutoff)) {
      if (this.busy.has(id) || this.leaving.has(id)) continue;
      this.busy.add(id);
      let hold: UploadHold | null = null;
      try {
        hold = await this.index.takeUpload(id);
        if (!hold) continue; // another replica is writing to it
        const upload = await this.index.getUpload(id); // written to since the listing?
        if (!upload || upload.updatedAt >= cutoff) continue;
        await this.discard(upload);
        purged++;
      } finally {
        await hold?.release();
        this.busy.delete(id);
      }
    }
    return purged;
  }

  /**
   * At start, before any request: remove what no client can resume. One-shot ingests (monolithic PUTs,
   * v1 layers, manifests) die with the request that made them; a client upload whose staged bytes are
   * gone, and that recorded no digest before a move (see commit), can never be appended to; staged
   * bytes that no row names belong to nothing. Returns how many uploads went and their staged bytes.
   */
  async removeUnresumable(): Promise<{ uploads: number; bytes: number }> {
    const staged = this.driver.listStaged ? new Map((await this.driver.listStaged()).map((f) => [f.id, f.size])) : undefined;
    let uploads = 0;
    let bytes = 0;
    for (const upload of await this.index.allUploads()) {
      const size = staged?.get(upload.id);
      staged?.delete(upload.id);
      const lost = staged !== undefined && size === undefined && upload.size > 0 && !upload.digest;
      if (upload.repo !== null && !lost) continue;
      await this.discard(upload);
      uploads++;
      bytes += size ?? 0;
    }
    for (const [id, size] of staged ?? []) {
      await this.driver.abortUpload(id, {});
      uploads++;
      bytes += size;
    }
    return { uploads, bytes };
  }

  // ---- internals ----

  private async createUpload(repo: string | null, owner: string | null = null, maxOpen = Infinity, announced?: Digest): Promise<Staged> {
    const id = randomUUID();
    // The row goes first: if we crash after the driver created the staging area, the purge still finds it.
    // A one-shot ingest's announced digest goes in it at once, where the driver moves verified bytes to
    // their digest's place: it saves the commit a write of its own (recordDigest) when they match.
    let recordedDigest: Digest | undefined;
    if (repo === null && announced && this.driver.stagedDigest) {
      if (await this.index.createAnnouncedUpload(id, {}, announced)) recordedDigest = announced;
    } else if (!(await this.index.createUpload(id, repo, {}, owner, maxOpen))) {
      this.counts.refusedOpen++;
      throw new RegistryError('TOOMANYREQUESTS', `too many open uploads (at most ${maxOpen}): finish or cancel some first`);
    }
    const state = await this.driver.startUpload(id);
    if (Object.keys(state).length > 0) await this.index.updateUpload(id, 0, state); // each write is an fsync
    if (!this.driver.stagedDigest) this.hashes.set(id, { hash: newHash(), size: 0 });
    const now = Date.now();
    return { id, repo, owner, digest: null, size: 0, state, startedAt: now, updatedAt: now, ...(recordedDigest ? { recordedDigest } : {}) };
  }

  /**
   * Run `fn` on upload `id` as its only writer: of this process (busy), and of every process sharing the
   * index (a hold from takeUpload). The row is read once both are taken, so it is the latest.
   */
  private async exclusive(id: string, fn: (u: UploadRecord, hold: UploadHold) => Promise<UploadRecord | BlobRecord>): Promise<any> {
    // From the check to busy.add, no await: two requests of this process cannot both take the upload.
    const ours = !this.busy.has(id);
    if (ours) this.busy.add(id);
    let hold: UploadHold | null = null;
    try {
      if (ours) hold = await this.index.takeUpload(id);
      const upload = await this.getUpload(id); // read once taken, so it is the latest (or to say why not)
      if (!upload || upload.repo === null) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', undefined, { detail: { id } });
      if (!hold) throw new RegistryError('RANGE_INVALID', 'another request is writing to this upload', { detail: { size: upload.size } });
      return await fn(upload, hold);
    } finally {
      await hold?.release();
      if (ours) this.busy.delete(id);
    }
  }

  /**
   * Before staged bytes written under `hold` are recorded: the hold was never broken, so no other process
   * wrote to the upload meanwhile. Else nothing is recorded, and the client retries from what was.
   */
  private async stillHeld(hold: UploadHold | undefined): Promise<void> {
    if (!hold || (await hold.confirm())) return;
    throw holdLost();
  }

  /**
   * The running hash of an upload on a driver without stagedDigest. null when this process does not
   * have it (a restart) and bytes were staged: they cannot be read back, so they are hashed after commit.
   */
  private liveHash(upload: UploadRecord): LiveHash | null {
    const live = this.hashes.get(upload.id);
    if (live && live.size === upload.size) return live;
    this.hashes.delete(upload.id);
    if (upload.size > 0) return null;
    const fresh = { hash: newHash(), size: 0 };
    this.hashes.set(upload.id, fresh);
    return fresh;
  }

  private async append(upload: UploadRecord, body: Readable, opts: IngestOptions, hold?: UploadHold, persist = true): Promise<Appended> {
    // Hash a copy: if the driver fails half-way, the staged bytes roll back and so must the hash.
    // No hash here when the driver hashes as it writes (stagedDigest), or when the staged bytes cannot
    // be re-read (see commitUnhashed).
    const live = this.driver.stagedDigest ? null : this.liveHash(upload);
    const hash = live ? live.hash.copy() : null;
    const { hashPrefix } = opts;
    const prefixedHere = hashPrefix && !this.driver.appendUploadPrefixed ? newHash().update(hashPrefix) : null;
    const meter = new HashMeter([hash, prefixedHere], opts.limit === undefined ? Infinity : opts.limit - upload.size, hold?.lost);
    let state: Record<string, unknown>;
    let prefixedHex: string | undefined;
    let layer: LayerInfo | undefined;
    // Where the driver does not analyze as it writes (S3), the layer is analyzed here as it passes.
    const analyzer = opts.analyzeLayer && !(hashPrefix && this.driver.appendUploadPrefixed) ? new LayerAnalyzer() : null;
    this.appending.add(meter);
    try {
      if (hashPrefix && this.driver.appendUploadPrefixed) {
        ({ state, prefixedHex, layer } = await this.driver.appendUploadPrefixed(
          upload.id, upload.state, upload.size, meter.through(body), hashPrefix, opts.analyzeLayer,
        ));
      } else {
        const bytes = analyzer ? analyzed(meter.through(body), analyzer) : meter.through(body);
        state = await this.driver.appendUpload(upload.id, upload.state, upload.size, bytes);
        if (prefixedHere) prefixedHex = prefixedHere.digest('hex');
        if (analyzer) layer = await analyzer.end();
      }
    } catch (err) {
      analyzer?.abort();
      if (meter.error) throw meter.error;
      // The staged bytes are gone (see commit) or cut short: nothing can be appended to them.
      if ((err instanceof StorageNotFoundError || err instanceof StagedBytesShortError) && upload.repo !== null) return this.endLost(upload);
      throw err;
    } finally {
      this.appending.delete(meter);
    }
    this.counts.appendedBytes += meter.bytes;
    const size = upload.size + meter.bytes;
    // A one-shot ingest is never resumed: its progress stays in memory (the row only lets a purge
    // find the staging area after a crash). Client uploads persist it, so they survive a restart.
    if (persist && upload.repo !== null) {
      await this.stillHeld(hold);
      if (!(await this.index.updateUpload(upload.id, size, state))) {
        throw new RegistryError('BLOB_UPLOAD_UNKNOWN', 'the upload was removed while this chunk was written', { detail: { id: upload.id } });
      }
      await this.driver.recorded?.(upload.id, upload.state, state).catch(this.onBackgroundError);
    }
    if (hash) this.hashes.set(upload.id, { hash, size });
    return { ...upload, size, state, prefixedHex, layer };
  }

  private async commit(
    upload: Staged,
    expected: Digest | undefined,
    onStored: IngestOptions['onStored'],
    onVerified?: IngestOptions['onVerified'],
    hold?: UploadHold,
  ): Promise<Committed> {
    const id = upload.id;
    let digest: Digest;
    // The staged bytes are gone but the upload's row is not. Either a commit moved them into place and the
    // process stopped before the index recorded it (the client now retries the PUT): the digest verified
    // before the move is in the row, and only that one is linked. Or they were removed (a purge): the
    // upload ends. Never the client's word for what the bytes were.
    let moved = false;
    if (this.driver.stagedDigest) {
      try {
        digest = await this.driver.stagedDigest(id, upload.state, upload.size);
      } catch (err) {
        if (err instanceof StagedBytesShortError) return this.endLost(upload);
        if (!(err instanceof StorageNotFoundError)) throw err;
        if (!upload.digest) return this.endLost(upload);
        digest = upload.digest;
        moved = true;
      }
    } else {
      const live = this.liveHash(upload);
      if (!live) return this.commitUnhashed(upload, expected, onStored, hold);
      digest = digestOf(live.hash.copy());
    }
    if (expected && expected !== digest) {
      if (moved) await this.discard(upload); // its bytes are that other blob now: nothing is left to append to
      throw new RegistryError('DIGEST_INVALID', undefined, { detail: { expected, computed: digest } });
    }
    onVerified?.(digest);
    // Most pushes bring new blobs: a read without the write lock tells. A known one is found again and used
    // in one transaction, so that garbage collection cannot take it in between.
    const known = (await this.index.getBlob(digest)) && (await this.index.transaction(async (tx) => {
      const found = await tx(this.index).getBlob(digest);
      if (!found || (moved && found.size !== upload.size)) return undefined;
      await onStored?.(tx, found);
      return found;
    }));
    if (known) return { blob: known, leftOver: true }; // already stored: the caller discards the staged copy
    let location: string;
    try {
      // Moved by rename (drivers with stagedDigest): say first what was verified, for a client's retried PUT
      // and for garbage collection, which leaves this digest alone from then on.
      if (this.driver.stagedDigest && !moved && upload.recordedDigest !== digest) {
        await this.stillHeld(hold);
        await this.recordDigest(upload, digest);
      }
      location = await this.driver.commitUpload(id, upload.state, upload.size, hexOf(digest));
    } catch (err) {
      if (!moved || !(err instanceof StorageNotFoundError)) throw err;
      // The moved bytes are not under this digest: nothing is left to append to, so the upload ends.
      await this.discard(upload);
      throw new RegistryError('DIGEST_INVALID', "the upload's bytes are not stored under this digest", { detail: { expected } });
    }
    return { blob: await this.record(upload, digest, location, onStored, hold), leftOver: false };
  }

  /**
   * Record the verified digest in the upload's row before its bytes move to the digest's location. While a
   * garbage collection is deleting an older blob at that location, wait for it to finish (it deletes in
   * small batches); past DOOMED_WAIT_MS the commit fails and the client may retry.
   */
  private async recordDigest(upload: UploadRecord, digest: Digest): Promise<void> {
    for (const started = Date.now(); !(await this.index.setUploadDigest(upload.id, digest, upload.size, upload.state)); ) {
      if (Date.now() - started > DOOMED_WAIT_MS) {
        throw new RegistryError('UNAVAILABLE', 'a garbage collection is removing this blob: retry the upload shortly', { detail: { digest } });
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** The upload's staged bytes are gone or cut short: it can go no further, so it ends. */
  private async endLost(upload: UploadRecord): Promise<never> {
    await this.discard(upload);
    throw new RegistryError('BLOB_UPLOAD_UNKNOWN', "the upload's staged bytes are gone or cut short: start a new upload", { detail: { id: upload.id } });
  }

  /** Record a committed object, with what onStored adds, in one transaction that also ends the upload. */
  private async record(
    upload: UploadRecord,
    digest: Digest,
    location: string,
    onStored: IngestOptions['onStored'],
    hold: UploadHold | undefined,
  ): Promise<BlobRecord> {
    await this.stillHeld(hold);
    const stored = await this.index.transaction(async (tx) => {
      const index = tx(this.index);
      await index.deleteUpload(upload.id);
      const blob = await index.putBlob({ digest, size: upload.size, location });
      await onStored?.(tx, blob);
      return blob;
    });
    // Two identical uploads racing: the first record wins; drop our copy if it lives elsewhere.
    if (stored.location !== location) await this.driver.delete(location);
    return stored;
  }

  /**
   * Commit an upload whose running hash was lost (a restart) on a driver that cannot read staged bytes:
   * commit first (the driver's key is unique to the upload, so nothing content-addressed is overwritten),
   * then hash the committed object, verify digest and size, and only then record it. On a mismatch the
   * object is deleted and the upload is gone with it (its bytes became that object): DIGEST_INVALID.
   */
  private async commitUnhashed(
    upload: UploadRecord,
    expected: Digest | undefined,
    onStored: IngestOptions['onStored'],
    hold: UploadHold | undefined,
  ): Promise<Committed> {
    const location = await this.driver.commitUpload(upload.id, upload.state, upload.size, expected ? hexOf(expected) : '');
    let digest: Digest;
    try {
      const hash = newHash();
      let bytes = 0;
      for await (const chunk of await this.driver.read(location)) {
        hash.update(chunk as Buffer);
        bytes += (chunk as Buffer).length;
      }
      if (bytes !== upload.size) throw new Error(`upload ${upload.id}: committed object holds ${bytes} bytes, ${upload.size} expected`);
      digest = digestOf(hash);
      if (expected && expected !== digest) {
        throw new RegistryError('DIGEST_INVALID', undefined, { detail: { expected, computed: digest } });
      }
    } catch (err) {
      await this.driver.delete(location).catch(() => undefined);
      await this.discard(upload).catch(() => undefined);
      throw err;
    }
    return { blob: await this.record(upload, digest, location, onStored, hold), leftOver: false };
  }

  /** After a commit: the upload is gone with it, or its staged copy is left over and discarded soon. */
  private finished(upload: UploadRecord, leftOver: boolean): void {
    if (leftOver) this.discardSoon(upload);
    else this.forget(upload.id);
  }

  /**
   * discard() a few seconds later, without making anyone wait: after a commit the staged copy is left
   * over only when the content was already stored. Deleting a large file is slow, and on ext4 its cost
   * lands on the next fsync anywhere on the disk, i.e. the next commit's index sync: a client pushing an
   * image whose layers are already stored would wait for it. Delayed, it falls after the push
   * (BENCHMARKS.md, "Design measurements"). Meanwhile the upload is unknown to clients (it is finished);
   * if the process dies first, its row lets the purge finish.
   */
  private discardSoon(upload: UploadRecord): void {
    this.forget(upload.id);
    let now!: () => void;
    const due = new Promise<void>((resolve) => (now = resolve));
    const timer = setTimeout(now, DISCARD_DELAY_MS);
    timer.unref();
    const done = due
      .then(() => this.discard(upload))
      .catch((err) => this.onBackgroundError(err))
      .finally(() => this.leaving.delete(upload.id));
    this.leaving.set(upload.id, {
      done,
      now: () => {
        clearTimeout(timer);
        now();
      },
    });
  }

  /** Drop the running hash of an upload that is finished, here and in the driver. */
  private forget(id: string): void {
    this.hashes.delete(id);
    this.driver.forgetUpload?.(id);
  }

  /** Delete the staged copies that wait for it now, and wait until they are gone (tests, shutdown). */
  async settle(): Promise<void> {
    while (this.leaving.size > 0) {
      const waiting = [...this.leaving.values()];
      for (const l of waiting) l.now();
      await Promise.all(waiting.map((l) => l.done));
    }
  }

  /**
   * Forget an upload and its staged bytes (idempotent: a committed upload has no row left). The row goes
   * first, so no request can find the upload without its bytes; a crash in between leaves only an
   * unreferenced staging file behind.
   */
  private async discard(upload: UploadRecord): Promise<void> {
    this.forget(upload.id);
    if (!(await this.index.getUpload(upload.id))) return;
    await this.index.deleteUpload(upload.id);
    await this.driver.abortUpload(upload.id, upload.state);
  }
}

/** A request's upload hold broke: nothing it wrote is recorded, and a retry starts from what was. */
function holdLost(): RegistryError {
  return new RegistryError('UNAVAILABLE', "this upload's hold in the index was lost (its connection broke): retry the request", {
    headers: { 'retry-after': '1' },
  });
}

/** Read a body to its end and drop it. */
async function drain(body: Readable): Promise<void> {
  for await (const _chunk of body) {
    // nothing to keep
  }
}

/**
 * Counts and hashes bytes on their way to storage; fails with TOO_LARGE past the size limit. A plain
 * async generator rather than a Transform stream: no second stream buffer and no per-chunk stream
 * bookkeeping between the request and the driver. When the driver stops early, the generator's
 * return ends the loop over `body`, which destroys a Readable body.
 */
/**
 * The body as it passes, fed to the layer analyzer: up to MAX_BEHIND chunks may be with zlib (it keeps them
 * alive); beyond, the body waits, and the analyzer gives up once that waiting passes its budget.
 */
async function* analyzed(body: AsyncIterable<Buffer>, analyzer: LayerAnalyzer): AsyncGenerator<Buffer> {
  let behind = 0;
  let wake: (() => void) | null = null;
  for await (const chunk of body) {
    while (behind >= MAX_BEHIND) await new Promise<void>((resolve) => (wake = resolve));
    behind++;
    analyzer.write(chunk, () => {
      behind--;
      const w = wake;
      wake = null;
      w?.();
    });
    yield chunk;
  }
}

class HashMeter {
  bytes = 0;
  error?: RegistryError;
  private readonly hashes: Hash[];

  constructor(
    hashes: (Hash | null)[],
    private readonly remaining: number,
    /** Aborted when the upload's hold breaks: another process may take it, so stop writing. */
    private readonly lost?: AbortSignal,
  ) {
    this.hashes = hashes.filter((h) => h !== null);
  }

  async *through(body: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const chunk of body) {
      if (this.lost?.aborted) throw (this.error = holdLost());
      this.bytes += chunk.length;
      if (this.bytes > this.remaining) throw (this.error = new RegistryError('TOO_LARGE', 'blob exceeds the size limit'));
      for (const hash of this.hashes) hash.update(chunk);
      yield chunk;
    }
  }
}
