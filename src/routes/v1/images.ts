import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { RegistryError } from '../../errors';
import { readSmallBody } from '../../http/body';
import { sendBlob } from '../../http/send-blob';
import type { V1Image } from '../../index/v1-index';
import { assertImageId } from '../../v1/names';
import { v1Authorizer } from './auth';
import { cacheForever, sendJson } from './http';
import { requestFacts } from '../../notifications/request-facts';

type ImageRequest = FastifyRequest<{ Params: { id: string } }>;

/** /v1/images/<id>/{json,layer,checksum,ancestry} */
export async function imageRoutes(app: FastifyInstance): Promise<void> {
  const { v1, config, blobs } = app.registry;
  const auth = v1Authorizer(app);

  /** Guard shared by every cacheable GET: If-Modified-Since on a complete image is always "not modified". */
  const notModified = (request: FastifyRequest, reply: FastifyReply): boolean => {
    if (request.headers['if-modified-since'] === undefined) return false;
    cacheForever(reply).code(304).send();
    return true;
  };

  app.get('/images/:id/json', async (request: ImageRequest, reply) => {
    const repo = await auth.image(request, reply, assertImageId(request.params.id), 'pull');
    const image = await v1.completeImage(repo, request.params.id);
    if (notModified(request, reply)) return reply;
    const json = await v1.readJson(image);
    if (image.layerSize !== null) reply.header('x-docker-size', String(image.layerSize));
    if (image.checksum) reply.header('x-docker-checksum-payload', image.checksum);
    return cacheForever(reply).type('application/json').send(json);
  });

  app.put('/images/:id/json', async (request: ImageRequest, reply) => {
    const repo = await auth.image(request, reply, assertImageId(request.params.id), 'push');
    const body = await readSmallBody(request.raw, config.http.maxJsonBody);
    await v1.putImageJson(repo, request.params.id, body);
    return sendJson(reply);
  });

  // HEAD is declared, not derived: fastify's derived HEAD would open the layer and zero Content-Length.
  app.route({
    method: ['GET', 'HEAD'],
    url: '/images/:id/layer',
    handler: async (request: ImageRequest, reply) => {
      const repo = await auth.image(request, reply, assertImageId(request.params.id), 'pull');
      const image = await v1.completeImage(repo, request.params.id);
      if (notModified(request, reply)) return reply;
      await v1.ensureLayer(image);
      return sendLayer(request, reply, image);
    },
  });

  app.put('/images/:id/layer', async (request: ImageRequest, reply) => {
    const repo = await auth.image(request, reply, assertImageId(request.params.id), 'push');
    await v1.putImageLayer(repo, request.params.id, request.raw);
    return sendJson(reply);
  });

  app.put('/images/:id/checksum', async (request: ImageRequest, reply) => {
    request.raw.resume(); // no body is expected; never leave one unread on a kept-alive connection
    const repo = await auth.image(request, reply, assertImageId(request.params.id), 'push');
    const header = request.headers['x-docker-checksum-payload'];
    await v1.on(requestFacts(request)).putImageChecksum(repo, request.params.id, Array.isArray(header) ? header.join(',') : header);
    return sendJson(reply);
  });

  app.get('/images/:id/ancestry', async (request: ImageRequest, reply) => {
    const repo = await auth.image(request, reply, assertImageId(request.params.id), 'pull');
    const ancestry = await v1.ancestry(repo, request.params.id);
    if (notModified(request, reply)) return reply;
    return cacheForever(reply).type('application/json').send(JSON.stringify(ancestry));
  });

  async function sendLayer(request: FastifyRequest, reply: FastifyReply, image: V1Image) {
    const blob = image.layerDigest ? await blobs.stat(image.layerDigest) : undefined;
    if (!blob) throw new RegistryError('NOT_FOUND', 'Image not found');
    cacheForever(reply).header('content-type', 'application/octet-stream');
    return sendBlob(request, reply, blobs, blob, 302);
  }

}
