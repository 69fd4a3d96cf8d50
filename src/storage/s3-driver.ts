import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { checkRecordKey, RECORD_KEY, StorageNotFoundError, type ByteRange, type StorageDriver, type StoredObject, type UploadState } from './driver';

// The SDK warns on every start that it will soon need Node 22; the registry supports Node 20 on purpose.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

// S3 and S3-compatible object storage. The driver stays dumb (design-examples.md, "Drivers stay dumb"):
//
//  - Key layout (relative to `prefix`):
//      blobs/<uploadId>            the blob: each upload writes its own final object, so a commit never
//                                  copies; the index maps digest -> this key. Identical concurrent uploads
//                                  make two objects; the BlobStore keeps the first record and deletes the other.
//      uploads/<uploadId>/tail.<n> a staged remainder under 5 MiB (see below)
//  - An append streams the body into parts of `partSize` bytes with at most `concurrency` part buffers
//    (one filling while up to concurrency - 1 upload; all of them uploading once the body has ended),
//    reused from part to part; the multipart upload is created with the first full part. A remainder of
//    5 MiB or more at the end of an append becomes a part of its own; a smaller one cannot (every part but
//    the last must be >= 5 MiB), so it is parked as a small object and prepended to the next append, or
//    uploaded as the last part (or the whole blob) at commit.
//  - The UploadId, the parts (number, ETag, size) and the tail live in the JSON upload state the caller
//    keeps in the index: nothing needs ListParts or ListMultipartUploads, and any process can continue.
//  - A failed append returns nothing, so the state from before stays valid: parts written meanwhile are
//    not recorded (the next append reuses their numbers), and a new tail goes to a new key, never over
//    the one the previous state names. Each tail key holds a random token, so two appends from one state
//    (a writer whose upload hold broke, and the one that took the upload next) never write the same tail.
//    A tail goes once the index has recorded the state after it (recorded()), or with its upload (commit,
//    abort: everything under uploads/<id>/).
//  - Staged parts cannot be read back (so no stagedDigest): after a restart the BlobStore hashes the
//    committed object instead, which is safe because the object key is unique to the upload.

/** Smallest part S3 accepts, except for the last one. */
export const MIN_PART = 5 * 1024 * 1024;
const MAX_PART = 5 * 1024 * 1024 * 1024;
const MAX_PARTS = 10_000;
/** Initial size of an append's first part buffer. */
const FIRST_BUFFER = 256 * 1024;

const UPLOAD_ID = /^[A-Za-z0-9_-]{1,64}$/;
/** The only committed keys this driver hands out, hence the only ones it reads, stats or deletes. */
const BLOB_KEY = /^blobs\/[A-Za-z0-9_-]{1,64}$/;

export interface S3DriverOptions {
  bucket: string;
  region: string;
  /** Endpoint URL of an S3-compatible service; empty or absent for AWS. */
  endpoint?: string;
  forcePathStyle: boolean;
  /** Key prefix inside the bucket ("registry/"); a missing trailing slash is added. */
  prefix?: string;
  /** Explicit keys; absent: the SDK's default credential chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** Multipart part size in bytes (5 MiB .. 5 GiB). */
  partSize: number;
  /** Part uploads in flight per append. */
  concurrency: number;
  /** Attempts per S3 call (the SDK's standard retry strategy: backoff on 5xx, SlowDown, timeouts). Default 5. */
  maxAttempts?: number;
  /** No progress on a socket for this long fails the attempt (writes and control calls). Default 120 s. */
  socketTimeoutMs?: number;
  /** Time to the response headers of a download. Default 60 s. */
  readHeadersTimeoutMs?: number;
}

interface Part {
  /** PartNumber */
  n: number;
  etag: string;
  size: number;
}

/** What the index keeps for an S3 upload (JSON). */
type S3UploadState = {
  /** The multipart UploadId, once the first part went up. */
  mpu?: string;
  /** Uploaded parts, by ascending number; all but the last are >= 5 MiB. */
  parts: Part[];
  /** Bytes parked in the tail object (under 5 MiB), which follow the parts; 0: no tail. */
  tail: number;
  /** The tail object is uploads/<id>/tail.<gen>.<tok> (tail.<gen> for states of builds before tok). */
  gen: number;
  tok?: string;
};

