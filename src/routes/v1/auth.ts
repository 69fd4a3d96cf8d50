import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Identity } from '../../auth/access-control';
import type { Action } from '../../auth/rules';
import { RegistryError } from '../../errors';
import { v1RepositoryName } from '../../v1/names';

// Authorization for v1 routes. Repository routes name their repository. Image routes do not: an
// image call acts in the repository of the caller's v1 token (Docker 1.x always sends the one its
// index call got), or, without a token, in one the caller may use that holds the image. Images
// belong to a repository, so no call ever reaches another repository's bytes (docs/v1.md, "v1 images").

export function v1Authorizer(app: FastifyInstance) {
  const { access, v1 } = app.registry;
  const challenge = () => ({ 'www-authenticate': `Basic realm="${access.realm}"` });
  const notFound = () => new RegistryError('NOT_FOUND', 'Image not found');

  /** The repository a v1 token names: signed with authentication on; as sent (nothing to protect) without. */
  const tokenRepository = (request: FastifyRequest, identity: Identity): string | undefined => {
    if (identity.v1) return identity.v1.repo;
    if (access.enabled) return undefined;
    const m = /^token\s.*repository="([^"]+)"/i.exec(request.headers.authorization ?? '');
    if (!m) return undefined;
    try {
      return v1RepositoryName(m[1]!);
    } catch {
      return undefined;
    }
  };

  return {
    async repository(request: FastifyRequest, reply: FastifyReply, repo: string, action: Action): Promise<void> {
      const identity = await app.identify(request, reply);
      access.require(identity, repo, action, challenge);
      if (action !== 'pull') app.registry.proxy?.assertWritable(repo); // a pull-through cache's prefix: read-only
      if (action !== 'pull') request.audit = { action, repository: repo };
    },

    /**
     * The repository image `id` is read (pull) or written (push) in. Without a token: for a read, the
     * first repository by name that holds the image complete and that the caller may pull; for a write,
     * the one repository the caller may push to whose image list names the image. A caller that may
     * not reach the image anywhere gets 404 (401 if anonymous), whether or not it exists elsewhere.
     */
    async image(request: FastifyRequest, reply: FastifyReply, id: string, action: Action): Promise<string> {
      const identity = await app.identify(request, reply);
      const fromToken = tokenRepository(request, identity);
      if (fromToken !== undefined) {
        access.require(identity, fromToken, action, challenge);
        if (action !== 'pull') app.registry.proxy?.assertWritable(fromToken);
        if (action !== 'pull') request.audit = { action, repository: fromToken, reference: id };
        return fromToken;
      }
      // Looked up among the repositories the caller may use: one for a read, two to tell a write is ambiguous.
      const reach = access.reach(identity, action);
      const candidates = (action === 'pull' ? await v1.repositoriesOf(id, reach, 1) : await v1.repositoriesListing(id, reach, 2)).filter((repo) =>
        access.allows(identity, repo, action),
      );
      if (candidates.length === 0) {
        if (access.enabled && identity.user === null) throw new RegistryError('UNAUTHORIZED', 'Requires authorization', { headers: challenge() });
        throw notFound();
      }
      if (action !== 'pull' && candidates.length > 1) {
        throw new RegistryError('BAD_REQUEST', 'Several of your repositories list this image: send the token of PUT /v1/repositories/<name>/ (X-Docker-Token: true)');
      }
      const repo = candidates[0]!;
      if (action !== 'pull') app.registry.proxy?.assertWritable(repo);
      if (action !== 'pull') request.audit = { action, repository: repo, reference: id };
      return repo;
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
