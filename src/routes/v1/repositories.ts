import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Identity } from '../../auth/access-control';
import type { V1Access } from '../../auth/tokens';
import { RegistryError } from '../../errors';
import { readSmallBody } from '../../http/body';
import { v1RepositoryName } from '../../v1/names';
import { v1Authorizer } from './auth';
import { sendJson } from './http';
import { requestFacts } from '../../notifications/request-facts';

// /v1/repositories/<repo>/... : repository names contain slashes, so one wildcard route per method
// parses the path from the right: the last segments say what is asked, the rest is the name.

type Resource =
  | { kind: 'tagJson'; tag: string }
  | { kind: 'tag'; tag: string }
  | { kind: 'tags' }
  | { kind: 'json' | 'images' | 'properties' | 'auth' }
  | { kind: 'repository' };

/** The route pattern each kind of resource is counted under in metrics (never a name or a tag). */
const ROUTE_LABELS: Record<Resource['kind'], string> = {
  tagJson: '/v1/repositories/<name>/tags/<tag>/json',
  tag: '/v1/repositories/<name>/tags/<tag>',
  tags: '/v1/repositories/<name>/tags',
  json: '/v1/repositories/<name>/json',
  images: '/v1/repositories/<name>/images',
  properties: '/v1/repositories/<name>/properties',
  auth: '/v1/repositories/<name>/auth',
  repository: '/v1/repositories/<name>/',
};

function parsePath(raw: string): { repo: string; res: Resource } {
  const path = raw.replace(/\/+$/, '');
  let m: RegExpExecArray | null;
  if ((m = /^(.+)\/tags\/([^/]+)\/json$/.exec(path))) return { repo: v1RepositoryName(m[1]!), res: { kind: 'tagJson', tag: m[2]! } };
  if ((m = /^(.+)\/tags\/([^/]+)$/.exec(path))) return { repo: v1RepositoryName(m[1]!), res: { kind: 'tag', tag: m[2]! } };
  if ((m = /^(.+)\/tags$/.exec(path))) return { repo: v1RepositoryName(m[1]!), res: { kind: 'tags' } };
  if ((m = /^(.+)\/(json|images|properties|auth)$/.exec(path))) {
    return { repo: v1RepositoryName(m[1]!), res: { kind: m[2] as 'json' | 'images' | 'properties' | 'auth' } };
  }
  if (path === '') throw new RegistryError('NOT_FOUND', 'Repository not found');
  return { repo: v1RepositoryName(path), res: { kind: 'repository' } };
}


export async function repositoryRoutes(app: FastifyInstance): Promise<void> {
  const { v1, config, access, bridge } = app.registry;
  const auth = v1Authorizer(app);
  const body = (request: FastifyRequest) => readSmallBody(request.raw, config.http.maxJsonBody);
  const notAllowed = () => new RegistryError('NOT_FOUND', 'Not found');

  /** Index responses tell the client where the registry is and, when asked, hand out a token. */
  const indexHeaders = async (request: FastifyRequest, reply: FastifyReply, repo: string, level: V1Access) => {
    reply.header('x-docker-endpoints', request.host);
    if (String(request.headers['x-docker-token']).toLowerCase() === 'true') {
      // undefined for callers that came with a token: a token never buys a new one.
      const token = await access.v1Token(request.identity as Identity, repo, level);
      if (token === undefined) return;
      reply.header('x-docker-token', token);
      reply.header('www-authenticate', `Token ${token}`);
    }
  };

  app.get('/repositories/*', async (request, reply) => {
    const { repo, res } = parsePath((request.params as { '*': string })['*']);
    request.routeLabel = ROUTE_LABELS[res.kind];
    await auth.repository(request, reply, repo, 'pull');
    switch (res.kind) {
      case 'tags':
        return sendJson(reply, await v1.listTags(repo));
      case 'tag':
        return sendJson(reply, await v1.getTag(repo, res.tag));
      case 'tagJson':
        return sendJson(reply, await v1.tagJson(repo, res.tag));
      case 'json':
        return sendJson(reply, await v1.tagJson(repo, 'latest'));
      case 'images': {
        const list = await v1.getImageList(repo);
        await indexHeaders(request, reply, repo, 'read');
        return sendJson(reply, list);
      }
      case 'properties':
        return sendJson(reply, await v1.getProperties(repo));
      default:
        throw notAllowed();
    }
  });

  app.put('/repositories/*', async (request, reply) => {
    const { repo, res } = parsePath((request.params as { '*': string })['*']);
    request.routeLabel = ROUTE_LABELS[res.kind];
    // PUT .../auth is the index's token check (v1-protocol.md 3.9): no repository access needed.
    if (res.kind !== 'auth') await auth.repository(request, reply, repo, 'push');
    switch (res.kind) {
      case 'tag':
        await v1.on(requestFacts(request)).putTag(repo, res.tag, await body(request), request.headers['user-agent']);
        bridge?.afterV1TagChange(repo, res.tag); // the v2 view follows, in the background (docs/bridge.md)
        return sendJson(reply);
      case 'repository':
        await v1.putImageList(repo, await body(request));
        await indexHeaders(request, reply, repo, 'write');
        return sendJson(reply, '');
      case 'images':
        await v1.putImageList(repo, await body(request));
        await indexHeaders(request, reply, repo, 'write');
        return reply.code(204).send();
      case 'properties':
        await v1.setProperties(repo, await body(request));
        return sendJson(reply);
      case 'auth':
        request.raw.resume();
        return sendJson(reply, 'OK');
      default:
        throw notAllowed();
    }
  });

  app.delete('/repositories/*', async (request, reply) => {
    const { repo, res } = parsePath((request.params as { '*': string })['*']);
    request.routeLabel = ROUTE_LABELS[res.kind];
    await auth.repository(request, reply, repo, 'delete');
    switch (res.kind) {
      case 'tag':
        await v1.on(requestFacts(request)).deleteTag(repo, res.tag);
        bridge?.afterV1TagChange(repo, res.tag);
        return sendJson(reply);
      case 'tags':
      case 'repository':
        await v1.on(requestFacts(request)).deleteRepository(repo);
        return sendJson(reply);
      case 'images':
        // The index's delete step; the registry delete above does the work.
        await indexHeaders(request, reply, repo, 'delete');
        return reply.code(204).send();
      default:
        throw notAllowed();
    }
  });
}
