import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify';
import { fixedGlob, type NameMatcher } from '../auth/globs';
import { RegistryError } from '../errors';
import { sendBlob } from '../http/send-blob';
import type { BlobRecord } from '../index/metadata-index';
import type { ProxyIndex } from '../index/proxy-index';
import type { ManifestRecord } from '../index/v2-index';
import type { BlobStore } from '../storage/blob-store';
import { digestBytes, isDigest, type Digest } from '../storage/digest';
import { MEDIA } from '../v2/manifest';
import { referenceKind, type V2Registry } from '../v2/registry';
import type { UpstreamConfig } from './config';
import { SingleFlight } from './single-flight';
import { UNAVAILABLE_KINDS, Upstream, UpstreamError, bodyChunks, readLimited, statusError, type UpstreamErrorKind } from './upstream';

// The pull-through cache (docs/proxy.md): repositories under a configured prefix are read-only copies of an
// upstream registry's. Everything fetched is stored through the registry's own semantics (V2Registry,
// BlobStore), so garbage collection, retention, the reference journal and listings treat it like pushed
// content; only when each tag was last confirmed upstream is the cache's own (ProxyIndex).

/** Media types asked of the upstream: every manifest type this registry stores. */
const ACCEPT = [MEDIA.ociIndex, MEDIA.dockerList, MEDIA.ociManifest, MEDIA.dockerManifest].join(', ');

export interface ProxyRoute {
  upstream: Upstream;
  /** The repository's name upstream (the local name without the prefix). */
  remote: string;
}

export interface ProxyStats {
  hits: { manifests: number; blobs: number };
  misses: { manifests: number; blobs: number };
  /** Tags served from the cache past their tagTtl because the upstream was unavailable. */
  stale: number;
  /** Blob requests that joined a download already in flight. */
  joined: number;
  /** Body bytes received from upstreams (blobs and manifests). */
  upstreamBytes: number;
  upstreamErrors: Record<UpstreamErrorKind, number>;
}

export interface PullThroughDeps {
  v2: V2Registry;
  blobs: BlobStore;
  index: ProxyIndex;
  log: FastifyBaseLogger;
  /** Largest manifest accepted from an upstream (http.maxJsonBody). */
  maxManifestBytes: number;
}

interface Entry {
  config: UpstreamConfig;
  upstream: Upstream;
  allowed: NameMatcher[];
  /** Docker Hub names official images library/<name>; `hub/alpine` means `library/alpine` there. */
  dockerHub: boolean;
}

export class PullThroughCache {
  private readonly entries: Entry[];
  private readonly blobFlights = new SingleFlight<BlobRecord>();
  private readonly tagFlights = new SingleFlight<Digest>();
  private readonly digestFlights = new SingleFlight<Digest>();
  private readonly counters: ProxyStats = {
    hits: { manifests: 0, blobs: 0 },
    misses: { manifests: 0, blobs: 0 },
    stale: 0,
    joined: 0,
    upstreamBytes: 0,
    upstreamErrors: { timeout: 0, connection: 0, server: 0, rateLimited: 0, unauthorized: 0, digest: 0, invalid: 0 },
  };

  constructor(
    upstreams: readonly UpstreamConfig[],
    private readonly deps: PullThroughDeps,
  ) {
    this.entries = upstreams.map((config) => {
      const upstream = new Upstream(config, deps.log);
      return {
        config,
        upstream,
        allowed: config.repositories.map((g) => fixedGlob(g)),
        dockerHub: upstream.url.hostname === 'registry-1.docker.io' || upstream.url.hostname === 'index.docker.io',
      };
    });
  }

  close(): void {
    for (const e of this.entries) e.upstream.close();
  }

  /** A snapshot of the counters, for metrics. */
  stats(): ProxyStats {
    return structuredClone(this.counters);
  }

  /** The upstream serving `repo`, if it is under a proxy prefix (even a repository the upstream refuses). */
  isProxied(repo: string): boolean {
    return this.entries.some((e) => repo.startsWith(e.config.prefix));
  }

