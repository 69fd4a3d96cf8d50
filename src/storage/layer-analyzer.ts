import { createHash } from 'node:crypto';
import { createGunzip, type Gunzip } from 'node:zlib';

// What the v1 -> v2 bridge needs to know of a v1 layer (docs/bridge.md): how its bytes are compressed, and
// the sha256 of the uncompressed tar (a v2 config's rootfs.diff_id). Computed in the pass that stores the
// layer (on an upload worker for the local driver), or later from the stored blob: gzip is inflated by
// zlib on libuv's pool, chunk by chunk, and the caller hands a chunk's memory back only once zlib has read
// it (write's callback), so at most the chunks in flight are ever held.
//
// Inflating can be slower than a client sends: on the 2-core test machine zlib gives ~200 MB/s of tar, a
// loopback PUT brings ~170 MiB/s of gzip, and a 1 GiB layer (2.3:1) took 3.2 times as long when its PUT
// waited for zlib. So the analysis holds the upload back only so much: once zlib is MAX_BEHIND chunks behind
// (the upload then waits for its memory), that time is counted, and past STALL_BUDGET of the time so far
// (STALL_GRACE_MS at least: zlib's first chunk on a fresh thread pool takes ~70 ms) the analysis gives up:
// end() says undefined, and the caller analyzes the stored blob after the PUT, off the request path. A client
// slower than zlib (most real networks) gets it done in the same read.

/**
 * gzip / tar: a v2 layer media type carries it. empty: the tar has no entries (all zero bytes, or none):
 * Docker 1.x sent such layers for metadata-only steps, and v2 skips them (history empty_layer). xz / bzip2 /
 * zstd: compressions v1 accepted that no Docker v2 media type carries. invalid: not a tar (or a broken gzip).
 */
export type LayerFormat = 'gzip' | 'tar' | 'empty' | 'xz' | 'bzip2' | 'zstd' | 'invalid';

export const LAYER_FORMATS: readonly LayerFormat[] = ['gzip', 'tar', 'empty', 'xz', 'bzip2', 'zstd', 'invalid'];

export interface LayerInfo {
  format: LayerFormat;
  /**
   * sha256 hex of the uncompressed tar, for gzip (and empty gzip) layers. For plain tar layers it is the
   * digest of the stored bytes themselves, which the caller has: left out here.
   */
  diffIdHex?: string;
}

const ZEROS = Buffer.alloc(64 * 1024);
/** Chunks zlib may be behind before the upload is held back (and that time counted). */
export const MAX_BEHIND = 3;
/** The share of the upload's time so far it may be held back, and at least how long. */
const STALL_BUDGET = 0.05;
const STALL_GRACE_MS = 300;
const HEADER = 512;

function allZero(b: Uint8Array): boolean {
  for (let off = 0; off < b.length; off += ZEROS.length) {
    const n = Math.min(ZEROS.length, b.length - off);
    if (Buffer.compare(b.subarray(off, off + n), ZEROS.subarray(0, n)) !== 0) return false;
  }
  return true;
}

