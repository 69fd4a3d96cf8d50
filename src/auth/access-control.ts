import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { checkIssuerConfig } from '../config/cross-checks';
import type { Config } from '../config/schema';
import { RegistryError } from '../errors';
import { ALL_NAMES, type NamePattern } from '../index/name-filter';
import { AccessPolicy } from './access';
import { BcryptBusyError } from './bcrypt-worker';
import { CheckGate } from './check-gate';
import { Htpasswd, type HtpasswdLog } from './htpasswd';
import { IssuerKeys } from './issuer-keys';
import { FailedLoginLimiter } from './limiter';
import type { Action } from './rules';
import {
  entryFingerprint,
  grantsAllow,
  loadTokenKey,
  openV1Token,
  sameFingerprint,
  signJwt,
  signV1Token,
  verifyJwt,
  verifyV1Token,
  type BearerKeys,
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
  bearer?: { access: Grant[]; expired: boolean; exp: number; external: boolean };
  v1?: V1TokenClaims;
  /** Basic: fingerprint of the htpasswd entry the password was checked against, for the tokens issued to it. */
  fp?: string;
}

export const ANONYMOUS: Identity = Object.freeze({ user: null, via: 'anonymous' });

/** What a v1 token's access level covers (the push flow probes images with its write token). */
const V1_COVERS = new Map<V1Access, Action[]>([
  ['read', ['pull']],
  ['write', ['pull', 'push']],
  ['delete', ['pull', 'delete']],
]);

/** Failed logins wait this long before the 401, so guessing is slow; good logins never wait. */
const FAILED_LOGIN_DELAY_MS = 300;

/** What authentication has done since start, for monitoring (src/metrics reads it at scrape time). */
export interface AuthCounts {
  /** Credentials checked, by scheme: accepted or refused. Anonymous requests are not counted. */
  results: Record<'basic' | 'bearer' | 'v1token', { success: number; failure: number }>;
  /** Attempts refused without a check: a client over its failed-login or password-check limits, or the queue full. */
  limited: Record<'failed_logins' | 'password_checks' | 'password_queue', number>;
}

export class AccessControl {
  readonly counts: AuthCounts = {
    results: { basic: { success: 0, failure: 0 }, bearer: { success: 0, failure: 0 }, v1token: { success: 0, failure: 0 } },
    limited: { failed_logins: 0, password_checks: 0, password_queue: 0 },
  };
  readonly enabled: boolean;
  readonly policy: AccessPolicy;
  readonly tokensEnabled: boolean;
  private readonly htpasswd?: Htpasswd;
  private readonly limiter: FailedLoginLimiter;
  private readonly checks: CheckGate;
  private readonly key: Buffer;
  private readonly auth: Config['auth'];
  /** How long after expiry a Bearer token may still continue an upload started while it was valid. */
  private readonly uploadGraceMs: number;
  private readonly issuerKeys?: IssuerKeys;
  private readonly bearerKeys: BearerKeys;

  constructor(config: Config, log?: HtpasswdLog) {
    this.auth = config.auth;
    const token = config.auth.token;
    checkIssuerConfig(token);
    // An external issuer turns authentication on by itself: its tokens are the credentials.
    this.enabled = config.auth.htpasswd.path !== '' || token.issuer !== '';
    this.tokensEnabled = this.enabled && token.enabled;
    this.htpasswd =
      config.auth.htpasswd.path !== '' ? new Htpasswd(config.auth.htpasswd.path, log, config.auth.passwordChecks.queue) : undefined;
    this.policy = new AccessPolicy(this.enabled, config.auth.rules, config.auth.groups);
    const { limit, window, perClient } = config.auth.failedLogins;
    this.limiter = new FailedLoginLimiter(limit, window * 1000, perClient);
    this.checks = new CheckGate(config.auth.passwordChecks.perClient);
    this.key = this.enabled ? loadTokenKey(token.secretFile) : Buffer.alloc(32);
    this.uploadGraceMs = token.uploadGrace * 1000;
    this.issuerKeys = token.issuer ? new IssuerKeys(token.jwks, token.certificates, log) : undefined;
    this.bearerKeys = {
      service: token.service,
      key: this.key,
      ...(this.issuerKeys ? { issuer: { iss: token.issuer, getKey: this.issuerKeys.getKey } } : {}),
    };
  }

  close(): void {
    this.htpasswd?.close();
    this.issuerKeys?.close();
  }

  /** v2 clients are challenged with Bearer: our own token service, or an external issuer's. */
  get bearerChallenges(): boolean {
    return this.tokensEnabled || this.issuerKeys !== undefined;
  }

