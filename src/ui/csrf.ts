import { createHmac, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { deriveKey } from './session';

// CSRF protection of every state-changing UI request (they are all POST forms; GETs change nothing):
// a token = HMAC(secret, session id + action) in the form, checked in constant time, and the request's
// Origin (or, without one, its Referer) must be this site. The session cookie is SameSite=Strict too.

export class Csrf {
  private readonly key: Buffer;

  constructor(secret: Buffer) {
    this.key = deriveKey(secret, 'csrf');
  }

  token(sid: string, action: string): string {
    return createHmac('sha256', this.key).update(`${sid}\0${action}`).digest('base64url');
  }

  check(sid: string, action: string, token: unknown): boolean {
    if (typeof token !== 'string' || token.length > 100) return false;
    const given = Buffer.from(token, 'base64url');
    const expected = Buffer.from(this.token(sid, action), 'base64url');
    return given.length === expected.length && timingSafeEqual(given, expected);
  }
}

/**
 * The request comes from a page of this site: its Origin (else Referer) has the scheme and host the
 * request was made to (X-Forwarded-Proto/Host count when the proxy is trusted, as for every URL we build).
 * Neither header: refused (every browser sends Origin on a form POST).
 */
export function sameOrigin(request: FastifyRequest): boolean {
  const site = `${request.protocol}://${request.host}`.toLowerCase();
  const origin = request.headers.origin;
  if (typeof origin === 'string' && origin !== 'null') return origin.toLowerCase() === site;
  const referer = request.headers.referer;
  if (typeof referer !== 'string') return false;
  try {
    return new URL(referer).origin.toLowerCase() === site;
  } catch {
    return false;
  }
}
