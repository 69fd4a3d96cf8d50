import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { entryFingerprint, signJwt, type Grant } from '../../src/auth/tokens';

// Tokens as this registry signs them, made by a test (e.g. already expired), bound to the user's
// current htpasswd entry as /token would bind them.

/** The HMAC key of a running test registry. */
export const tokenKey = (keyFile: string) => Buffer.from(readFileSync(keyFile, 'utf8').trim(), 'base64');

/** A Bearer token of `user` for `access`, expiring at `exp` (seconds), signed with the registry's key. */
export function ownToken(keyFile: string, htpasswd: string, user: string, access: Grant[], exp: number, service = 'registry'): Promise<string> {
  const key = tokenKey(keyFile);
  const line = readFileSync(htpasswd, 'utf8').split('\n').find((l) => l.startsWith(`${user}:`));
  const fp = line ? entryFingerprint(key, user, line.slice(user.length + 1).trim()) : undefined;
  const now = Math.floor(Date.now() / 1000);
  return signJwt({ iss: service, sub: user, aud: service, exp, nbf: now - 100, iat: now - 100, jti: randomUUID(), access, ...(fp ? { fp } : {}) }, key);
}
