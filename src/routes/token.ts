import type { FastifyInstance } from 'fastify';
import { RegistryError, v2ErrorBody } from '../errors';

/**
 * GET /token: Docker's token authentication (distribution docs "Token Authentication
 * Specification"). Basic credentials or none; the token grants what the access rules allow of the
 * requested scopes (possibly nothing: the registry then answers 401/403 itself).
 */
export async function tokenRoutes(app: FastifyInstance): Promise<void> {
  const { access } = app.registry;
  app.get('/token', async (request, reply) => {
    const query = request.query as Record<string, string | string[] | undefined>;
    const service = typeof query.service === 'string' ? query.service : undefined;
    if (service !== undefined && service !== access.service) {
      throw new RegistryError('BAD_REQUEST', `unknown service ${service}`);
    }
    const scopes = ([] as string[]).concat(query.scope ?? []).flatMap((s) => s.split(' ')).filter(Boolean);
    const identity = await app.identify(request, reply);
    reply.header('cache-control', 'no-store');
    return reply.type('application/json').send(access.issueToken(identity.bearer ? null : identity.user, scopes));
  });

  app.setErrorHandler((err, request, reply) => {
    const e = err instanceof RegistryError ? err : new RegistryError('UNAUTHORIZED');
    if (e.status === 401) reply.header('www-authenticate', `Basic realm="${access.realm}"`);
    if (e.status >= 500) request.log.error({ err }, 'token request failed');
    return reply.code(e.status).type('application/json').send(v2ErrorBody(e));
  });
}
