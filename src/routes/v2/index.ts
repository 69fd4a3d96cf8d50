import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Action } from '../../auth/rules';
import { RegistryError, toRegistryError, v2ErrorBody } from '../../errors';
import { drainUnreadBody } from '../../http/body';
import { blobHandlers } from './blobs';
import { manifestHandlers } from './manifests';
import { parseV2Path, type V2Resource } from './paths';

/** The route pattern each kind of resource is counted under in metrics (never a name or a digest). */
const ROUTE_LABELS: Record<V2Resource['kind'], string> = {
  base: '/v2/',
  catalog: '/v2/_catalog',
  tags: '/v2/<name>/tags/list',
  manifest: '/v2/<name>/manifests/<reference>',
  uploads: '/v2/<name>/blobs/uploads/',
  upload: '/v2/<name>/blobs/uploads/<uuid>',
  blob: '/v2/<name>/blobs/<digest>',
  referrers: '/v2/<name>/referrers/<digest>',
  repository: '/v2/_registry/repositories/<name>',
};

/** Every response of the v2 tree says which API it is (Docker decides v1 vs v2 on this header). */
const API_VERSION = { 'docker-distribution-api-version': 'registry/2.0' };

/**
 * The OCI Distribution API under /v2. Repository names contain slashes, so one wildcard route
 * takes every method, parses the path (paths.ts) and dispatches to the handler for
 * (resource, method). Bodies are never parsed by fastify: blobs stream, manifests are kept byte for byte.
 */