export class S3Driver implements StorageDriver {
  readonly name = 's3';
  /** Uploads and control calls: a stalled socket fails the attempt and the SDK retries. */
  private readonly client: S3Client;
  /** Downloads: a timeout up to the response headers only, since a slow reader may pause the body for long. */
  private readonly reader: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly partSize: number;
  private readonly concurrency: number;

  constructor(readonly opts: S3DriverOptions) {
    if (!opts.bucket) throw new Error('S3 driver: bucket is empty');
    if (!Number.isSafeInteger(opts.partSize) || opts.partSize < MIN_PART || opts.partSize > MAX_PART) {
      throw new Error(`S3 driver: partSize must be between ${MIN_PART} and ${MAX_PART} bytes, got ${opts.partSize}`);
    }
    if (!Number.isSafeInteger(opts.concurrency) || opts.concurrency < 1) {
      throw new Error(`S3 driver: concurrency must be at least 1, got ${opts.concurrency}`);
    }
    this.bucket = opts.bucket;
    this.prefix = normalisePrefix(opts.prefix ?? '');
    this.partSize = opts.partSize;
    this.concurrency = opts.concurrency;
    const common: S3ClientConfig = {
      region: opts.region,
      endpoint: opts.endpoint || undefined,
      forcePathStyle: opts.forcePathStyle,
      credentials: opts.credentials,
      maxAttempts: opts.maxAttempts ?? 5,
      retryMode: 'standard',
      // The SDK's default checksums send streamed bodies aws-chunked with a trailer, which S3-compatible
      // servers such as s3rver store verbatim (real-clients.md 7a). Checksums only where an API requires them.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // "Expect: 100-continue" makes the SDK use a new, non-keep-alive connection per part.
      expectContinueHeader: false,
    };
    this.client = new S3Client({
      ...common,
      requestHandler: {
        connectionTimeout: 10_000,
        socketTimeout: opts.socketTimeoutMs ?? 120_000,
        httpAgent: { keepAlive: true, maxSockets: 64 },
        httpsAgent: { keepAlive: true, maxSockets: 64 },
      },
    });
    this.reader = new S3Client({
      ...common,
      requestHandler: {
        connectionTimeout: 10_000,
        requestTimeout: opts.readHeadersTimeoutMs ?? 60_000,
        throwOnRequestTimeout: true,
        httpAgent: { keepAlive: true, maxSockets: 256 },
        httpsAgent: { keepAlive: true, maxSockets: 256 },
      },
    });
  }

  /** Close the clients' connections. */
  close(): void {
    this.client.destroy();
    this.reader.destroy();
  }

  // ---- keys ----

  private objectKey(key: string): string {
    return this.prefix + key;
  }

  private blobKey(key: string): string {
    if (!BLOB_KEY.test(key)) throw new Error(`refusing storage key outside the S3 layout: ${JSON.stringify(key)}`);
    return this.objectKey(key);
  }

  private static checkId(id: string): void {
    if (!UPLOAD_ID.test(id)) throw new Error(`refusing upload id ${JSON.stringify(id)}`);
  }

  private tailKey(id: string, st: { gen: number; tok?: string }): string {
    return this.objectKey(`uploads/${id}/tail.${st.gen}${st.tok ? `.${st.tok}` : ''}`);
  }

  // ---- committed objects ----

