import { readFileSync } from 'node:fs';
import http, { type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import https from 'node:https';
import type { FastifyBaseLogger } from 'fastify';
import { parseChallenges, type Challenge } from './challenge';
import type { UpstreamConfig } from './config';

// One upstream registry, spoken to over plain node:http(s) (responses stream; nothing is buffered but
// small bodies): Basic authentication, the Docker token flow (anonymous or with credentials, tokens
// cached per scope until they expire), redirects (blob GETs often go to a CDN or storage), and one
// deadline per request for connecting, for the headers and between body bytes.

/** Why an upstream request failed; 'unavailable' kinds make the cache serve what it has (docs/proxy.md). */
export type UpstreamErrorKind = 'timeout' | 'connection' | 'server' | 'rateLimited' | 'unauthorized' | 'digest' | 'invalid';

/** Kinds that mean "the upstream is down or refuses service now", not "what you asked for is wrong". */
export const UNAVAILABLE_KINDS: ReadonlySet<UpstreamErrorKind> = new Set(['timeout', 'connection', 'server', 'rateLimited']);

export class UpstreamError extends Error {
  override name = 'UpstreamError';
  constructor(
    readonly kind: UpstreamErrorKind,
    message: string,
  ) {
    super(message);
  }
}

interface CachedToken {
  token: string;
  /** ms since the epoch; the token is not used after this. */
  expiresAt: number;
}

/** Largest token response read: a token service answering more than this is broken. */
const MAX_TOKEN_BODY = 1024 * 1024;
const MAX_REDIRECTS = 5;
/** A token without expires_in lives 60 s (the token spec's default); used until shortly before. */
const DEFAULT_TOKEN_SECONDS = 60;
const TOKEN_MARGIN_MS = 5_000;
const MAX_TOKENS = 1000;

export interface UpstreamRequest {
  method: 'GET' | 'HEAD';
  /** Path under the registry, e.g. /v2/library/alpine/manifests/latest. */
  path: string;
  /** The repository, for the token scope. */
  repository: string;
  headers?: OutgoingHttpHeaders;
}

export class Upstream {
  readonly url: URL;
  private readonly agent: http.Agent;
  /** For redirects to other hosts (CDNs): default trust store, no credentials. */
  private readonly foreignAgent: http.Agent;
  private readonly timeoutMs: number;
  private readonly tokens = new Map<string, CachedToken>();
  /** The scheme the upstream asked for last: sent up front from then on, saving a 401 round trip. */
  private challenge: Challenge | undefined;
  private readonly ca?: Buffer;

  constructor(
    readonly config: UpstreamConfig,
    private readonly log: FastifyBaseLogger,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    this.url = new URL(config.url);
    this.timeoutMs = config.timeout * 1000;
    this.ca = config.caFile ? readFileSync(config.caFile) : undefined;
    const isHttps = this.url.protocol === 'https:';
    this.agent = isHttps ? new https.Agent({ keepAlive: true, ca: this.ca }) : new http.Agent({ keepAlive: true });
    this.foreignAgent = isHttps ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true });
  }

  close(): void {
    this.agent.destroy();
    this.foreignAgent.destroy();
  }

  /** The password, read when needed (a rotated file is picked up); never logged. */
  private password(): string | undefined {
    if (!this.config.username) return undefined;
    if (this.config.passwordFile) {
      try {
        return readFileSync(this.config.passwordFile, 'utf8').replace(/\r?\n$/, '');
      } catch (err) {
        throw new UpstreamError('unauthorized', `cannot read the password of ${this.url.origin}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
      }
    }
    return this.env[this.config.passwordEnv] ?? '';
  }

  private basic(): string | undefined {
    const password = this.password();
    return password === undefined ? undefined : 'Basic ' + Buffer.from(`${this.config.username}:${password}`).toString('base64');
  }

  /**
   * Send a request, authenticating as the upstream asks (at most one 401 answered per call), following
   * redirects. Resolves with the final response, whatever its status; the caller consumes or destroys it.
   */
  async request(req: UpstreamRequest): Promise<IncomingMessage> {
    const scope = `repository:${req.repository}:pull`;
    let auth = await this.authorization(scope, false);
    let { res, url } = await this.send(req, auth);
    if (res.statusCode === 401) {
      // Only the upstream itself says how to authenticate to it: a host it redirected to (a CDN) must not
      // name a token realm that our credentials would then be sent to.
      if (url.origin !== this.url.origin) {
        res.resume();
        throw new UpstreamError('unauthorized', `${url.origin}, where ${this.url.origin} redirected, answered 401`);
      }
      const challenges = parseChallenges(res.headers['www-authenticate']);
      res.resume();
      const chosen = challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic');
      if (!chosen) throw new UpstreamError('unauthorized', `${this.url.origin} answered 401 without a Bearer or Basic challenge`);
      this.challenge = chosen;
      auth = await this.authorization(chosen.params.scope ?? scope, true);
      if (auth === undefined) throw new UpstreamError('unauthorized', `${this.url.origin} requires credentials (none configured)`);
      ({ res } = await this.send(req, auth));
      if (res.statusCode === 401) {
        res.resume();
        throw new UpstreamError('unauthorized', `${this.url.origin} refused the ${chosen.scheme === 'bearer' ? 'token' : 'credentials'} (401)`);
      }
    }
    return res;
  }

  /** The Authorization header for `scope` under the last challenge; `renew`: a cached token was refused. */
  private async authorization(scope: string, renew: boolean): Promise<string | undefined> {
    const c = this.challenge;
    if (!c) return undefined;
    if (c.scheme === 'basic') return this.basic();
    if (c.scheme !== 'bearer' || !c.params.realm) return undefined;
    const key = `${c.params.realm} ${c.params.service ?? ''} ${scope}`;
    const cached = this.tokens.get(key);
    if (cached && !renew && cached.expiresAt > Date.now()) return `Bearer ${cached.token}`;
    const token = await this.fetchToken(c.params.realm, c.params.service, scope);
    if (this.tokens.size >= MAX_TOKENS) this.tokens.clear();
    this.tokens.set(key, token);
    return `Bearer ${token.token}`;
  }

  /** GET realm?service=&scope= (with Basic credentials when configured, else anonymous). */
  private async fetchToken(realm: string, service: string | undefined, scope: string): Promise<CachedToken> {
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new UpstreamError('invalid', `${this.url.origin} named an invalid token realm`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new UpstreamError('invalid', `${this.url.origin} named a token realm that is not http(s)`);
    if (service) url.searchParams.set('service', service);
    url.searchParams.set('scope', scope);
    const basic = this.basic();
    if (basic && this.url.protocol === 'https:' && url.protocol !== 'https:') {
      throw new UpstreamError('invalid', `${this.url.origin} named a token realm over plain http: the credentials are not sent there`);
    }
    const res = await this.raw(url, 'GET', basic ? { authorization: basic } : {});
    const body = await readLimited(res, MAX_TOKEN_BODY, this.timeoutMs);
    if (res.statusCode === 401 || res.statusCode === 403) throw new UpstreamError('unauthorized', `the token service of ${this.url.origin} refused (${res.statusCode})`);
    if (res.statusCode !== 200) throw statusError(this.url.origin + ' token service', res.statusCode ?? 0);
    let doc: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      doc = JSON.parse(body.toString('utf8'));
    } catch {
      throw new UpstreamError('invalid', `the token service of ${this.url.origin} answered no JSON`);
    }
    const token = typeof doc.token === 'string' ? doc.token : typeof doc.access_token === 'string' ? doc.access_token : undefined;
    if (!token) throw new UpstreamError('invalid', `the token service of ${this.url.origin} answered no token`);
    const seconds = typeof doc.expires_in === 'number' && doc.expires_in > 0 ? doc.expires_in : DEFAULT_TOKEN_SECONDS;
    this.log.debug({ upstream: this.url.origin, scope, seconds }, 'upstream token obtained');
    return { token, expiresAt: Date.now() + Math.max(seconds * 1000 - TOKEN_MARGIN_MS, 1000) };
  }

  /** Send to the upstream, following redirects; Authorization goes only to the upstream's own origin. */
  private async send(req: UpstreamRequest, auth: string | undefined): Promise<{ res: IncomingMessage; url: URL }> {
    let url = new URL(req.path, this.url);
    for (let hops = 0; ; hops++) {
      const own = url.origin === this.url.origin;
      const headers = { ...req.headers, ...(own && auth ? { authorization: auth } : {}) };
      const res = await this.raw(url, req.method, headers);
      const status = res.statusCode ?? 0;
      if (![301, 302, 303, 307, 308].includes(status) || !res.headers.location) return { res, url };
      res.resume();
      if (hops >= MAX_REDIRECTS) throw new UpstreamError('invalid', `${this.url.origin} redirected more than ${MAX_REDIRECTS} times`);
      try {
        url = new URL(res.headers.location, url);
      } catch {
        throw new UpstreamError('invalid', `${this.url.origin} redirected to an invalid URL`);
      }
      if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new UpstreamError('invalid', `${this.url.origin} redirected to a non-http URL`);
    }
  }

  /** One HTTP exchange with the deadline; network failures become UpstreamErrors. */
  private raw(url: URL, method: string, headers: OutgoingHttpHeaders): Promise<IncomingMessage> {
    const own = url.origin === this.url.origin;
    const mod = url.protocol === 'https:' ? https : http;
    const agent = own ? this.agent : url.protocol === this.url.protocol ? this.foreignAgent : undefined;
    return new Promise((resolve, reject) => {
      let r: http.ClientRequest;
      try {
        r = mod.request(url, { method, headers: { 'user-agent': 'tsregistry-proxy', ...headers }, agent, timeout: this.timeoutMs }, (res) => {
          // From here the deadline is the reader's (bodyChunks, readLimited): a socket timeout would also fire
          // while the reader itself is slow (storage) and the socket is paused, which is no upstream's fault.
          res.socket.setTimeout(0);
          resolve(res);
        });
      } catch (err) {
        // A header Node refuses to send, e.g. a token with a line break from the upstream's token service.
        reject(new UpstreamError('invalid', `${this.url.origin}: cannot send the request: ${(err as Error).message}`));
        return;
      }
      r.once('timeout', () => r.destroy(new UpstreamError('timeout', `${this.url.origin} did not answer within ${this.config.timeout} s`)));
      r.once('error', (err) => reject(err instanceof UpstreamError ? err : new UpstreamError('connection', `${this.url.origin}: ${(err as Error).message}`)));
      r.end();
    });
  }
}

/** Bytes of a body read ahead of its consumer (per download: bounds memory with many misses at once). */
const READ_AHEAD = 1024 * 1024;

/**
 * The chunks of a response body, read ahead up to READ_AHEAD bytes (a paused socket at every chunk would
 * make network and storage take turns), failing with a 'timeout' UpstreamError when the upstream sends
 * nothing for `ms` while the consumer waits for it (time the consumer spends elsewhere does not count).
 */
export async function* bodyChunks(res: IncomingMessage, ms: number, origin: string): AsyncGenerator<Buffer> {
  const queue: Buffer[] = [];
  let queued = 0;
  let ended = false;
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  const poke = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  res.on('data', (chunk: Buffer) => {
    queue.push(chunk);
    queued += chunk.length;
    if (queued >= READ_AHEAD) res.pause();
    poke();
  });
  res.once('end', () => {
    ended = true;
    poke();
  });
  res.once('error', (err) => {
    failure = err instanceof UpstreamError ? err : new UpstreamError('connection', `${origin}: ${err.message}`);
    poke();
  });
  res.once('close', () => {
    if (!res.complete && !failure) failure = new UpstreamError('connection', `${origin} closed the connection mid-body`);
    ended = true;
    poke();
  });
  try {
    for (;;) {
      const chunk = queue.shift();
      if (chunk) {
        queued -= chunk.length;
        if (res.isPaused() && queued < READ_AHEAD / 2) res.resume();
        yield chunk;
        continue;
      }
      if (failure) throw failure;
      if (ended) return;
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        wake = resolve;
        timer = setTimeout(() => {
          failure ??= new UpstreamError('timeout', `${origin} stopped sending for ${ms / 1000} s`);
          resolve();
        }, ms);
      });
      clearTimeout(timer);
    }
  } finally {
    res.destroy();
  }
}

/** The error for an unexpected status: 5xx and 429 mean unavailable, anything else is invalid. */
export function statusError(what: string, status: number): UpstreamError {
  if (status === 429) return new UpstreamError('rateLimited', `${what} is rate-limiting (429)`);
  if (status >= 500) return new UpstreamError('server', `${what} failed (${status})`);
  return new UpstreamError('invalid', `${what} answered ${status}`);
}

/** Read a response body whole, up to `limit` bytes (more: 'invalid', and the response is destroyed). */
export function readLimited(res: IncomingMessage, limit: number, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => res.destroy(new UpstreamError('timeout', 'the upstream body did not arrive in time')), timeoutMs);
    res.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        res.destroy(new UpstreamError('invalid', `the upstream sent more than ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    res.once('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    res.once('error', (err) => {
      clearTimeout(timer);
      reject(err instanceof UpstreamError ? err : new UpstreamError('connection', err.message));
    });
    res.once('close', () => {
      clearTimeout(timer);
      if (!res.complete) reject(new UpstreamError('connection', 'the upstream closed the connection mid-body'));
    });
  });
}