/** A ustar / GNU / v7 tar header block: its checksum (unsigned or signed sum, the field as spaces) matches. */
export function isTarHeader(h: Uint8Array): boolean {
  if (h.length < HEADER) return false;
  const field = Buffer.from(h.subarray(148, 156)).toString('latin1').replace(/[\0 ]+$/, '').trim();
  if (!/^[0-7]{1,8}$/.test(field)) return false;
  const want = parseInt(field, 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < HEADER; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : h[i]!;
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  return want === unsigned || want === signed;
}

/** The tar stream's first bytes and whether anything but zeros was seen: decides tar / empty / invalid. */
class TarSniffer {
  private head = Buffer.alloc(0);
  nonZero = false;

  update(b: Uint8Array): void {
    if (this.head.length < HEADER) this.head = Buffer.concat([this.head, b.subarray(0, HEADER - this.head.length)]);
    if (!this.nonZero && !allZero(b)) this.nonZero = true;
  }

  /** 'tar' (a valid first header), 'empty' (zeros only, or nothing) or 'invalid'. */
  verdict(): 'tar' | 'empty' | 'invalid' {
    if (!this.nonZero) return 'empty';
    return isTarHeader(this.head) ? 'tar' : 'invalid';
  }
}

/** The compression the first bytes announce (undefined: not enough bytes yet to tell). */
function sniff(head: Buffer, final: boolean): 'gzip' | 'xz' | 'bzip2' | 'zstd' | 'raw' | undefined {
  const starts = (...bytes: number[]) => bytes.every((b, i) => head[i] === b);
  if (head.length >= 2 && starts(0x1f, 0x8b)) return 'gzip';
  if (head.length >= 6 && starts(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00)) return 'xz';
  if (head.length >= 3 && starts(0x42, 0x5a, 0x68)) return 'bzip2';
  if (head.length >= 4 && starts(0x28, 0xb5, 0x2f, 0xfd)) return 'zstd';
  if (head.length >= 6 || final) return 'raw';
  return undefined;
}

/**
 * Feed it a layer's bytes in order with write(); each chunk's callback says zlib is done with its memory.
 * end() gives the verdict. Never throws: a broken stream is 'invalid'.
 */
export class LayerAnalyzer {
  private kind: ReturnType<typeof sniff>;
  private gunzip: Gunzip | null = null;
  private readonly tar = new TarSniffer();
  private readonly diffHash = createHash('sha256');
  private broken = false;
  /** Gave up (too slow, or aborted): no verdict; chunks already with zlib still call back when it is done with them. */
  private gaveUp = false;
  private readonly startedAt = Date.now();
  private stalledMs = 0;
  private stallSince: number | null = null;
  private ending = false;

  /** `patient`: no budget, never gives up (analyzing a stored blob, where nothing waits on it). */
  constructor(private readonly patient = false) {}
  /** Chunk callbacks zlib has not answered yet: all are called on an error, whatever zlib does. */
  private readonly pending = new Set<() => void>();
  private ended: Promise<void> | null = null;

  /** Analyze this chunk; `done` once its memory may be reused (at once unless zlib reads it). */
  write(chunk: Uint8Array, done: () => void): void {
    if (this.kind === undefined) {
      // Undecided only while fewer than 6 bytes came: those few are kept (copied) until the kind is known.
      const seen = Buffer.concat([this.held, chunk]);
      this.kind = sniff(seen.subarray(0, 6), false);
      if (this.kind === undefined) {
        this.held = seen;
        return done();
      }
      if (this.kind === 'gzip') this.startGunzip();
      const earlier = this.held;
      this.held = Buffer.alloc(0);
      if (earlier.length > 0) this.feed(earlier, () => undefined);
    }
    this.feed(chunk, done);
  }

  private feed(chunk: Uint8Array, done: () => void): void {
    if (this.kind === 'raw') {
      this.tar.update(chunk);
      return done();
    }
    if (this.kind !== 'gzip' || this.broken || this.gaveUp) return done();
    let once = false;
    const cb = () => {
      if (once) return;
      once = true;
      this.pending.delete(cb);
      this.account();
      done();
    };
    this.pending.add(cb);
    this.account();
    this.gunzip!.write(chunk, () => cb());
  }

  /** Count the time zlib holds the upload back (MAX_BEHIND chunks or more), and give up past the budget. */
  private account(): void {
    const now = Date.now();
    if (this.stallSince !== null) this.stalledMs += now - this.stallSince;
    // While end() waits, every moment counts: the upload's answer waits for the verdict.
    this.stallSince = this.pending.size >= MAX_BEHIND || (this.ending && this.pending.size > 0) ? now : null;
    if (!this.gaveUp && !this.patient && this.stalledMs > this.budget(now)) this.giveUp();
  }

  private budget(now: number): number {
    return Math.max(STALL_GRACE_MS, STALL_BUDGET * (now - this.startedAt));
  }

  /**
   * Stop inflating. A chunk zlib is reading on the pool must not go back before it is done (its memory would be
   * refilled, or freed, under it): the stream calls each chunk back, queued ones at once, that one when zlib ends.
   */
  private giveUp(): void {
    this.gaveUp = true;
    this.gunzip?.destroy();
  }

  /** The first bytes of a body whose kind is not decided yet (fewer than 6). */
  private held = Buffer.alloc(0);

  private startGunzip(): void {
    const g = createGunzip({ chunkSize: 256 * 1024 });
    this.gunzip = g;
    g.on('data', (b: Buffer) => {
      this.diffHash.update(b);
      this.tar.update(b);
    });
    g.on('error', () => this.fail());
    this.ended = new Promise<void>((resolve) => {
      g.on('end', resolve);
      g.on('close', resolve);
    });
  }

  private fail(): void {
    this.broken = true;
    for (const cb of [...this.pending]) cb();
  }

  /** The verdict, once every written chunk is through; undefined if the analysis gave up (too slow, aborted). */
  async end(): Promise<LayerInfo | undefined> {
    if (this.gaveUp) return undefined;
    if (this.kind === undefined) {
      this.kind = sniff(this.held, true);
      if (this.kind === 'raw') this.tar.update(this.held);
      else if (this.kind === 'gzip') {
        this.startGunzip();
        this.gunzip!.write(this.held);
      }
    }
    switch (this.kind) {
      case 'xz':
      case 'bzip2':
      case 'zstd':
        return { format: this.kind };
      case 'raw': {
        const v = this.tar.verdict();
        return { format: v === 'invalid' ? 'invalid' : v };
      }
      default: {
        this.ending = true;
        this.account();
        // What is left of the budget, spent waiting for zlib's last chunks and its end: then no verdict.
        const timer = this.patient ? undefined : setTimeout(() => this.giveUp(), Math.max(0, this.budget(Date.now()) - this.stalledMs));
        this.gunzip!.end();
        await this.ended;
        clearTimeout(timer);
        if (this.gaveUp) return undefined;
        if (this.broken) return { format: 'invalid' };
        const v = this.tar.verdict();
        if (v === 'invalid') return { format: 'invalid' };
        return { format: v === 'empty' ? 'empty' : 'gzip', diffIdHex: this.diffHash.digest('hex') };
      }
    }
  }

  /** Stop early (the body failed): chunk callbacks still all come. */
  abort(): void {
    this.giveUp();
  }
}

/** Analyze a whole stream (a stored blob, for images stored before the bridge). */
export async function analyzeStream(body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<LayerInfo> {
  const a = new LayerAnalyzer(true);
  for await (const chunk of body) await new Promise<void>((resolve) => a.write(chunk, resolve));
  return (await a.end())!;
}