  /** Committed objects are `blobs/<upload id>`: the key names the upload that made it. */
  async *listObjects(): AsyncIterable<StoredObject> {
    const Prefix = this.objectKey('blobs/');
    let ContinuationToken: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix, ContinuationToken }));
      for (const o of page.Contents ?? []) {
        const key = o.Key?.slice(this.prefix.length) ?? '';
        const upload = key.slice('blobs/'.length);
        if (!BLOB_KEY.test(key) || !UPLOAD_ID.test(upload)) continue;
        yield { key, size: o.Size ?? 0, modifiedMs: o.LastModified?.getTime() ?? 0, upload };
      }
      ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (ContinuationToken);
  }

  async ping(): Promise<void> {
    await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
  }

  async stat(key: string): Promise<{ size: number } | null> {
    const Key = this.blobKey(key);
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key }));
      return { size: head.ContentLength ?? 0 };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async read(key: string, range?: ByteRange): Promise<Readable> {
    const Key = this.blobKey(key);
    // Always an explicit first-last range: suffix ranges ("bytes=-N") are wrong on s3rver.
    const Range = range ? `bytes=${range.start}-${range.end}` : undefined;
    try {
      const res = await this.reader.send(new GetObjectCommand({ Bucket: this.bucket, Key, Range }));
      const body = res.Body as Readable;
      if (!range) return body;
      const wanted = range.end - range.start + 1;
      if (res.ContentLength === undefined || res.ContentLength <= wanted) return body;
      // More than asked for (s3rver reads "bytes=0-0" as "bytes=0-"): fine if it starts at the right byte.
      if (!res.ContentRange?.startsWith(`bytes ${range.start}-`)) {
        body.destroy();
        throw new Error(`GetObject ${Key} ${Range}: the service answered ${res.ContentRange ?? 'without Content-Range'}`);
      }
      return firstBytes(body, wanted);
    } catch (err) {
      if (isNotFound(err)) throw new StorageNotFoundError(key);
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.blobKey(key) }));
  }

  // ---- records: one PutObject each (atomic and durable once answered) ----

  async putRecord(key: string, data: Buffer): Promise<void> {
    checkRecordKey(key);
    await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key), Body: data, ContentLength: data.length }));
  }

  async getRecord(key: string): Promise<Buffer | null> {
    checkRecordKey(key);
    try {
      const res = await this.reader.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }));
      return Buffer.from(await res.Body!.transformToByteArray());
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async *listRecords(prefix: string): AsyncIterable<{ key: string; size: number }> {
    if (!/^refs\/[a-z]{1,32}\/$/.test(prefix)) throw new Error(`refusing record prefix ${JSON.stringify(prefix)}`);
    let ContinuationToken: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.objectKey(prefix), ContinuationToken }));
      for (const o of page.Contents ?? []) {
        const key = o.Key?.slice(this.prefix.length) ?? '';
        if (RECORD_KEY.test(key)) yield { key, size: o.Size ?? 0 };
      }
      ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (ContinuationToken);
  }

  async deleteRecord(key: string): Promise<void> {
    checkRecordKey(key);
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }));
  }

  async quarantine(key: string): Promise<string> {
    const from = this.blobKey(key);
    const to = `quarantine/${key.split('/').pop()}-${Date.now()}`;
    const CopySource = `${this.bucket}/${from.split('/').map(encodeURIComponent).join('/')}`;
    await this.client.send(new CopyObjectCommand({ Bucket: this.bucket, Key: this.objectKey(to), CopySource }));
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: from }));
    return to;
  }

  async redirectUrl(key: string, expiresInSeconds: number): Promise<string> {
    const command = new GetObjectCommand({ Bucket: this.bucket, Key: this.blobKey(key) });
    return getSignedUrl(this.reader, command, { expiresIn: expiresInSeconds });
  }

  // ---- uploads ----

  async startUpload(id: string): Promise<UploadState> {
    S3Driver.checkId(id);
    // Nothing to create yet: the multipart upload starts with the first full part, small blobs never need one.
    // Nothing to record either: parseState reads an empty state as no parts and no tail (the BlobStore then
    // writes no state to the index).
    return {};
  }

  async appendUpload(id: string, state: UploadState, size: number, body: AsyncIterable<Buffer>): Promise<UploadState> {
    S3Driver.checkId(id);
    const st = parseState(id, state, size);
    const Key = this.objectKey(`blobs/${id}`);
    const parts = [...st.parts];
    let mpu = st.mpu;
    let createdHere = false;
    let newTail: string | undefined;
    let nextPart = parts.length + 1;
    const inflight = new Set<Promise<void>>();
    let failure: unknown;
    /** Part buffers whose upload finished, for reuse within this append. */
    const spare: Buffer[] = [];
    const take = () => spare.pop() ?? Buffer.allocUnsafe(this.partSize);

    /** Upload buf[0, length) as the next part; returns once fewer than `concurrency` parts are in flight. */
    const submit = async (buf: Buffer, length: number) => {
      const n = nextPart++;
      if (n > MAX_PARTS) {
        throw new Error(`upload ${id}: more than ${MAX_PARTS} parts; raise storage.s3.partSize (now ${this.partSize} bytes)`);
      }
      if (!mpu) {
        const created = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key }));
        if (!created.UploadId) throw new Error(`upload ${id}: CreateMultipartUpload returned no UploadId`);
        mpu = created.UploadId;
        createdHere = true;
      }
      const tracked: Promise<void> = this.uploadPart(Key, mpu, n, buf.subarray(0, length))
        .then(
          (etag) => {
            parts.push({ n, etag, size: length });
            if (buf.length === this.partSize) spare.push(buf);
          },
          (err) => {
            failure ??= err;
          },
        )
        .finally(() => inflight.delete(tracked));
      inflight.add(tracked);
      while (inflight.size >= this.concurrency && failure === undefined) await Promise.race(inflight);
      if (failure !== undefined) throw failure;
    };

    try {
      // The first buffer starts small and grows to partSize, so a small blob never costs a whole part.
      let buf: Buffer = Buffer.allocUnsafe(Math.min(this.partSize, st.tail + FIRST_BUFFER));
      let fill = 0;
      if (st.tail > 0) fill = await this.readInto(this.tailKey(id, st), buf, st.tail);
      let received = 0;
      for await (const chunk of body) {
        if (failure !== undefined) throw failure;
        received += chunk.length;
        for (let off = 0; off < chunk.length; ) {
          if (fill === buf.length) {
            const grown = Buffer.allocUnsafe(Math.min(this.partSize, buf.length * 4));
            buf.copy(grown, 0, 0, fill);
            buf = grown;
          }
          const copied = chunk.copy(buf, fill, off);
          fill += copied;
          off += copied;
          if (fill === this.partSize) {
            await submit(buf, fill);
            buf = take();
            fill = 0;
          }
        }
      }
      if (received === 0) return state; // nothing new: the previous state (and its tail) stays as it is

      let tail = 0;
      let gen = st.gen;
      let tok: string | undefined;
      if (fill >= MIN_PART) {
        await submit(buf, fill);
      } else if (fill > 0) {
        gen = st.gen + 1;
        tok = randomBytes(16).toString('hex');
        newTail = this.tailKey(id, { gen, tok });
        await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: newTail, Body: buf.subarray(0, fill) }));
        tail = fill;
      }
      await Promise.all(inflight);
      if (failure !== undefined) throw failure;
      parts.sort((a, b) => a.n - b.n);
      // The old tail now lives in a part or in the new tail; it goes once the new state is recorded.
      const next: S3UploadState = { ...(mpu ? { mpu } : {}), parts, tail, gen, ...(tok ? { tok } : {}) };
      return next;
    } catch (err) {
      failure ??= err;
      await Promise.allSettled(inflight);
      // A multipart upload created by this append is recorded nowhere: nobody else could finish or abort it.
      if (createdHere && mpu) await this.abortMultipart(Key, mpu).catch(() => undefined);
      // Nor is its new tail (best effort: the upload's commit or abort removes what is left).
      if (newTail) await this.deleteQuietly(newTail);
      throw err;
    }
  }

  async commitUpload(id: string, state: UploadState, size: number, _hex: string): Promise<string> {
    S3Driver.checkId(id);
    const st = parseState(id, state, size);
    const rel = `blobs/${id}`;
    const Key = this.objectKey(rel);
    let tail: Buffer | undefined;
    try {
      tail = st.tail > 0 ? await this.readSmall(this.tailKey(id, st), st.tail) : undefined;
    } catch (err) {
      // A repeated commit (the first went through, the index write after it failed) finds its tail
      // deleted: fine if the object is whole.
      if (isNotFound(err) && (await this.stat(rel))?.size === size) return rel;
      throw err;
    }
    if (!st.mpu) {
      // Never filled a part: the blob is the tail (or empty).
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key, Body: tail ?? Buffer.alloc(0) }));
    } else {
      const parts = [...st.parts];
      if (tail) {
        const n = parts.length + 1;
        if (n > MAX_PARTS) throw new Error(`upload ${id}: more than ${MAX_PARTS} parts`);
        parts.push({ n, etag: await this.uploadPart(Key, st.mpu, n, tail), size: tail.length });
      }
      if (parts.length === 0) throw new Error(`upload ${id}: multipart upload without parts`);
      try {
        await this.client.send(
          new CompleteMultipartUploadCommand({
            Bucket: this.bucket,
            Key,
            UploadId: st.mpu,
            MultipartUpload: { Parts: parts.map((p) => ({ PartNumber: p.n, ETag: p.etag })) },
          }),
        );
      } catch (err) {
        // A retried Complete whose first attempt went through: S3 answers NoSuchUpload, s3rver an
        // InternalError. Either way the object is whole if it is there at full size: the key belongs to
        // this upload alone, so nothing else could have put it there. If even that cannot be checked,
        // the Complete's own error is the one to report.
        const stored = await this.stat(rel).catch(() => null);
        if (stored?.size !== size) throw err;
      }
    }
    // Best effort: the blob is complete; a stray tail object is garbage, not a reason to fail the commit.
    await this.deleteStaging(id).catch(() => undefined);
    return rel;
  }

  async abortUpload(id: string, state: UploadState): Promise<void> {
    S3Driver.checkId(id);
    const st = parseState(id, state);
    if (st.mpu) await this.abortMultipart(this.objectKey(`blobs/${id}`), st.mpu);
    await this.deleteStaging(id);
  }

  /** The index now holds `current` instead of `previous`: a tail only `previous` named can go. */
  async recorded(id: string, previous: UploadState, current: UploadState): Promise<void> {
    S3Driver.checkId(id);
    const [before, now] = [parseState(id, previous), parseState(id, current)];
    if (before.tail > 0 && this.tailKey(id, before) !== (now.tail > 0 ? this.tailKey(id, now) : null)) {
      await this.deleteQuietly(this.tailKey(id, before));
    }
  }

  // ---- internals ----

  private async uploadPart(Key: string, UploadId: string, PartNumber: number, Body: Buffer): Promise<string> {
    const res = await this.client.send(new UploadPartCommand({ Bucket: this.bucket, Key, UploadId, PartNumber, Body }));
    if (!res.ETag) throw new Error(`UploadPart ${PartNumber} of ${Key}: no ETag in the answer`);
    return res.ETag;
  }

  /** AbortMultipartUpload; an upload already gone, or a service without the call (s3rver: 405), is not an error. */
  private async abortMultipart(Key: string, UploadId: string): Promise<void> {
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key, UploadId }));
    } catch (err) {
      const status = httpStatus(err);
      if (errorName(err) === 'NoSuchUpload' || status === 404 || status === 405 || status === 501) return;
      throw err;
    }
  }

  /** Every object under uploads/<id>/: the tail, and any a failed or refused append left. */
  private async deleteStaging(id: string): Promise<void> {
    const Prefix = this.objectKey(`uploads/${id}/`);
    let ContinuationToken: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix, ContinuationToken }));
      await Promise.all((page.Contents ?? []).map(({ Key }) => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key }))));
      ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (ContinuationToken);
  }

  private async deleteQuietly(Key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key })).catch(() => undefined);
  }

  /** Read a whole (small) object into buf from offset 0; its size must be `expected`. */
  private async readInto(Key: string, buf: Buffer, expected: number): Promise<number> {
    const res = await this.reader.send(new GetObjectCommand({ Bucket: this.bucket, Key }));
    let fill = 0;
    for await (const chunk of res.Body as AsyncIterable<Buffer>) {
      if (fill + chunk.length > expected) {
        (res.Body as Readable).destroy();
        throw new Error(`staged object ${Key} is larger than the ${expected} bytes recorded`);
      }
      fill += chunk.copy(buf, fill);
    }
    if (fill !== expected) throw new Error(`staged object ${Key} holds ${fill} bytes, ${expected} recorded`);
    return fill;
  }

  private async readSmall(Key: string, size: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(size);
    await this.readInto(Key, buf, size);
    return buf;
  }
}