export async function v2Routes(app: FastifyInstance): Promise<void> {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null));
  app.addHook('onRequest', async (_request, reply) => {
    reply.headers(API_VERSION);
  });

  app.setErrorHandler((err, request, reply) => {
    const e = toRegistryError(err);
    if (e.status >= 500 || (err as Error).name === 'StorageNotFoundError') request.log.error({ err }, 'v2 request failed');
    if (drainUnreadBody(request.raw)) reply.header('connection', 'close');
    if (e.headers) reply.headers(e.headers);
    return reply.code(e.status).type('application/json').send(v2ErrorBody(e));
  });
  app.setNotFoundHandler((_request, reply) =>
    reply.code(404).type('application/json').send(v2ErrorBody(new RegistryError('NOT_FOUND', 'no such API endpoint'))),
  );

  const blobs = blobHandlers(app.registry);
  const manifests = manifestHandlers(app.registry);

  type Dispatch = (req: FastifyRequest, reply: FastifyReply, res: V2Resource) => Promise<unknown>;
  const table: { [K in V2Resource['kind']]: Record<string, Dispatch> } = {
    base: { GET: async (_q, reply) => reply.type('application/json').send({}) },
    catalog: { GET: (q, r) => manifests.catalog(q, r) },
    tags: { GET: (q, r, res) => manifests.tags(q, r, (res as Named).name) },
    manifest: {
      GET: (q, r, res) => manifests.getManifest(q, r, ...ref(res)),
      PUT: (q, r, res) => manifests.putManifest(q, r, ...ref(res)),
      DELETE: (q, r, res) => manifests.deleteManifest(q, r, ...ref(res)),
    },
    uploads: { POST: (q, r, res) => blobs.postUpload(q, r, (res as Named).name) },
    upload: {
      GET: (q, r, res) => blobs.getUpload(q, r, ...upload(res)),
      PATCH: (q, r, res) => blobs.patchUpload(q, r, ...upload(res)),
      PUT: (q, r, res) => blobs.putUpload(q, r, ...upload(res)),
      DELETE: (q, r, res) => blobs.deleteUpload(q, r, ...upload(res)),
    },
    blob: {
      GET: (q, r, res) => blobs.getBlob(q, r, ...digest(res)),
      DELETE: (q, r, res) => blobs.deleteBlob(q, r, ...digest(res)),
    },
    referrers: { GET: (q, r, res) => manifests.referrers(q, r, ...digest(res)) },
    repository: { DELETE: (q, r, res) => manifests.deleteRepository(q, r, (res as Named).name) },
  };

  const { access } = app.registry;
  const dispatch = async (request: FastifyRequest, reply: FastifyReply) => {
    const res = parseV2Path((request.params as { '*'?: string })['*'] ?? '');
    if (!res) throw new RegistryError('NOT_FOUND', 'no such API endpoint');
    request.routeLabel = ROUTE_LABELS[res.kind];
    const handlers = table[res.kind];
    // HEAD is GET without a body; handlers check request.method themselves.
    const method = request.method === 'HEAD' ? 'GET' : request.method;
    const handler = handlers[method];
    if (!handler) {
      reply.header('allow', Object.keys(handlers).flatMap((m) => (m === 'GET' ? ['GET', 'HEAD'] : [m])).join(', '));
      throw new RegistryError('UNSUPPORTED', `${request.method} is not supported here`);
    }
    const identity = await app.identify(request, reply);
    const need = requiredAccess(res, method);
    const challenge = () => challengeFor(request, need && 'name' in res ? { name: res.name, action: need } : undefined);
    // /v2/ is where clients check their credentials: anonymous or expired means 401 and a challenge.
    if (res.kind === 'base' && access.enabled && ((identity.user === null && !identity.bearer) || identity.bearer?.expired)) {
      throw new RegistryError('UNAUTHORIZED', undefined, { headers: challenge() });
    }
    if (need && 'name' in res) {
      // An expired token may only finish an upload started while it was valid: pass when this one started.
      const startedAt = res.kind === 'upload' && identity.bearer?.expired ? (await app.registry.blobs.getUpload(res.id))?.startedAt : undefined;
      access.require(identity, res.name, need, challenge, startedAt);
      // Under a proxy prefix the upstream is the only writer: no push, no delete (access rules still decide pulls).
      if (need !== 'pull') app.registry.proxy?.assertWritable(res.name);
      if ((need === 'push' && res.kind === 'manifest') || need === 'delete') {
        request.audit = { action: need, repository: res.name, reference: 'reference' in res ? res.reference : 'digest' in res ? res.digest : undefined };
      }
    }
    return handler(request, reply, res);
  };

  /** WWW-Authenticate for a 401: Bearer with the scope when the token service is on, else Basic. */
  const challengeFor = (request: FastifyRequest, scope?: { name: string; action: Action }): Record<string, string> => {
    if (!access.bearerChallenges) return { 'www-authenticate': `Basic realm="${access.realm}"` };
    const actions = scope?.action === 'push' ? 'pull,push' : scope?.action;
    const realm = access.tokenRealm ?? `${request.protocol}://${request.host}/token`;
    const scopePart = scope ? `,scope="repository:${scope.name}:${actions}"` : '';
    return { 'www-authenticate': `Bearer realm="${realm}",service="${access.service}"${scopePart}` };
  };

  const methods = ['GET', 'HEAD', 'PUT', 'POST', 'PATCH', 'DELETE'];
  app.route({ method: methods, url: '/', handler: dispatch });
  app.route({ method: methods, url: '/*', handler: dispatch });
}

/** The action a request needs on its repository (undefined: none, e.g. base and catalog). */
function requiredAccess(res: V2Resource, method: string): Action | undefined {
  switch (res.kind) {
    case 'base':
    case 'catalog':
      return undefined;
    case 'uploads':
    case 'upload':
      return 'push';
    case 'manifest':
    case 'blob':
      return method === 'GET' ? 'pull' : method === 'DELETE' ? 'delete' : 'push';
    case 'repository':
      return 'delete';
    default:
      return 'pull';
  }
}

type Named = { name: string };
const ref = (res: V2Resource) => [(res as Named).name, (res as { reference: string }).reference] as const;
const upload = (res: V2Resource) => [(res as Named).name, (res as { id: string }).id] as const;
const digest = (res: V2Resource) => [(res as Named).name, (res as { digest: string }).digest] as const;
