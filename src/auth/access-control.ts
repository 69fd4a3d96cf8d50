import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config/schema';
import { RegistryError } from '../errors';
import { AccessPolicy } from './access';
import { BcryptBusyError } from './bcrypt-worker';
import { CheckGate } from './check-gate';
import { Htpasswd, type HtpasswdLog } from './htpasswd';
import { FailedLoginLimiter } from './limiter';
import type { Action } from './rules';
import {
  grantsAllow,
  loadTokenKey,
  openV1Token,
  signJwt,
  signV1Token,
  verifyJwt,
  verifyV1Token,
  type Grant,
  type V1Access,
  type V1TokenClaims,
} from './tokens';

// Authentication (who is calling) and authorization (may they), for both protocols.
// Routes call only authorize(); everything about credentials and rules is here.

export interface Identity {
  /** null: anonymous. */
  user: string | null;
  via: 'anonymous' | 'basic' | 'bearer' | 'v1token';
  /** Bearer: what the token grants; expired tokens are kept to let running uploads finish. */
  bearer?: { access: Grant[]; expired: boolean; exp: number };
  v1?: V1TokenClaims;
}

export const ANONYMOUS: Identity = Object.freeze({ user: null, via: 'anonymous' });

/** What a v1 token's access level covers (the push flow probes images with its write token). */
const V1_COVERS: Record<V1Access, Action[]> = { read: ['pull'], write: ['pull', 'push'], delete: ['pull', 'delete'] };

/** Failed logins wait this long before the 401, so guessing is slow; good logins never wait. */
const FAILED_LOGIN_DELAY_MS = 300;

export class AccessControl {
  readonly enabled: boolean;
  readonly policy: AccessPolicy;
  readonly tokensEnabled: boolean;
  private readonly htpasswd?: Htpasswd;
  private readonly limiter: FailedLoginLimiter;
  private readonly checks: CheckGate;
  private readonly key: Buffer;
  private readonly auth: Config['auth'];
  /** How long after expiry a Bearer token may still continue an upload it could write to. */
  private readonly uploadGraceMs: number;

  constructor(config: Config, log?: HtpasswdLog) {
    this.auth = config.auth;
    this.enabled = config.auth.htpasswd.path !== '';
    this.tokensEnabled = this.enabled && config.auth.token.enabled;
    this.htpasswd = this.enabled ? new Htpasswd(config.auth.htpasswd.path, log, config.auth.passwordChecks.queue) : undefined;
    this.policy = new AccessPolicy(this.enabled, config.auth.rules, config.auth.groups);
    const { limit, window, perClient } = config.auth.failedLogins;
    this.limiter = new FailedLoginLimiter(limit, window * 1000, perClient);
    this.checks = new CheckGate(config.auth.passwordChecks.perClient);
    this.key = this.enabled ? loadTokenKey(config.auth.token.secretFile) : Buffer.alloc(32);
    this.uploadGraceMs = config.uploads.purgeAfter * 1000;
  }

  close(): void {
    this.htpasswd?.close();
  }

  get realm(): string {
    return this.auth.htpasswd.realm;
  }

  get service(): string {
    return this.auth.token.service;
  }

  /** Password checks waiting for or running on the bcrypt worker (0 without htpasswd). */
  get pendingPasswordChecks(): number {
    return this.htpasswd?.pendingChecks ?? 0;
  }

  /**
   * Check a user name and password, with the failed-login delay and limits. Refusals come at once and
   * name when to come back (Retry-After): 429 for this client's limits, 503 when the bcrypt queue is full.
   */
  async checkPassword(user: string, password: string, client: string): Promise<boolean> {
    if (!this.htpasswd) return true;
    const retryAfter = this.limiter.retryAfter(client, user);
    if (retryAfter > 0) {
      throw new RegistryError('TOOMANYREQUESTS', 'too many failed logins; try again later', { headers: { 'retry-after': String(retryAfter) } });
    }
    const ok = await this.htpasswd.verify(user, password, () => this.checks.enter(client)).catch((err: Error) => {
      if (err instanceof RegistryError) throw err;
      if (err instanceof BcryptBusyError) {
        throw new RegistryError('UNAVAILABLE', 'too many password checks waiting; try again shortly', { headers: { 'retry-after': '1' } });
      }
      // The bcrypt worker failed (it died): say so, rather than letting it pass for bad credentials.
      throw new RegistryError('UNAVAILABLE', `cannot check passwords now: ${err.message}`);
    });
    if (ok) {
      this.limiter.succeed(client, user);
      return true;
    }
    this.limiter.fail(client, user);
    await sleep(FAILED_LOGIN_DELAY_MS);
    return false;
  }

