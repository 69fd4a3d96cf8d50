import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

// The UI session: a cookie holding its payload and an HMAC-SHA256 of it, so the server keeps no session
// state (sessions survive restarts and work across replicas sharing ui.sessionSecretFile). A session names
// a user (null: an anonymous visitor, who still needs a session id for CSRF tokens), its expiry, a random
// id that CSRF tokens are bound to, and the fingerprint of the user's htpasswd entry at login, so a removed
// user or a changed password ends the session as it revokes tokens.

export const SESSION_COOKIE = 'registry_session';

export interface Session {
  /** null: anonymous. */
  user: string | null;
  /** Expiry, ms since the epoch. */
  exp: number;
  /** Random id: CSRF tokens are bound to it. */
  sid: string;
  /** Fingerprint of the user's htpasswd entry when they logged in. */
  fp?: string;
}

const b64 = (b: Buffer) => b.toString('base64url');

/** Keys derived from the one secret, each for one purpose. */
export function deriveKey(secret: Buffer, purpose: string): Buffer {
  return createHmac('sha256', secret).update(`tsregistry-ui:${purpose}`).digest();
}

export class SessionCodec {
  private readonly key: Buffer;

  constructor(secret: Buffer) {
    this.key = deriveKey(secret, 'session');
  }

  private mac(payload: string): Buffer {
    return createHmac('sha256', this.key).update(payload).digest();
  }

  /** A new session for `user`, valid for `ttlMs`. */
  create(user: string | null, ttlMs: number, fp?: string, now = Date.now()): Session {
    return { user, exp: now + ttlMs, sid: b64(randomBytes(18)), ...(fp !== undefined ? { fp } : {}) };
  }

  encode(s: Session): string {
    const payload = b64(Buffer.from(JSON.stringify({ u: s.user, e: s.exp, s: s.sid, ...(s.fp !== undefined ? { f: s.fp } : {}) })));
    return `${payload}.${b64(this.mac(payload))}`;
  }

  /** The session a cookie value carries, if its MAC is right and it has not expired. */
  decode(value: string | undefined, now = Date.now()): Session | undefined {
    if (!value || value.length > 4096) return undefined;
    const dot = value.indexOf('.');
    if (dot <= 0) return undefined;
    const payload = value.slice(0, dot);
    const given = Buffer.from(value.slice(dot + 1), 'base64url');
    const expected = this.mac(payload);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
    let data: { u?: unknown; e?: unknown; s?: unknown; f?: unknown };
    try {
      data = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    } catch {
      return undefined;
    }
    if (typeof data.e !== 'number' || data.e <= now || typeof data.s !== 'string') return undefined;
    if (data.u !== null && typeof data.u !== 'string') return undefined;
    return { user: data.u, exp: data.e, sid: data.s, ...(typeof data.f === 'string' ? { fp: data.f } : {}) };
  }
}

/** The cookies of a Cookie header (first value wins, as browsers send the most specific path first). */
export function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!header) return out;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    if (!out.has(name)) out.set(name, part.slice(eq + 1).trim());
  }
  return out;
}

/** A Set-Cookie value for the session: HttpOnly, SameSite=Strict, Secure over TLS, scoped to the UI's path. */
export function sessionCookie(value: string, opts: { path: string; secure: boolean; maxAgeSeconds: number }): string {
  return [
    `${SESSION_COOKIE}=${value}`,
    `Path=${opts.path}`,
    `Max-Age=${Math.max(0, Math.ceil(opts.maxAgeSeconds))}`,
    'HttpOnly',
    'SameSite=Strict',
    ...(opts.secure ? ['Secure'] : []),
  ].join('; ');
}
