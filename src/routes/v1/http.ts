import type { FastifyReply } from 'fastify';

// Response conventions of the v1 API (v1-protocol.md 1.3 and 1.5).

export function noCache(reply: FastifyReply): FastifyReply {
  return reply.headers({
    'content-type': 'application/json',
    'cache-control': 'no-cache',
    pragma: 'no-cache',
    expires: '-1',
  });
}

/** Image resources never change once complete: let clients and proxies cache them for a year. */
export function cacheForever(reply: FastifyReply): FastifyReply {
  return reply.headers({
    'cache-control': 'public, max-age=31536000',
    expires: new Date(Date.now() + 365 * 24 * 3600 * 1000).toUTCString(),
    'last-modified': 'Thu, 01 Jan 1970 00:00:00 GMT',
  });
}

/** JSON body with the no-cache headers; v1 answers "nothing" with the JSON literal true. */
export function sendJson(reply: FastifyReply, body: unknown = true, status = 200): FastifyReply {
  return noCache(reply).code(status).send(JSON.stringify(body));
}
