import type { FastifyInstance } from 'fastify';
import { toRegistryError, v1ErrorBody } from '../../errors';
import { drainUnreadBody } from '../../http/body';
import { imageRoutes } from './images';
import { miscRoutes } from './misc';
import { repositoryRoutes } from './repositories';
import { sendJson } from './http';

/**
 * The Docker Registry v1 API under /v1 (plus /_ping). Bodies are never parsed by fastify here:
 * handlers stream layers and read JSON bodies byte for byte, because checksums cover exact bytes.
 */
export async function v1Routes(app: FastifyInstance): Promise<void> {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null));

  app.setErrorHandler((err, request, reply) => {
    const e = toRegistryError(err);
    if (e.status >= 500 || (err as Error).name === 'StorageNotFoundError') request.log.error({ err }, 'v1 request failed');
    if (drainUnreadBody(request.raw)) reply.header('connection', 'close');
    if (e.headers) reply.headers(e.headers);
    return sendJson(reply, v1ErrorBody(e), e.status);
  });
  app.setNotFoundHandler((_request, reply) => sendJson(reply, { error: 'Not found' }, 404));

  await app.register(imageRoutes);
  await app.register(repositoryRoutes);
  await app.register(miscRoutes);
}

/** GET /_ping and /v1/_ping: unauthenticated, tells Docker this is a standalone registry. */
export async function pingRoutes(app: FastifyInstance, version: string): Promise<void> {
  const ping = async (_req: unknown, reply: import('fastify').FastifyReply) => {
    reply.header('x-docker-registry-standalone', 'True');
    reply.header('x-docker-registry-version', version);
    return sendJson(reply, {});
  };
  app.get('/_ping', ping);
  app.get('/v1/_ping', ping);
}
