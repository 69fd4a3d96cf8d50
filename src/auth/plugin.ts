import fastifyBasicAuth from '@fastify/basic-auth';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { RegistryError } from '../errors';
import { authenticated } from '../http/unauthenticated-deadline';
import { AccessControl, ANONYMOUS, type Identity } from './access-control';
import type { Action } from './rules';

// Wires AccessControl into fastify: Basic credentials are parsed by @fastify/basic-auth and
// checked against htpasswd; Bearer and v1 Token headers by AccessControl. The identity is
// resolved once per request, on first use.

declare module 'fastify' {
  interface FastifyInstance {
    /** The caller, resolving credentials on first use (401 on bad credentials). */
    identify(request: FastifyRequest, reply: FastifyReply): Promise<Identity>;
  }
  interface FastifyRequest {
    identity?: Identity;
    /** Set by routes that push or delete: logged as an audit line when the request succeeds. */
    audit?: { action: Action; repository: string; reference?: string };
  }
}

export const authPlugin = fp(async (app: FastifyInstance, opts: { access: AccessControl }) => {
  const access = opts.access;
  app.decorateRequest('identity', undefined);
  app.decorateRequest('audit', undefined);
  app.addHook('onClose', async () => access.close());

  await app.register(fastifyBasicAuth, {
    strictCredentials: false,
    authenticate: false, // challenges differ per protocol; routes set them
    validate: async (user: string, password: string, request: FastifyRequest) => {
      const fp = await access.authenticate(user, password, request.ip);
      if (fp === undefined) throw new RegistryError('UNAUTHORIZED', 'invalid username or password');
      request.identity = { user, via: 'basic', fp };
      authenticated(request);
    },
  });

  const basic = (request: FastifyRequest, reply: FastifyReply) =>
    new Promise<void>((resolve, reject) => app.basicAuth(request, reply, (err?: unknown) => (err ? reject(err) : resolve())));

  app.decorate('identify', async (request: FastifyRequest, reply: FastifyReply): Promise<Identity> => {
    if (request.identity) return request.identity;
    const header = request.headers.authorization;
    // Without authentication configured, credentials are not checked (and so name nobody).
    if (!header || !access.enabled) {
      request.identity = ANONYMOUS;
      return ANONYMOUS;
    }
    if (/^basic\s/i.test(header)) {
      try {
        await basic(request, reply);
      } catch (err) {
        throw err instanceof RegistryError ? err : new RegistryError('UNAUTHORIZED', 'malformed Basic credentials');
      }
      return request.identity!;
    }
    request.identity = await access.identifyToken(header);
    if (request.identity.user !== null) authenticated(request);
    return request.identity;
  });

  // One audit line per successful push or delete, naming the user.
  app.addHook('onResponse', async (request, reply) => {
    if (!request.audit || reply.statusCode >= 400) return;
    request.log.info({ audit: { ...request.audit, user: request.identity?.user ?? null, status: reply.statusCode } }, 'audit');
  });
});