/** The first `n` bytes of `body`; the rest is not read (the connection is dropped). */
function firstBytes(body: Readable, n: number): Readable {
  return Readable.from(
    (async function* () {
      let left = n;
      try {
        for await (const chunk of body as AsyncIterable<Buffer>) {
          if (chunk.length >= left) {
            yield chunk.subarray(0, left);
            return;
          }
          left -= chunk.length;
          yield chunk;
        }
      } finally {
        body.destroy();
      }
    })(),
    { objectMode: false },
  );
}

function normalisePrefix(prefix: string): string {
  const p = prefix.replace(/^\/+/, '');
  return p === '' || p.endsWith('/') ? p : `${p}/`;
}

/** The state from the index, checked; `size`, if given, must be what the state accounts for. */
function parseState(id: string, raw: UploadState, size?: number): S3UploadState {
  const bad = (why: string) => new Error(`upload ${id}: invalid S3 upload state (${why})`);
  const parts = raw.parts ?? [];
  if (!Array.isArray(parts)) throw bad('parts');
  for (const p of parts as Part[]) {
    if (!p || !Number.isSafeInteger(p.n) || typeof p.etag !== 'string' || !Number.isSafeInteger(p.size)) throw bad('part');
  }
  const tail = raw.tail ?? 0;
  const gen = raw.gen ?? 0;
  if (!Number.isSafeInteger(tail) || (tail as number) < 0 || (tail as number) >= MIN_PART) throw bad('tail');
  if (!Number.isSafeInteger(gen) || (gen as number) < 0) throw bad('gen');
  if (raw.tok !== undefined && (typeof raw.tok !== 'string' || !/^[0-9a-f]{32}$/.test(raw.tok))) throw bad('tok');
  if (raw.mpu !== undefined && typeof raw.mpu !== 'string') throw bad('mpu');
  if (parts.length > 0 && raw.mpu === undefined) throw bad('parts without a multipart upload');
  const st: S3UploadState = { parts: parts as Part[], tail: tail as number, gen: gen as number };
  if (raw.mpu !== undefined) st.mpu = raw.mpu as string;
  if (raw.tok !== undefined) st.tok = raw.tok as string;
  if (size !== undefined) {
    const held = st.parts.reduce((n, p) => n + p.size, 0) + st.tail;
    if (held !== size) throw new Error(`upload ${id}: the S3 upload state holds ${held} bytes, ${size} expected`);
  }
  return st;
}

function httpStatus(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
}

function errorName(err: unknown): string | undefined {
  return (err as { name?: string } | null)?.name;
}

function isNotFound(err: unknown): boolean {
  const name = errorName(err);
  return name === 'NoSuchKey' || name === 'NotFound' || (httpStatus(err) === 404 && name !== 'NoSuchBucket');
}

/** "NotFound (HTTP 404): ..." for start-up messages. */
export function describeS3Error(err: unknown): string {
  const name = errorName(err) ?? 'Error';
  const status = httpStatus(err);
  const message = err instanceof Error ? err.message : String(err);
  const code = (err as { code?: string } | null)?.code;
  const detail = message && message !== name && message !== 'UnknownError' ? `: ${message}` : '';
  return `${name}${status ? ` (HTTP ${status})` : ''}${code && !detail.includes(code) ? ` ${code}` : ''}${detail}`;
}