  /** Where to fetch `repo` from; undefined outside every prefix. NAME_UNKNOWN for a repository not allowed through. */
  route(repo: string): ProxyRoute | undefined {
    const entry = this.entries.find((e) => repo.startsWith(e.config.prefix));
    if (!entry) return undefined;
    let remote = repo.slice(entry.config.prefix.length);
    if (entry.allowed.length > 0 && !entry.allowed.some((m) => m.test(remote))) {
      throw new RegistryError('NAME_UNKNOWN', `${remote} is not among the repositories proxied from ${entry.upstream.url.origin}`, { detail: { name: repo } });
    }
    if (entry.dockerHub && !remote.includes('/')) remote = `library/${remote}`;
    return { upstream: entry.upstream, remote };
  }

  /** Pushes and deletes under a proxy prefix. */
  assertWritable(repo: string): void {
    if (this.isProxied(repo)) throw new RegistryError('DENIED', 'proxy cache is read-only', { detail: { name: repo } });
  }

  // ---- manifests ----

  /**
   * A manifest GET or HEAD under a proxy prefix. By tag: from the cache while the tag is younger than tagTtl,
   * else after asking the upstream (HEAD, then GET only if the digest changed); when the upstream is
   * unavailable, the cached tag with a `warning`. By digest: the cache, else the upstream, stored for good.
   * `v2`: the registry as the request sees it (`on(...)`), so its pull events name the request.
   */
  async manifest(route: ProxyRoute, repo: string, reference: string, v2: V2Registry = this.deps.v2): Promise<{ manifest: ManifestRecord; warning?: string }> {
    if (referenceKind(reference) === 'digest') {
      const digest = reference as Digest;
      if (await this.localManifest(repo, digest)) {
        this.counters.hits.manifests++;
        return { manifest: await v2.pull(repo, digest) };
      }
      this.counters.misses.manifests++;
      await this.fail(route, this.digestFlights.run(`${repo}@${digest}`, () => this.fetchManifest(route, repo, digest, undefined)).done);
      return { manifest: await v2.pull(repo, digest) };
    }
    const tag = reference;
    const local = await this.localTag(repo, tag);
    const check = await this.deps.index.lastCheck(repo, tag);
    const ttl = route.upstream.config.tagTtl * 1000;
    if (local && check && check.digest === local && Date.now() - check.checkedAt < ttl) {
      this.counters.hits.manifests++;
      this.deps.log.debug({ repo, tag }, 'proxy cache hit (tag fresh)');
      return { manifest: await v2.pull(repo, tag) };
    }
    try {
      const digest = await this.tagFlights.run(`${repo}:${tag}`, () => this.refreshTag(route, repo, tag)).done;
      if (digest === local) this.counters.hits.manifests++;
      else this.counters.misses.manifests++;
      return { manifest: await v2.pull(repo, tag) };
    } catch (err) {
      if (local && err instanceof UpstreamError && UNAVAILABLE_KINDS.has(err.kind)) {
        this.counters.stale++;
        this.deps.log.warn({ repo, tag, upstream: route.upstream.url.origin, reason: err.message }, 'upstream unavailable: serving the cached tag');
        const warning = `110 - "stale: ${route.upstream.url.origin} is unavailable (${err.kind}); serving the cached tag"`;
        return { manifest: await v2.pull(repo, tag), warning };
      }
      throw this.clientError(route, err);
    }
  }

  private async localTag(repo: string, tag: string): Promise<Digest | undefined> {
    try {
      return (await this.deps.v2.resolve(repo, tag)).digest;
    } catch {
      return undefined;
    }
  }

  private async localManifest(repo: string, digest: Digest): Promise<ManifestRecord | undefined> {
    try {
      return await this.deps.v2.resolve(repo, digest);
    } catch {
      return undefined;
    }
  }

