import { createHash, type Hash } from 'node:crypto';
import { RegistryError } from '../errors';

/** A content digest, "sha256:<64 lowercase hex>". Only sha256 is stored. */
export type Digest = `sha256:${string}`;

const DIGEST_GRAMMAR = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const SHA256 = /^sha256:[a-f0-9]{64}$/;

export function isDigest(value: string): value is Digest {
  return SHA256.test(value);
}

/** Validate a client-supplied digest; anything we cannot verify is DIGEST_INVALID, never a crash. */
export function parseDigest(value: unknown): Digest {
  if (typeof value !== 'string' || !DIGEST_GRAMMAR.test(value)) {
    throw new RegistryError('DIGEST_INVALID', 'invalid digest', { detail: { digest: value } });
  }
  if (!SHA256.test(value)) {
    throw new RegistryError('DIGEST_INVALID', 'unsupported digest algorithm or malformed sha256 digest', {
      detail: { digest: value },
    });
  }
  return value as Digest;
}

export function newHash(): Hash {
  return createHash('sha256');
}

export function digestOf(hash: Hash): Digest {
  return `sha256:${hash.digest('hex')}`;
}

export function digestBytes(data: Uint8Array | string): Digest {
  return digestOf(newHash().update(data));
}

export function hexOf(digest: Digest): string {
  return digest.slice('sha256:'.length);
}
