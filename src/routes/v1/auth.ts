import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Action } from '../../auth/rules';
import { RegistryError } from '../../errors';

// Authorization for v1 routes. Repository routes name their repository; image routes do not,
// so an image is reachable through any repository whose index image list names it.

export function v1Authorizer(app: FastifyInstance) {
  const { access, v1 } = app.registry;
  const challenge = () => ({ 'www-authenticate': `Basic realm="${access.realm}"` });

  return {
    async repository(request: FastifyRequest, reply: FastifyReply, repo: string, action: Action): Promise<void> {
      const identity = await app.identify(request, reply);
      access.require(identity, repo, action, challenge);
      if (action !== 'pull') request.audit = { action, repository: repo };
    },

    async image(request: FastifyRequest, reply: FastifyReply, id: string, action: Action): Promise<void> {
      const identity = await app.identify(request, reply);
      if (!access.enabled) return;
      const repos = v1.repositoriesOf(id);
      if (repos.some((repo) => access.allows(identity, repo, action))) return;
      if (identity.user === null) throw new RegistryError('UNAUTHORIZED', 'Requires authorization', { headers: challenge() });
      throw new RegistryError('DENIED', 'Access denied', { detail: { image: id, action } });
    },

    /** GET /v1/users: a login check. With authentication on, anonymous callers get 401. */
    async login(request: FastifyRequest, reply: FastifyReply): Promise<void> {
      const identity = await app.identify(request, reply);
      if (access.enabled && identity.user === null) {
        throw new RegistryError('UNAUTHORIZED', 'Requires authorization', { headers: challenge() });
      }
    },
  };
}