  /** Ask the upstream what `tag` is now, bring the cache in line, and remember when; returns the digest. */
  private async refreshTag(route: ProxyRoute, repo: string, tag: string): Promise<Digest> {
    const head = await this.exchange(route, `/v2/${route.remote}/manifests/${tag}`, 'HEAD', 'manifest');
    head.resume();
    const headDigest = head.headers['docker-content-digest'];
    let digest: Digest;
    const known = typeof headDigest === 'string' && isDigest(headDigest) ? await this.localManifest(repo, headDigest) : undefined;
    if (known) {
      // Known here already (another tag, or this one unchanged): point the tag at it, bytes untouched.
      if ((await this.localTag(repo, tag)) !== known.digest) {
        await this.deps.v2.putCachedManifest(repo, tag, await this.deps.v2.readManifest(known), known.mediaType);
      }
      digest = known.digest;
    } else {
      const ref = typeof headDigest === 'string' && isDigest(headDigest) ? headDigest : undefined;
      digest = await this.fetchManifest(route, repo, ref ?? tag, tag);
    }
    await this.deps.index.checked(repo, tag, digest);
    this.deps.log.info({ repo, tag, digest, upstream: route.upstream.url.origin }, 'proxy tag checked upstream');
    return digest;
  }

  /** GET a manifest upstream, verify it, store it (tagged `tag` if given); returns its digest. */
  private async fetchManifest(route: ProxyRoute, repo: string, reference: string, tag: string | undefined): Promise<Digest> {
    const res = await this.exchange(route, `/v2/${route.remote}/manifests/${reference}`, 'GET', 'manifest');
    const body = await readLimited(res, this.deps.maxManifestBytes, route.upstream.config.timeout * 1000).catch((err) => {
      throw this.counted(err);
    });
    this.counters.upstreamBytes += body.length;
    const digest = digestBytes(body);
    const claimed = res.headers['docker-content-digest'];
    const expected = isDigest(reference) ? reference : typeof claimed === 'string' && isDigest(claimed) ? claimed : undefined;
    if (expected && expected !== digest) {
      throw this.counted(new UpstreamError('digest', `${route.upstream.url.origin} sent a manifest whose digest ${digest} is not ${expected}`));
    }
    const type = res.headers['content-type']?.split(';')[0]!.trim().toLowerCase();
    try {
      await this.deps.v2.putCachedManifest(repo, tag, body, type);
    } catch (err) {
      if (err instanceof RegistryError && err.code === 'MANIFEST_INVALID') {
        throw this.counted(new UpstreamError('invalid', `${route.upstream.url.origin} sent an invalid manifest: ${err.message}`));
      }
      throw err;
    }
    this.deps.log.info({ repo, reference, digest, bytes: body.length, upstream: route.upstream.url.origin }, 'proxy cache miss: manifest fetched');
    return digest;
  }

  // ---- blobs ----

  /**
   * GET or HEAD of a blob under a proxy prefix. A miss streams from the upstream to the client while it is
   * stored (BlobStore.ingest, verified before it becomes visible); the last chunk is held back until the
   * digest is verified, so a client never receives a whole wrong blob. Requests for a blob already
   * downloading, and Range requests on a missing blob, wait for that one download and are then served from
   * the cache.
   */
  async serveBlob(request: FastifyRequest, reply: FastifyReply, route: ProxyRoute, repo: string, digest: Digest, retried = false): Promise<FastifyReply> {
    const local = await this.linked(repo, digest);
    if (local) {
      this.counters.hits.blobs++;
      return this.sendLocal(request, reply, local);
    }
    if (await this.deps.blobs.stat(digest)) {
      // Stored for another repository: linked here once the upstream confirms this repository has it.
      const head = await this.exchange(route, `/v2/${route.remote}/blobs/${digest}`, 'HEAD', 'blob').catch((err) => {
        throw this.clientError(route, err);
      });
      head.resume();
      const blob = await this.deps.v2.linkCachedBlob(repo, digest);
      if (blob) {
        this.counters.hits.blobs++;
        return this.sendLocal(request, reply, blob);
      }
    }
    if (request.method === 'HEAD') return this.headUpstream(reply, route, digest);
    const key = `${repo}@${digest}`;
    const streaming = request.headers.range === undefined && !this.blobFlights.get(key);
    const flight = this.blobFlights.run(key, () => this.download(route, repo, digest, streaming ? reply : undefined));
    if (flight.leader) this.counters.misses.blobs++;
    else this.counters.joined++;
    if (flight.leader && streaming) {
      try {
        await flight.done;
      } catch (err) {
        if (!reply.sent && !reply.raw.headersSent) throw this.clientError(route, err);
      }
      return reply;
    }
    let blob: BlobRecord;
    try {
      blob = await flight.done;
    } catch (err) {
      // The download it waited for failed to be stored, not fetched (its own client got the bytes anyway):
      // this one fetches them itself, once, rather than failing with it.
      const fetched = err instanceof UpstreamError || (err instanceof RegistryError && err.code === 'BLOB_UNKNOWN');
      if (!fetched && !retried) return this.serveBlob(request, reply, route, repo, digest, true);
      throw this.clientError(route, err);
    }
    return this.sendLocal(request, reply, blob);
  }

