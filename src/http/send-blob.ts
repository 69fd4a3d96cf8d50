import type { OutgoingHttpHeaders } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { BlobRecord } from '../index/metadata-index';
import type { BlobStore } from '../storage/blob-store';
import { RegistryError } from '../errors';
import { contentRange, parseRange } from './range';

/**
 * Answer a GET or HEAD for a stored blob, for both protocols: a redirect when the storage serves
 * the bytes itself (storage.s3.redirect), else the bytes, whole or the requested Range (206), or
 * RANGE_INVALID (416) with `Content-Range: bytes *\/size` (Docker's resumable reader takes that as EOF).
 * The caller sets its protocol's own headers first (content type, digest, caching).
 */
export async function sendBlob(
  request: FastifyRequest,
  reply: FastifyReply,
  blobs: BlobStore,
  blob: BlobRecord,
  redirectStatus: 302 | 307,
): Promise<FastifyReply> {
  const redirect = request.method === 'GET' ? await blobs.redirectUrl(blob) : undefined;
  if (redirect) {
    return reply.code(redirectStatus).headers({ location: redirect, 'content-length': '0', 'cache-control': 'no-cache' }).send();
  }
  reply.header('accept-ranges', 'bytes');
  const range = parseRange(request.headers.range, blob.size);
  if (range.kind === 'unsatisfiable') {
    // Thrown, so each protocol answers in its own error body.
    throw new RegistryError('RANGE_INVALID', `the range is outside the blob's ${blob.size} bytes`, {
      headers: { 'content-range': `bytes */${blob.size}`, 'cache-control': 'no-cache' },
      detail: { size: blob.size },
    });
  }
  const part = range.kind === 'partial' ? range.range : undefined;
  if (part) reply.code(206).header('content-range', contentRange(part, blob.size));
  reply.header('content-length', String(part ? part.end - part.start + 1 : blob.size));
  if (request.method === 'HEAD' || blob.size === 0) return reply.send();
  const write = await blobs.openWriter(blob, part ?? { start: 0, end: blob.size - 1 });
  if (!write) return reply.send(await blobs.open(blob.digest, part));
  // The driver writes the body itself (no garbage per chunk): fastify steps aside after the headers;
  // its onResponse hooks still log the request when the response finishes.
  reply.hijack();
  reply.raw.writeHead(reply.statusCode, reply.getHeaders() as OutgoingHttpHeaders);
  try {
    await write(reply.raw);
    reply.raw.end();
  } catch (err) {
    if (!reply.raw.destroyed) request.log.warn({ err }, 'blob response failed part-way');
    reply.raw.destroy();
  }
  return reply;
}
