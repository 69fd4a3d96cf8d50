import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { SignJWT, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { loadOrCreateKey } from './key-file';
import type { Action } from './rules';

// Signed tokens, by the jose library: Docker registry tokens (JWT) for v2 Bearer auth, and the v1
// X-Docker-Token. Ours are HS256 under one HMAC key; an external issuer's are RS/ES-signed and
// checked against its public keys (issuer-keys.ts).

export interface Grant {
  type: 'repository' | 'registry';
  name: string;
  actions: string[];
}

export interface TokenClaims {
  iss: string;
  sub: string; // '' for anonymous
  aud: string;
  exp: number;
  nbf: number;
  iat: number;
  jti: string;
  access: Grant[];
  /** Fingerprint of the subject's htpasswd entry at issue time (our own tokens of a user only). */
  fp?: string;
}

/** Our own tokens; an external issuer may use only public-key algorithms, so no key serves both. */
const OWN_ALG = 'HS256';
export const EXTERNAL_ALGS = ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512'];
/** v1 tokens are JWTs too, kept apart from Bearer tokens by their `typ` and audience. */
const V1_TYP = 'docker-v1+jwt';
const v1Audience = (service: string) => `${service}#v1`;

/** Load the HMAC key, creating it on first start. */
export function loadTokenKey(file: string): Buffer {
  return loadOrCreateKey(file, 'auth.token.secretFile');
}

/**
 * Binds a token to one version of a user's htpasswd entry: a removed user or a new password no longer
 * matches. Keyed, so a token does not carry a hash of a legacy unsalted {SHA} entry to guess against.
 */
export function entryFingerprint(key: Buffer, user: string, hash: string): string {
  return createHmac('sha256', key).update(user).update('\0').update(hash).digest('hex').slice(0, 16);
}

export function sameFingerprint(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined || a.length !== b.length) return false;
  return timingSafeEqual(Buffer.from(a), Buffer.from(b));
}

export function signJwt(claims: TokenClaims, key: Buffer): Promise<string> {
  return new SignJWT({ ...claims }).setProtectedHeader({ alg: OWN_ALG, typ: 'JWT' }).sign(key);
}

export interface BearerKeys {
  /** Our `iss` and the `aud` every token must name. */
  service: string;
  key: Buffer;
  /** The external issuer's `iss` and a resolver of its public keys (by kid, x5c), if one is configured. */
  issuer?: { iss: string; getKey: JWTVerifyGetKey };
}

export interface VerifiedToken {
  claims: TokenClaims;
  expired: boolean;
  /** Signed by the external issuer (not by this registry). */
  external: boolean;
}

/**
 * The claims of an authentic Bearer token, or undefined. An expired token is returned marked as
 * such (it may still finish an upload); every other check must pass.
 */
export async function verifyJwt(token: string, keys: BearerKeys): Promise<VerifiedToken | undefined> {
  let external = false;
  // The algorithm picks the key: HS256 only ever with our secret, RS/ES only with the issuer's public keys.
  const getKey: JWTVerifyGetKey = async (header, jws) => {
    if (header.alg === OWN_ALG) return keys.key;
    if (!keys.issuer) throw new errors.JOSEAlgNotAllowed('no external issuer configured');
    external = true;
    return keys.issuer.getKey(header, jws);
  };
  const algorithms = keys.issuer ? [OWN_ALG, ...EXTERNAL_ALGS] : [OWN_ALG];
  let payload: JWTPayload;
  let expired = false;
  try {
    ({ payload } = await jwtVerify(token, getKey, { algorithms, audience: keys.service, requiredClaims: ['exp'] }));
  } catch (err) {
    // jose checks the signature, then iss/aud/nbf, then exp: an expiry error means all else held.
    if (!(err instanceof errors.JWTExpired && err.claim === 'exp')) return undefined;
    payload = err.payload;
    expired = true;
  }
  if (payload.iss !== (external ? keys.issuer!.iss : keys.service)) return undefined;
  const claims: TokenClaims = {
    iss: payload.iss,
    sub: typeof payload.sub === 'string' ? payload.sub : '',
    aud: keys.service,
    exp: payload.exp!,
    nbf: payload.nbf ?? 0,
    iat: payload.iat ?? 0,
    jti: payload.jti ?? '',
    access: grantsOf(payload.access),
    ...(typeof payload.fp === 'string' && !external ? { fp: payload.fp } : {}),
  };
  return { claims, expired, external };
}

/** The `access` claim in Docker's shape; anything else in it grants nothing. */
function grantsOf(access: unknown): Grant[] {
  if (!Array.isArray(access)) return [];
  return access.flatMap((g) =>
    g && typeof g === 'object' && (g.type === 'repository' || g.type === 'registry') && typeof g.name === 'string' && Array.isArray(g.actions)
      ? [{ type: g.type, name: g.name, actions: g.actions.filter((a: unknown): a is string => typeof a === 'string') }]
      : [],
  );
}

export function grantsAllow(access: Grant[], repo: string, action: Action): boolean {
  return access.some((g) => g.type === 'repository' && g.name === repo && (g.actions.includes(action) || g.actions.includes('*')));
}

// ---- v1 X-Docker-Token: signature=<JWT>,repository="<repo>",access=<read|write|delete> ----

export type V1Access = 'read' | 'write' | 'delete';
const V1_ACCESS: readonly string[] = ['read', 'write', 'delete'];

export interface V1TokenClaims {
  user: string;
  repo: string;
  access: V1Access;
  exp: number;
  fp?: string;
}

export async function signV1Token(claims: V1TokenClaims, key: Buffer, service: string): Promise<string> {
  const jwt = await new SignJWT({ sub: claims.user, repo: claims.repo, access: claims.access, ...(claims.fp ? { fp: claims.fp } : {}) })
    .setProtectedHeader({ alg: OWN_ALG, typ: V1_TYP })
    .setIssuer(service)
    .setAudience(v1Audience(service))
    .setIssuedAt()
    .setExpirationTime(claims.exp)
    .sign(key);
  return `signature=${jwt},repository="${claims.repo}",access=${claims.access}`;
}

/** Without authentication a v1 token only tells the client its repository and access: nothing to sign. */
export function openV1Token(repo: string, access: V1Access): string {
  return `signature=${randomBytes(16).toString('hex')},repository="${repo}",access=${access}`;
}

/** Parse and verify `Token signature=...,repository="...",access=...` (Docker may repeat the word Token); expired: undefined. */
export async function verifyV1Token(header: string, key: Buffer, service: string): Promise<V1TokenClaims | undefined> {
  const sig = /signature=([\w-]+\.[\w-]+\.[\w-]+)/.exec(header);
  if (!sig) return undefined;
  try {
    const { payload: c } = await jwtVerify(sig[1]!, key, {
      algorithms: [OWN_ALG],
      typ: V1_TYP,
      issuer: service,
      audience: v1Audience(service),
      requiredClaims: ['exp'],
    });
    if (typeof c.sub !== 'string' || typeof c.repo !== 'string' || typeof c.access !== 'string' || !V1_ACCESS.includes(c.access)) return undefined;
    return { user: c.sub, repo: c.repo, access: c.access as V1Access, exp: c.exp!, ...(typeof c.fp === 'string' ? { fp: c.fp } : {}) };
  } catch {
    return undefined;
  }
}
