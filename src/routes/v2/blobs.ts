import type { FastifyReply, FastifyRequest } from 'fastify';
import type { RegistryContext } from '../../context';
import { RegistryError } from '../../errors';
import { sendBlob } from '../../http/send-blob';
import type { UploadRecord } from '../../index/metadata-index';
import { parseDigest, type Digest } from '../../storage/digest';
import { hasBody, location, queryParam } from './http';
import { requestFacts } from '../../notifications/request-facts';

// Blob reads and the upload protocol: POST (start, monolithic, mount), PATCH, PUT, GET, DELETE.

export function blobHandlers(ctx: RegistryContext) {
  const { v2, config, access } = ctx;
  const trust = config.http.trustProxy;

  const blobUrl = (request: FastifyRequest, name: string, digest: Digest) =>
    location(request, `/v2/${name}/blobs/${digest}`, trust);

  /** 202/204 answer describing an upload in progress. */
  const uploadState = (request: FastifyRequest, reply: FastifyReply, name: string, upload: UploadRecord, status: number) =>
    reply
      .code(status)
      .headers({
        location: location(request, `/v2/${name}/blobs/uploads/${upload.id}`, trust),
        'docker-upload-uuid': upload.id,
        range: `0-${Math.max(upload.size - 1, 0)}`,
        'content-length': '0',
      })
      .send();

  const created = (request: FastifyRequest, reply: FastifyReply, name: string, digest: Digest) =>
    reply
      .code(201)
      .headers({ location: blobUrl(request, name, digest), 'docker-content-digest': digest, 'content-length': '0' })
      .send();

  /** Out-of-order chunks answer 416 with the range the registry has, so the client can resume. */
  const withRange = async <T>(request: FastifyRequest, name: string, id: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof RegistryError && err.code === 'RANGE_INVALID') {
        const size = (err.detail as { size?: number } | undefined)?.size ?? 0;
        throw new RegistryError('RANGE_INVALID', err.message, {
          detail: err.detail,
          headers: {
            range: `0-${Math.max(size - 1, 0)}`,
            location: location(request, `/v2/${name}/blobs/uploads/${id}`, trust),
            'docker-upload-uuid': id,
          },
        });
      }
      throw err;
    }
  };

  return {
    async getBlob(request: FastifyRequest, reply: FastifyReply, name: string, digestRaw: string) {
      const route = ctx.proxy?.route(name);
      if (route) return ctx.proxy!.serveBlob(request, reply, route, name, parseDigest(digestRaw));
      const blob = await v2.blob(name, parseDigest(digestRaw));
      reply.headers({
        'content-type': 'application/octet-stream',
        'docker-content-digest': blob.digest,
        etag: `"${blob.digest}"`,
        'cache-control': 'max-age=31536000',
      });
      return sendBlob(request, reply, ctx.blobs, blob, 307);
    },

    async deleteBlob(request: FastifyRequest, reply: FastifyReply, name: string, digestRaw: string) {
      await v2.on(requestFacts(request)).deleteBlob(name, parseDigest(digestRaw));
      return reply.code(202).header('content-length', '0').send();
    },

    async postUpload(request: FastifyRequest, reply: FastifyReply, name: string) {
      const mount = queryParam(request, 'mount');
      const from = queryParam(request, 'from');
      if (mount !== undefined) {
        const digest = parseDigest(mount);
        // Mounting reads from `from`: only for callers who may pull it.
        const mayRead = from !== undefined && access.allows(request.identity!, from, 'pull');
        const mounted = mayRead ? await v2.on(requestFacts(request)).mount(name, digest, from) : undefined;
        if (mounted) {
          request.raw.resume();
          return created(request, reply, name, mounted.digest);
        }
        // Not reachable from `from`: fall back to a normal upload, as the spec allows.
      }
      const digestParam = queryParam(request, 'digest');
      if (digestParam !== undefined) {
        const blob = await v2.on(requestFacts(request)).putMonolithic(name, parseDigest(digestParam), request.raw, declaredLength(request));
        return created(request, reply, name, blob.digest);
      }
      request.raw.resume();
      const owner = request.identity?.user ?? `@${request.ip}`;
      return uploadState(request, reply, name, await v2.startUpload(name, owner, config.uploads.maxOpen), 202);
    },

    async patchUpload(request: FastifyRequest, reply: FastifyReply, name: string, id: string) {
      const start = chunkStart(request);
      const upload = await withRange(request, name, id, () => v2.appendUpload(name, id, request.raw, start, declaredLength(request)));
      return uploadState(request, reply, name, upload, 202);
    },

    async putUpload(request: FastifyRequest, reply: FastifyReply, name: string, id: string) {
      const digestParam = queryParam(request, 'digest');
      if (digestParam === undefined) {
        request.raw.resume();
        throw new RegistryError('DIGEST_INVALID', 'the digest query parameter is required to finish an upload');
      }
      const digest = parseDigest(digestParam);
      const body = hasBody(request) ? request.raw : undefined;
      if (!body) request.raw.resume();
      const start = body ? chunkStart(request) : undefined;
      const blob = await withRange(request, name, id, () => v2.on(requestFacts(request)).finishUpload(name, id, digest, body, start, body && declaredLength(request)));
      return created(request, reply, name, blob.digest);
    },

    async getUpload(request: FastifyRequest, reply: FastifyReply, name: string, id: string) {
      return uploadState(request, reply, name, await v2.upload(name, id), 204);
    },

    async deleteUpload(_request: FastifyRequest, reply: FastifyReply, name: string, id: string) {
      await v2.cancelUpload(name, id);
      return reply.code(204).send();
    },
  };
}

/** The body's size as Content-Length announces it (undefined: streamed without one). */
function declaredLength(request: FastifyRequest): number | undefined {
  const length = request.headers['content-length'];
  const n = length === undefined ? NaN : Number(length);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

/**
 * Start offset announced by Content-Range ("<start>-<end>", with or without the "bytes " unit);
 * undefined for a streamed chunk without one. A range that disagrees with Content-Length is invalid.
 */
function chunkStart(request: FastifyRequest): number | undefined {
  const header = request.headers['content-range'];
  if (header === undefined) return undefined;
  const m = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(header.trim());
  if (!m) {
    request.raw.resume();
    throw new RegistryError('RANGE_INVALID', 'malformed Content-Range', { detail: { 'content-range': header } });
  }
  const start = Number(m[1]);
  const end = Number(m[2]);
  const length = request.headers['content-length'];
  if (end < start || (length !== undefined && Number(length) !== end - start + 1)) {
    request.raw.resume();
    throw new RegistryError('RANGE_INVALID', 'Content-Range does not match Content-Length', {
      detail: { 'content-range': header, 'content-length': length },
    });
  }
  return start;
}
