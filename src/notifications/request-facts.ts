import type { FastifyRequest } from 'fastify';

// Which request a write belongs to, for the event it makes: registry semantics (src/v1, src/v2) stay free of
// HTTP, so a route hands them these facts as a function (V2Registry.on / V1Registry.on), called only when an
// event is recorded. Passed explicitly rather than through AsyncLocalStorage, whose promise hooks would tax
// every request of the process (a few percent of a manifest GET on Node 20).

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

/** The facts of `r`, read when asked. */
export function requestFacts(r: FastifyRequest): () => RequestFacts {
  return () => ({
    id: String(r.id),
    addr: r.ip,
    host: r.host,
    method: r.method,
    useragent: r.headers['user-agent'] ?? '',
    actor: r.identity?.user ?? null,
    base: `${r.protocol}://${r.host}`,
  });
}