  /** Where Bearer challenges send clients (undefined: this registry's /token). */
  get tokenRealm(): string | undefined {
    return this.auth.token.realm || undefined;
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
      this.counts.limited.failed_logins++;
      throw new RegistryError('TOOMANYREQUESTS', 'too many failed logins; try again later', { headers: { 'retry-after': String(retryAfter) } });
    }
    const ok = await this.htpasswd.verify(user, password, () => this.checks.enter(client)).catch((err: Error) => {
      if (err instanceof RegistryError) {
        if (err.code === 'TOOMANYREQUESTS') this.counts.limited.password_checks++; // the per-client gate
        throw err;
      }
      if (err instanceof BcryptBusyError) {
        this.counts.limited.password_queue++;
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

  /**
   * Check a password and return the fingerprint of the htpasswd entry it matched (undefined: refused),
   * so that tokens issued from it stop working once that entry is removed or changed.
   */
  async authenticate(user: string, password: string, client: string): Promise<string | undefined> {
    if (!this.htpasswd) return undefined; // external issuer only: no local users
    await this.htpasswd.reloadIfChanged();
    const before = this.fingerprintOf(user);
    const ok = await this.checkPassword(user, password, client);
    // The file changed during the check: the entry we would bind to may not be the one checked.
    const after = ok ? this.fingerprintOf(user) : undefined;
    const fp = ok && sameFingerprint(before, after) ? after : undefined;
    this.counts.results.basic[fp === undefined ? 'failure' : 'success']++;
    return fp;
  }

  private fingerprintOf(user: string): string | undefined {
    const hash = this.htpasswd?.hashOf(user);
    return hash === undefined ? undefined : entryFingerprint(this.key, user, hash);
  }

  /** A web UI session of `user` (logged in against entry fingerprint `fp`) stays good as a token does. */
  sessionValid(user: string, fp: string | undefined): boolean {
    return this.htpasswd !== undefined && this.stillValid(user, fp);
  }

  /** A token of `user` stays good while their htpasswd entry is the one it was issued against. */
  private stillValid(user: string, fp: string | undefined): boolean {
    return sameFingerprint(fp, this.fingerprintOf(user));
  }

  /** Identity from a Bearer or v1 Token Authorization header (Basic is parsed by @fastify/basic-auth). */
  async identifyToken(header: string): Promise<Identity> {
    const scheme = /^bearer\s/i.test(header) ? 'bearer' : /^token\s/i.test(header) && this.enabled ? 'v1token' : undefined;
    try {
      const identity = await this.identifyTokenUncounted(header);
      if (scheme) this.counts.results[scheme].success++;
      return identity;
    } catch (err) {
      if (scheme) this.counts.results[scheme].failure++;
      throw err;
    }
  }

  private async identifyTokenUncounted(header: string): Promise<Identity> {
    if (/^bearer\s/i.test(header)) {
      const verified = await verifyJwt(header.replace(/^bearer\s+/i, '').trim(), this.bearerKeys);
      if (!verified) throw new RegistryError('UNAUTHORIZED', 'invalid token');
      const { claims, expired, external } = verified;
      // External tokens name the issuer's users, not ours: only their claims count.
      if (!external && claims.sub && !this.stillValid(claims.sub, claims.fp)) {
        throw new RegistryError('UNAUTHORIZED', 'token revoked: its user was removed or changed password');
      }
      return { user: claims.sub || null, via: 'bearer', bearer: { access: claims.access, expired, exp: claims.exp * 1000, external } };
    }
    if (/^token\s/i.test(header)) {
      if (!this.enabled) return ANONYMOUS; // open registry: v1 tokens are informative only
      const claims = await verifyV1Token(header, this.key, this.service);
      if (!claims) throw new RegistryError('UNAUTHORIZED', 'invalid or expired token');
      if (claims.user && !this.stillValid(claims.user, claims.fp)) {
        throw new RegistryError('UNAUTHORIZED', 'token revoked: its user was removed or changed password');
      }
      return { user: claims.user || null, via: 'v1token', v1: claims };
    }
    throw new RegistryError('UNAUTHORIZED', 'unsupported authorization scheme');
  }

  /**
   * May `id` perform `action` on `repo`? `uploadStartedAt`: the request continues the upload started
   * then (ms), which an expired Bearer token may still do for `uploadGrace` if it was valid at the start
   * (a long push must not break, and an upload URL carries no authority of its own).
   */
  allows(id: Identity, repo: string, action: Action, uploadStartedAt?: number): boolean {
    if (!this.enabled) return true;
    if (id.bearer) {
      if (id.bearer.expired && !this.inUploadGrace(id.bearer.exp, uploadStartedAt)) return false;
      return grantsAllow(id.bearer.access, repo, action);
    }
    if (id.v1) return id.v1.repo === repo && (V1_COVERS.get(id.v1.access)?.includes(action) ?? false) && this.policy.can(id.user, repo, action);
    return this.policy.can(id.user, repo, action);
  }

  private inUploadGrace(exp: number, uploadStartedAt: number | undefined): boolean {
    return uploadStartedAt !== undefined && uploadStartedAt < exp && Date.now() - exp < this.uploadGraceMs;
  }

  /**
   * The repositories `id` may see in the catalog or search, as patterns the index query filters with (so
   * pages are cut after filtering). Tokens name repositories, so a Bearer caller needs the registry:catalog
   * grant and is then judged by the rules, as a Basic caller is; an external issuer's catalog grant is the
   * whole catalog, as in distribution: our rules do not know its users.
   */
  listablePatterns(id: Identity): readonly NamePattern[] {
    if (!this.enabled || !id.bearer) return this.reach(id, 'pull');
    const catalog = !id.bearer.expired && id.bearer.access.some((g) => g.type === 'registry' && g.name === 'catalog');
    if (!catalog) return [];
    return id.bearer.external ? ALL_NAMES : this.policy.reach(id.user, 'pull');
  }

  /**
   * The repositories on which allows(id, ..., action) holds outside uploads, as patterns an index query
   * filters with: a lookup among them costs what the caller may reach, not what the registry holds.
   */
  reach(id: Identity, action: Action): readonly NamePattern[] {
    if (!this.enabled) return ALL_NAMES;
    if (id.bearer) {
      if (id.bearer.expired) return [];
      return id.bearer.access.filter((g) => grantsAllow([g], g.name, action)).map((g) => ({ exact: g.name }));
    }
    if (id.v1) return this.allows(id, id.v1.repo, action) ? [{ exact: id.v1.repo }] : [];
    return this.policy.reach(id.user, action);
  }

  /** Throw 401 (anonymous or expired) or 403 (known but not allowed) unless allowed. */
  require(id: Identity, repo: string, action: Action, challenge: () => Record<string, string>, uploadStartedAt?: number): void {
    if (this.allows(id, repo, action, uploadStartedAt)) return;
    if (id.user === null || id.bearer?.expired) {
      throw new RegistryError('UNAUTHORIZED', undefined, { headers: challenge(), detail: { repository: repo, action } });
    }
    throw new RegistryError('DENIED', undefined, { detail: { repository: repo, action } });
  }

  // ---- issuing tokens ----

  /**
   * A Docker registry token for what the policy grants `user` of the requested scopes. `fp`: the
   * fingerprint authenticate() returned for the user (required for a user, so the token can be revoked).
   */
  async issueToken(
    user: string | null,
    fp: string | undefined,
    scopes: string[],
  ): Promise<{ token: string; access_token: string; expires_in: number; issued_at: string }> {
    if (user !== null && fp === undefined) throw new RegistryError('UNAUTHORIZED', 'invalid username or password');
    const access: Grant[] = [];
    for (const scope of scopes) {
      const grant = this.grant(user, scope);
      if (grant) access.push(grant);
    }
    const now = Math.floor(Date.now() / 1000);
    const expiresIn = this.auth.token.expiry;
    const token = await signJwt(
      {
        iss: this.service,
        sub: user ?? '',
        aud: this.service,
        exp: now + expiresIn,
        nbf: now - 10,
        iat: now,
        jti: randomUUID(),
        access,
        ...(user !== null ? { fp } : {}),
      },
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

  /**
   * The X-Docker-Token handed out by v1 index calls, to Basic or anonymous callers only: a token
   * never buys a new token, so none outlives or outgrows what it was issued for (undefined: none).
   */
  async v1Token(id: Identity, repo: string, access: V1Access): Promise<string | undefined> {
    if (!this.enabled) return openV1Token(repo, access);
    if (id.via !== 'basic' && id.via !== 'anonymous') return undefined;
    if (id.user !== null && id.fp === undefined) return undefined;
    const exp = Math.floor(Date.now() / 1000) + this.auth.token.v1Expiry;
    return signV1Token({ user: id.user ?? '', repo, access, exp, ...(id.fp ? { fp: id.fp } : {}) }, this.key, this.service);
  }
}
