import type { FastifyInstance } from 'fastify';
import { RegistryError, v2ErrorBody } from '../errors';

type Params = Record<string, string | string[] | undefined>;

/** POST /token bodies are a few credentials and scopes: read no more of them before checking the password. */
const TOKEN_BODY_LIMIT = 8 * 1024;

/**
 * Docker's token authentication (distribution docs "Token Authentication Specification"):
 * GET /token with Basic credentials or none, and the OAuth2 form, POST /token with
 * grant_type=password (containerd tries it first). The token grants what the access rules allow
 * of the requested scopes, possibly nothing: the registry then answers 401/403 itself.
 * Tokens are issued for a password or to anonymous callers only: a token (Bearer or v1) presented
 * here is refused, so no token ever buys a wider or longer-lived one.
 */
export async function tokenRoutes(app: FastifyInstance): Promise<void> {
  const { access } = app.registry;

  const checkService = (params: Params) => {
    const service = typeof params.service === 'string' ? params.service : undefined;
    if (service !== undefined && service !== access.service) throw new RegistryError('BAD_REQUEST', `unknown service ${service}`);
  };
  const scopesOf = (params: Params) =>
    ([] as string[]).concat(params.scope ?? []).flatMap((s) => s.split(' ')).filter(Boolean);

  app.get('/token', async (request, reply) => {
    const query = request.query as Params;
    checkService(query);
    const identity = await app.identify(request, reply);
    if (identity.via !== 'basic' && identity.via !== 'anonymous') {
      throw new RegistryError('UNAUTHORIZED', 'the token service takes a user name and password (Basic) or no credentials, not a token');
    }
    const issued = await access.issueToken(identity.user, identity.fp, scopesOf(query));
    reply.header('cache-control', 'no-store');
    return reply.type('application/json').send(issued);
  });

  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: TOKEN_BODY_LIMIT }, (_req, body, done) =>
    done(null, Object.fromEntries(new URLSearchParams(body as string))),
  );
  app.post('/token', { bodyLimit: TOKEN_BODY_LIMIT }, async (request, reply) => {
    const form = (request.body ?? {}) as Params;
    checkService(form);
    if (form.grant_type !== 'password') {
      throw new RegistryError('BAD_REQUEST', 'unsupported grant_type (only "password"; no refresh tokens are issued)');
    }
    const user = typeof form.username === 'string' ? form.username : '';
    const password = typeof form.password === 'string' ? form.password : '';
    const fp = user ? await access.authenticate(user, password, request.ip) : undefined;
    if (fp === undefined) throw new RegistryError('UNAUTHORIZED', 'invalid username or password');
    const issued = await access.issueToken(user, fp, scopesOf(form));
    reply.header('cache-control', 'no-store');
    return reply.type('application/json').send({ ...issued, scope: scopesOf(form).join(' ') });
  });

  app.setErrorHandler((err, request, reply) => {
    const tooLarge = (err as { statusCode?: number }).statusCode === 413;
    const e = err instanceof RegistryError ? err : tooLarge ? new RegistryError('TOO_LARGE', `body larger than ${TOKEN_BODY_LIMIT} bytes`) : new RegistryError('UNAUTHORIZED');
    if (e.headers) reply.headers(e.headers);
    if (e.status === 401) reply.header('www-authenticate', `Basic realm="${access.realm}"`);
    if (e.status >= 500) request.log.error({ err }, 'token request failed');
    return reply.code(e.status).type('application/json').send(v2ErrorBody(e));
  });
}
