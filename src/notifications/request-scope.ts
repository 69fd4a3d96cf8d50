import { AsyncLocalStorage } from 'node:async_hooks';
import type { FastifyInstance, FastifyRequest } from 'fastify';

// Which request a write belongs to, for the event it makes: registry semantics (src/v1, src/v2) stay free of
// HTTP, and the event still names the request id, client address, host, method, user agent and user. The
// request is entered right before its handler, after authentication hooks and body parsers, and is carried by
// AsyncLocalStorage through the handler's awaits into the index transaction that records the change.

export interface RequestFacts {
  id: string;
  addr: string;
  host: string;
  method: string;
  useragent: string;
  /** The authenticated user, or null (anonymous). */
  actor: string | null;
  /** scheme://host of the registry as the client reached it (behind a trusted proxy: the proxy's). */
  base: string;
}

const scope = new AsyncLocalStorage<FastifyRequest>();

/** Enter each request's scope before its handler (only installed when notifications are on). */
export function enterRequestScope(app: FastifyInstance): void {
  app.addHook('preHandler', (request, _reply, done) => scope.run(request, done));
}

/** The request whose handler is running, or undefined (background work, the CLI). */
export function currentRequest(): RequestFacts | undefined {
  const r = scope.getStore();
  if (!r) return undefined;
  return {
    id: String(r.id),
    addr: r.ip,
    host: r.host,
    method: r.method,
    useragent: r.headers['user-agent'] ?? '',
    actor: r.identity?.user ?? null,
    base: `${r.protocol}://${r.host}`,
  };
}