  private async linked(repo: string, digest: Digest): Promise<BlobRecord | undefined> {
    try {
      return await this.deps.v2.blob(repo, digest);
    } catch (err) {
      if (err instanceof RegistryError && err.code === 'BLOB_UNKNOWN') return undefined;
      throw err;
    }
  }

  private sendLocal(request: FastifyRequest, reply: FastifyReply, blob: BlobRecord): Promise<FastifyReply> {
    reply.headers(blobHeaders(blob.digest));
    return sendBlob(request, reply, this.deps.blobs, blob, 307);
  }

  /** HEAD of a missing blob: the upstream's answer, nothing stored. */
  private async headUpstream(reply: FastifyReply, route: ProxyRoute, digest: Digest): Promise<FastifyReply> {
    const res = await this.exchange(route, `/v2/${route.remote}/blobs/${digest}`, 'HEAD', 'blob').catch((err) => {
      throw this.clientError(route, err);
    });
    res.resume();
    reply.headers(blobHeaders(digest));
    const length = res.headers['content-length'];
    if (length !== undefined) reply.header('content-length', length);
    return reply.send();
  }

  /**
   * Download a blob into the store in one pass, verified against its digest. With `reply`, the bytes go to
   * that client as they arrive (one chunk behind: the last one once the digest is verified, before the
   * blob is durable; if storing it fails after that, the client still has its right bytes, nothing is cached).
   */
  private async download(route: ProxyRoute, repo: string, digest: Digest, reply?: FastifyReply): Promise<BlobRecord> {
    const started = Date.now();
    const res = await this.exchange(route, `/v2/${route.remote}/blobs/${digest}`, 'GET', 'blob');
    const out = reply ? this.startResponse(reply, res, digest) : undefined;
    const stallMs = route.upstream.config.timeout * 1000;
    let last: Buffer | undefined;
    let bytes = 0;
    const counters = this.counters;
    const log = this.deps.log;
    const origin = route.upstream.url.origin;
    async function* tee(): AsyncGenerator<Buffer> {
      let held: Buffer | undefined;
      for await (const chunk of bodyChunks(res, stallMs, origin)) {
        bytes += chunk.length;
        counters.upstreamBytes += chunk.length;
        if (held && out && !out.destroyed && !out.write(held)) await drained(out, stallMs, log);
        held = chunk;
        yield chunk;
      }
      last = held;
    }
    // The client's last chunk goes once the bytes are verified, not once they are durable: its copy is right
    // either way, and the fsync of a large blob is the slowest part of a miss on a fast link.
    const finish = () => {
      if (!out || out.destroyed || out.writableEnded) return;
      if (last) out.write(last);
      out.end();
    };
    let blob: BlobRecord;
    try {
      blob = await this.deps.blobs.ingest(Readable.from(tee()), { expected: digest, onStored: this.deps.v2.linkOnStore(repo), onVerified: finish });
    } catch (err) {
      res.destroy();
      // A response already ended (verified, then storing failed) keeps its bytes: destroy would cut what is unsent.
      if (out && !out.writableEnded) out.destroy();
      const e =
        err instanceof RegistryError && err.code === 'DIGEST_INVALID'
          ? new UpstreamError('digest', `${route.upstream.url.origin} sent bytes for ${digest} that do not match it; nothing was stored`)
          : err;
      if (e instanceof UpstreamError) this.counted(e);
      log.warn({ repo, digest, upstream: route.upstream.url.origin, err: e }, 'proxy blob download failed');
      throw e;
    }
    finish();
    log.info({ repo, digest, bytes, ms: Date.now() - started, upstream: route.upstream.url.origin }, 'proxy cache miss: blob fetched');
    return blob;
  }

