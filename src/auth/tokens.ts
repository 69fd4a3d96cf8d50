import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Action } from './rules';

// Signed tokens: Docker registry tokens (JWT, HS256) for v2 Bearer auth, and the v1
// X-Docker-Token. Both are verified only by this registry, so one HMAC key signs both.

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
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

function mac(key: Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

function equalMac(a: Buffer, b: string): boolean {
  const other = Buffer.from(b, 'base64url');
  return other.length === a.length && timingSafeEqual(a, other);
}

/** Load the HMAC key, creating it (mode 0600) on first start. */
export function loadTokenKey(file: string): Buffer {
  try {
    const key = Buffer.from(readFileSync(file, 'utf8').trim(), 'base64');
    if (key.length >= 32) return key;
    throw new Error(`token key in ${file} is too short (need 32 bytes, base64)`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const key = randomBytes(32);
  writeFileSync(file, key.toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
  chmodSync(file, 0o600);
  return key;
}

export function signJwt(claims: TokenClaims, key: Buffer): string {
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify(claims));
  return `${head}.${body}.${mac(key, `${head}.${body}`).toString('base64url')}`;
}

/** The claims of an authentic token, or undefined. Expiry is the caller's decision. */
export function verifyJwt(token: string, key: Buffer): TokenClaims | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  const [head, body, sig] = parts as [string, string, string];
  if (!equalMac(mac(key, `${head}.${body}`), sig)) return undefined;
  try {
    const header = JSON.parse(Buffer.from(head, 'base64url').toString());
    if (header.alg !== 'HS256') return undefined;
    return JSON.parse(Buffer.from(body, 'base64url').toString()) as TokenClaims;
  } catch {
    return undefined;
  }
}

export function grantsAllow(access: Grant[], repo: string, action: Action): boolean {
  return access.some((g) => g.type === 'repository' && g.name === repo && (g.actions.includes(action) || g.actions.includes('*')));
}

// ---- v1 X-Docker-Token: signature=<payload>.<mac>,repository="<repo>",access=<read|write|delete> ----

export type V1Access = 'read' | 'write' | 'delete';

export interface V1TokenClaims {
  user: string;
  repo: string;
  access: V1Access;
  exp: number;
}

export function signV1Token(claims: V1TokenClaims, key: Buffer): string {
  const payload = b64url(JSON.stringify({ u: claims.user, r: claims.repo, a: claims.access, e: claims.exp }));
  return `signature=${payload}.${mac(key, payload).toString('base64url')},repository="${claims.repo}",access=${claims.access}`;
}

/** Without authentication a v1 token only tells the client its repository and access: nothing to sign. */
export function openV1Token(repo: string, access: V1Access): string {
  return `signature=${randomBytes(16).toString('hex')},repository="${repo}",access=${access}`;
}

/** Parse `Token signature=...,repository="...",access=...` (Docker may repeat the word Token). */
export function verifyV1Token(header: string, key: Buffer): V1TokenClaims | undefined {
  const sig = /signature=([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)/.exec(header);
  if (!sig) return undefined;
  const [, payload, signature] = sig as unknown as [string, string, string];
  if (!equalMac(mac(key, payload), signature)) return undefined;
  try {
    const c = JSON.parse(Buffer.from(payload, 'base64url').toString());
    return { user: c.u, repo: c.r, access: c.a, exp: c.e };
  } catch {
    return undefined;
  }
}
