import type { FastifyReply, FastifyRequest } from 'fastify';
import { RegistryError } from '../../errors';
import type { TrustProxy } from '../../http/trust-proxy';

// HTTP conventions of the v2 API shared by its handlers.

export type Handler = (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>;

/**
 * A URL for the client to follow. Behind a trusted proxy it is absolute, built from
 * X-Forwarded-Proto/Host (fastify resolves them when http.trustProxy is on); otherwise it is
 * relative, which every client resolves against the URL it used.
 */
export function location(request: FastifyRequest, path: string, trustProxy: TrustProxy): string {
  return trustProxy !== false ? `${request.protocol}://${request.host}${path}` : path;
}

/** Query parameter as a single string (the last one wins if repeated). */
export function queryParam(request: FastifyRequest, name: string): string | undefined {
  const v = (request.query as Record<string, string | string[] | undefined>)[name];
  return Array.isArray(v) ? v[v.length - 1] : v;
}

/** `n` and `last` for paginated listings. */
export function pagination(request: FastifyRequest, max: number): { n: number; last: string } {
  const nRaw = queryParam(request, 'n');
  const n = nRaw === undefined || nRaw === '' ? max : Number(nRaw);
  if (!Number.isInteger(n) || n < 0) {
    throw new RegistryError('PAGINATION_NUMBER_INVALID', 'n must be a non-negative integer', { detail: { n: nRaw } });
  }
  return { n: Math.min(n, max), last: queryParam(request, 'last') ?? '' };
}

/** RFC 8288 Link header to the next page, or nothing when this page was not full. */
export function nextLink(reply: FastifyReply, path: string, items: readonly string[], n: number): void {
  if (n > 0 && items.length === n) {
    const last = items[items.length - 1]!;
    reply.header('link', `<${path}?n=${n}&last=${encodeURIComponent(last)}>; rel="next"`);
  }
}

/** Does the request carry a body? (Content-Length > 0 or chunked.) */
export function hasBody(request: FastifyRequest): boolean {
  const len = request.headers['content-length'];
  if (len !== undefined) return Number(len) > 0;
  return request.headers['transfer-encoding'] !== undefined;
}

/** Content-Type without parameters, lower-cased. */
export function mediaTypeOf(request: FastifyRequest): string | undefined {
  const ct = request.headers['content-type'];
  return ct ? ct.split(';')[0]!.trim().toLowerCase() : undefined;
}
