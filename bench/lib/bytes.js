'use strict';
// The bytes benchmarks send: deterministic, incompressible, made before the timed part.

const crypto = require('node:crypto');
const { MiB } = require('./basics');

const CHUNK = MiB;

/**
 * Benchmark bytes: AES-128-CTR keystream (encrypting zeros), keyed by `seed`. Deterministic, fast (AES-NI),
 * incompressible, and every chunk is a fresh buffer, so nothing queued in a socket is ever mutated.
 */
class LayerGenerator {
  constructor(seed, totalBytes) {
    const key = crypto.createHash('sha256').update(`bench:${seed}`).digest();
    this.cipher = crypto.createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32));
    this.zeros = Buffer.alloc(CHUNK);
    this.remaining = totalBytes;
  }
  /** Next chunk (at most 1 MiB), or null at the end. */
  next() {
    if (this.remaining <= 0) return null;
    const n = Math.min(CHUNK, this.remaining);
    this.remaining -= n;
    return this.cipher.update(n === CHUNK ? this.zeros : this.zeros.subarray(0, n));
  }
}

/**
 * `totalBytes` of benchmark bytes made in memory before a timed run (so the client spends no CPU on them
 * during it): LayerGenerator's chunks, each also fed to `hash` if given.
 */
function premadeChunks(seed, totalBytes, hash) {
  const gen = new LayerGenerator(seed, totalBytes);
  const chunks = [];
  for (let c; (c = gen.next()); chunks.push(c)) hash?.update(c);
  return chunks;
}

/** A blob made in memory before the timed part (so the client spends no CPU making it): chunks + digest. */
function makeBlob(seed, bytes) {
  const hash = crypto.createHash('sha256');
  const chunks = premadeChunks(seed, bytes, hash);
  return { chunks, bytes, digest: `sha256:${hash.digest('hex')}` };
}

module.exports = { LayerGenerator, premadeChunks, makeBlob };