  /** Headers of a streamed miss, sent before the first byte (fastify steps aside: the body is ours). */
  private startResponse(reply: FastifyReply, res: IncomingMessage, digest: Digest): ServerResponse {
    reply.headers(blobHeaders(digest));
    const length = res.headers['content-length'];
    if (length !== undefined) reply.header('content-length', length);
    reply.hijack();
    reply.raw.writeHead(200, reply.getHeaders() as OutgoingHttpHeaders);
    return reply.raw;
  }

  // ---- upstream exchanges ----

  /** A request upstream answered 200; 404 is MANIFEST_UNKNOWN / BLOB_UNKNOWN, other statuses UpstreamErrors. */
  private async exchange(route: ProxyRoute, path: string, method: 'GET' | 'HEAD', what: 'manifest' | 'blob'): Promise<IncomingMessage> {
    let res: IncomingMessage;
    try {
      res = await route.upstream.request({ method, path, repository: route.remote, headers: what === 'manifest' ? { accept: ACCEPT } : {} });
    } catch (err) {
      throw this.counted(err);
    }
    const status = res.statusCode ?? 0;
    if (status === 200) return res;
    res.resume();
    if (status === 404) {
      throw what === 'manifest'
        ? new RegistryError('MANIFEST_UNKNOWN', `not found at ${route.upstream.url.origin}`)
        : new RegistryError('BLOB_UNKNOWN', `not found at ${route.upstream.url.origin}`);
    }
    throw this.counted(statusError(route.upstream.url.origin, status));
  }

  private counted(err: unknown): unknown {
    if (err instanceof UpstreamError) this.counters.upstreamErrors[err.kind]++;
    return err;
  }

  private async fail<T>(route: ProxyRoute, p: Promise<T>): Promise<T> {
    try {
      return await p;
    } catch (err) {
      throw this.clientError(route, err);
    }
  }

  /** What the client is told: 503 for an unavailable upstream, 502 for one that sent something wrong. */
  private clientError(route: ProxyRoute, err: unknown): unknown {
    if (!(err instanceof UpstreamError)) return err;
    const upstream = route.upstream.url.origin;
    if (UNAVAILABLE_KINDS.has(err.kind)) {
      this.deps.log.warn({ upstream, kind: err.kind, reason: err.message }, 'upstream unavailable');
      return new RegistryError('UNAVAILABLE', `upstream ${upstream} is unavailable: ${err.message}`, { detail: { upstream } });
    }
    if (err.kind === 'unauthorized') {
      return new RegistryError('UNAVAILABLE', `upstream ${upstream} refused access: ${err.message}`, { status: 502, detail: { upstream } });
    }
    return new RegistryError('UNAVAILABLE', `upstream ${upstream} sent an invalid answer: ${err.message}`, { status: 502, detail: { upstream } });
  }
}

function blobHeaders(digest: Digest): Record<string, string> {
  return {
    'content-type': 'application/octet-stream',
    'docker-content-digest': digest,
    etag: `"${digest}"`,
    'cache-control': 'max-age=31536000',
  };
}

/**
 * Wait until a slow client takes more bytes; one that stalls longer than `ms` is dropped (the download
 * and the cache write go on: the upstream connection must not idle past its own deadline meanwhile).
 */
function drained(out: ServerResponse, ms: number, log: FastifyBaseLogger): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      out.off('drain', done);
      out.off('close', done);
      resolve();
    };
    const timer = setTimeout(() => {
      log.warn('proxy client stalled: dropped, the download into the cache continues');
      out.destroy();
      done();
    }, ms);
    out.once('drain', done);
    out.once('close', done);
  });
}
