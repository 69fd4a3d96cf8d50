import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { RegistryError } from '../../errors';
import { readSmallBody } from '../../http/body';
import { contentRange, parseRange } from '../../http/range';
import type { V1Image } from '../../index/v1-index';
import { assertImageId } from '../../v1/names';
import { v1Authorizer } from './auth';
import { cacheForever, noCache, sendJson } from './http';

type ImageRequest = FastifyRequest<{ Params: { id: string } }>;

/** /v1/images/<id>/{json,layer,checksum,ancestry} */
export async function imageRoutes(app: FastifyInstance): Promise<void> {
  const { v1, config } = app.registry;
  const auth = v1Authorizer(app);

  /** Guard shared by every cacheable GET: If-Modified-Since on a complete image is always "not modified". */
  const notModified = (request: FastifyRequest, reply: FastifyReply): boolean => {
    if (request.headers['if-modified-since'] === undefined) return false;
    cacheForever(reply).code(304).send();
    return true;
  };

  app.get('/images/:id/json', async (request: ImageRequest, reply) => {
    await auth.image(request, reply, assertImageId(request.params.id), 'pull');
    const image = v1.completeImage(request.params.id);
    if (notModified(request, reply)) return reply;
    const json = await v1.readJson(image);
    if (image.layerSize !== null) reply.header('x-docker-size', String(image.layerSize));
    if (image.checksum) reply.header('x-docker-checksum-payload', image.checksum);
    return cacheForever(reply).type('application/json').send(json);
  });

  app.put('/images/:id/json', async (request: ImageRequest, reply) => {
    await auth.image(request, reply, assertImageId(request.params.id), 'push');
    const body = await readSmallBody(request.raw, config.http.maxJsonBody);
    await v1.putImageJson(request.params.id, body);
    return sendJson(reply);
  });

  // HEAD is declared, not derived: fastify's derived HEAD would open the layer and zero Content-Length.
  app.route({
    method: ['GET', 'HEAD'],
    url: '/images/:id/layer',
    handler: async (request: ImageRequest, reply) => {
      await auth.image(request, reply, assertImageId(request.params.id), 'pull');
      const image = v1.completeImage(request.params.id);
      if (notModified(request, reply)) return reply;
      return sendLayer(request, reply, image);
    },
  });

  app.put('/images/:id/layer', async (request: ImageRequest, reply) => {
    await auth.image(request, reply, assertImageId(request.params.id), 'push');
    await v1.putImageLayer(request.params.id, request.raw);
    return sendJson(reply);
  });

  app.put('/images/:id/checksum', async (request: ImageRequest, reply) => {
    request.raw.resume(); // no body is expected; never leave one unread on a kept-alive connection
    await auth.image(request, reply, assertImageId(request.params.id), 'push');
    const header = request.headers['x-docker-checksum-payload'];
    v1.putImageChecksum(request.params.id, Array.isArray(header) ? header.join(',') : header);
    return sendJson(reply);
  });

  app.get('/images/:id/ancestry', async (request: ImageRequest, reply) => {
    await auth.image(request, reply, assertImageId(request.params.id), 'pull');
    const ancestry = v1.ancestry(request.params.id);
    if (notModified(request, reply)) return reply;
    return cacheForever(reply).type('application/json').send(JSON.stringify(ancestry));
  });

  async function sendLayer(request: FastifyRequest, reply: FastifyReply, image: V1Image) {
    const size = image.layerSize;
    if (size === null) throw new RegistryError('NOT_FOUND', 'Image not found');
    const blob = request.method === 'GET' && image.layerDigest ? app.registry.blobs.stat(image.layerDigest) : undefined;
    const redirect = blob && (await app.registry.blobs.redirectUrl(blob));
    if (redirect) return noCache(reply).code(302).headers({ location: redirect, 'content-length': '0' }).send();
    cacheForever(reply).headers({ 'content-type': 'application/octet-stream', 'accept-ranges': 'bytes' });
    const range = parseRange(request.headers.range, size);
    if (range.kind === 'unsatisfiable') {
      // Docker's resumable reader treats 416 + Content-Length 0 at the end of the layer as EOF.
      noCache(reply).headers({ 'content-range': `bytes */${size}`, 'content-length': '0' });
      return reply.code(416).send();
    }
    if (range.kind === 'partial') {
      reply.code(206).header('content-range', contentRange(range.range, size));
      reply.header('content-length', String(range.range.end - range.range.start + 1));
    } else {
      reply.header('content-length', String(size));
    }
    if (request.method === 'HEAD' || size === 0) return reply.send();
    return reply.send(await v1.openLayer(image, range.kind === 'partial' ? range.range : undefined));
  }
}