  /** Identity from a Bearer or v1 Token Authorization header (Basic is parsed by @fastify/basic-auth). */
  identifyToken(header: string): Identity {
    if (/^bearer\s/i.test(header)) {
      const claims = verifyJwt(header.replace(/^bearer\s+/i, '').trim(), this.key);
      if (!claims || claims.aud !== this.service || claims.iss !== this.service) {
        throw new RegistryError('UNAUTHORIZED', 'invalid token');
      }
      const expired = claims.exp * 1000 <= Date.now();
      return { user: claims.sub || null, via: 'bearer', bearer: { access: claims.access ?? [], expired, exp: claims.exp * 1000 } };
    }
    if (/^token\s/i.test(header)) {
      if (!this.enabled) return ANONYMOUS; // open registry: v1 tokens are informative only
      const claims = verifyV1Token(header, this.key);
      if (!claims || claims.exp * 1000 <= Date.now()) throw new RegistryError('UNAUTHORIZED', 'invalid or expired token');
      return { user: claims.user || null, via: 'v1token', v1: claims };
    }
    throw new RegistryError('UNAUTHORIZED', 'unsupported authorization scheme');
  }

  /**
   * May `id` perform `action` on `repo`? `uploadContinuation`: the request continues an upload,
   * which an expired Bearer token may still do for a while (a long push must not break).
   */
  allows(id: Identity, repo: string, action: Action, uploadContinuation = false): boolean {
    if (!this.enabled) return true;
    if (id.bearer) {
      if (id.bearer.expired && !(uploadContinuation && Date.now() - id.bearer.exp < this.uploadGraceMs)) return false;
      return grantsAllow(id.bearer.access, repo, action);
    }
    if (id.v1) return id.v1.repo === repo && V1_COVERS[id.v1.access].includes(action) && this.policy.can(id.user, repo, action);
    return this.policy.can(id.user, repo, action);
  }

  /**
   * May `id` see `repo` in the catalog or search? Tokens name repositories, so a Bearer caller
   * needs the registry:catalog grant and is then judged by the rules, as a Basic caller is.
   */
  listable(id: Identity, repo: string): boolean {
    if (!this.enabled) return true;
    if (id.bearer) {
      const catalog = !id.bearer.expired && id.bearer.access.some((g) => g.type === 'registry' && g.name === 'catalog');
      return catalog && this.policy.can(id.user, repo, 'pull');
    }
    return this.allows(id, repo, 'pull');
  }

  /** Throw 401 (anonymous or expired) or 403 (known but not allowed) unless allowed. */
  require(id: Identity, repo: string, action: Action, challenge: () => Record<string, string>, uploadContinuation = false): void {
    if (this.allows(id, repo, action, uploadContinuation)) return;
    if (id.user === null || id.bearer?.expired) {
      throw new RegistryError('UNAUTHORIZED', undefined, { headers: challenge(), detail: { repository: repo, action } });
    }
    throw new RegistryError('DENIED', undefined, { detail: { repository: repo, action } });
  }

  // ---- issuing tokens ----

  /** A Docker registry token for what the policy grants `user` of the requested scopes. */
  issueToken(user: string | null, scopes: string[]): { token: string; access_token: string; expires_in: number; issued_at: string } {
    const access: Grant[] = [];
    for (const scope of scopes) {
      const grant = this.grant(user, scope);
      if (grant) access.push(grant);
    }
    const now = Math.floor(Date.now() / 1000);
    const expiresIn = this.auth.token.expiry;
    const token = signJwt(
      { iss: this.service, sub: user ?? '', aud: this.service, exp: now + expiresIn, nbf: now - 10, iat: now, jti: randomUUID(), access },
      this.key,
    );
    return { token, access_token: token, expires_in: expiresIn, issued_at: new Date(now * 1000).toISOString() };
  }

  /** `repository:<name>:<actions>` -> what may be granted (nothing for unknown types). */
  private grant(user: string | null, scope: string): Grant | undefined {
    const m = /^(repository|repository\([^)]*\)):(.+):([a-z*,]*)$/.exec(scope);
    if (m) {
      const name = m[2]!;
      const wanted = m[3]!.split(',').filter(Boolean);
      const allowed = this.policy.actions(user, name);
      const actions = wanted.flatMap((a) => (a === '*' ? [...allowed] : allowed.has(a as Action) ? [a] : []));
      return { type: 'repository', name, actions: [...new Set(actions)] };
    }
    if (scope === 'registry:catalog:*' && user !== null) return { type: 'registry', name: 'catalog', actions: ['*'] };
    return undefined;
  }

  /** The X-Docker-Token handed out by v1 index calls. */
  v1Token(id: Identity, repo: string, access: V1Access): string {
    if (!this.enabled) return openV1Token(repo, access);
    const exp = Math.floor(Date.now() / 1000) + Math.max(this.auth.token.expiry, 3600);
    return signV1Token({ user: id.user ?? '', repo, access, exp }, this.key);
  }
}
