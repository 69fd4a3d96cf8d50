import type { FastifyInstance } from 'fastify';
import { RegistryError } from '../../errors';
import { v1Authorizer } from './auth';
import { sendJson } from './http';

/** /v1/search and /v1/users (login as Docker 1.x performs it, v1-protocol.md 6.4). */
export async function miscRoutes(app: FastifyInstance): Promise<void> {
  const { index, access } = app.registry;
  const auth = v1Authorizer(app);

  app.get('/search', async (request, reply) => {
    const query = request.query as Record<string, string | undefined>;
    const q = query.q ?? '';
    const n = query.n === undefined || query.n === '' ? 25 : Number(query.n);
    const page = query.page === undefined || query.page === '' ? 1 : Number(query.page);
    if (!Number.isInteger(n) || n < 1 || n > 100) throw new RegistryError('BAD_REQUEST', 'n must be an integer from 1 to 100');
    if (!Number.isInteger(page) || page < 1) throw new RegistryError('BAD_REQUEST', 'page must be a positive integer');
    const identity = await app.identify(request, reply);
    const { total, hits } = await index.search(q, n, (page - 1) * n, access.listablePatterns(identity));
    return sendJson(reply, {
      num_pages: Math.max(1, Math.ceil(total / n)),
      num_results: total,
      page,
      page_size: n,
      query: q,
      results: hits.map((h) => ({
        description: h.description,
        is_automated: false,
        is_official: false,
        is_trusted: false,
        name: h.name,
        star_count: 0,
      })),
    });
  });

  // No self-registration: POST answers 401, which makes Docker go on to check the credentials with GET.
  app.post('/users', async (request, reply) => {
    request.raw.resume();
    return sendJson(reply, { error: 'Account creation is disabled on this registry; ask an administrator' }, 401);
  });
  app.get('/users', async (request, reply) => {
    await auth.login(request, reply);
    return sendJson(reply, 'OK');
  });
  app.put('/users/:username', async (request, reply) => {
    request.raw.resume();
    return sendJson(reply, { error: 'Accounts are managed by the registry administrator' }, 401);
  });
}
