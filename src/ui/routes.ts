import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ANONYMOUS, type Identity } from '../auth/access-control';
import type { Action } from '../auth/rules';
import { RegistryError } from '../errors';
import type { BrowseIndex, RepoSort } from '../index/browse-index';
import { ALL_NAMES } from '../index/name-filter';
import type { Digest } from '../storage/digest';
import { CSS, CSS_NAME, JS, JS_NAME } from './assets';
import { Csrf, sameOrigin } from './csrf';
import { humanBytes, isIndexType, shortDigest } from './format';
import { html, type Html } from './html';
import { link, repoPath, type View } from './layout';
import { imagePage, platformOf, v1ImagePage, type Descriptor, type ImageData } from './pages/image';
import { decodeCursor, repositoriesPage, SORTS } from './pages/repositories';
import { repositoryPage } from './pages/repository';
import { confirmPage, deleteAction, errorPage, loginPage, storagePage, type Doomed } from './pages/simple';
import { loadSessionKey, sessionKeyFile } from './session-key';
import { parseCookies, SESSION_COOKIE, SessionCodec, sessionCookie, type Session } from './session';
import { requestFacts } from '../notifications/request-facts';

// The web UI (docs/ui.md): server-rendered pages under ui.pathPrefix. Who may see and do what is asked of
// the same AccessControl as the API, for every repository listed or shown; the UI has no rules of its own.
// A repository the visitor may not pull answers 404 exactly as one that does not exist.

/** Manifests and configs larger than this are not displayed (nor read). */
export const DISPLAY_CAP = 4 * 1024 * 1024;
const PAGE_SIZE = 50;
const TAG_LIMIT = 300;
/** Index manifests read for the platform column of a repository page, at most. */
const PLATFORM_READS = 50;
const ANCESTRY_SHOWN = 100;
const FORM_LIMIT = 64 * 1024;
/** Rows of the storage page's usage table: the largest repositories. */
const STORAGE_ROWS = 200;

const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'same-origin',
  'x-frame-options': 'DENY',
};

const DIGEST = /^sha256:[a-f0-9]{64}$|^sha512:[a-f0-9]{128}$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const V1_ID = /^[a-f0-9]{16}$|^[a-f0-9]{64}$/;

export interface UiOptions {
  browse: BrowseIndex;
}

interface UiState {
  session?: Session;
  identity: Identity;
}

declare module 'fastify' {
  interface FastifyRequest {
    ui?: UiState;
  }
}

/** A 404 page, the same for unknown and for hidden. */
class NotFound extends Error {
  constructor(readonly what: string) {
    super(what);
  }
}

export async function uiRoutes(app: FastifyInstance, opts: UiOptions): Promise<void> {
  const { config, access, v1, v2, blobs, quotas } = app.registry;
  const prefix = config.ui.pathPrefix;
  const secret = loadSessionKey(sessionKeyFile(config.ui.sessionSecretFile, config.index.path));
  const sessions = new SessionCodec(secret);
  const csrf = new Csrf(secret);
  const ttlMs = config.ui.sessionTtl * 1000;
  const loginEnabled = config.auth.htpasswd.path !== '';
  const { browse } = opts;

  app.decorateRequest('ui', undefined);

  // Forms only; the registry's JSON parser is not wanted here.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: FORM_LIMIT }, (_req, body, done) => {
    const out: Record<string, string> = {};
    for (const [k, v] of new URLSearchParams(body as string)) if (!(k in out)) out[k] = v;
    done(null, out);
  });

  app.addHook('onRequest', async (request, reply) => {
    reply.headers(SECURITY_HEADERS);
    const session = sessions.decode(parseCookies(request.headers.cookie).get(SESSION_COOKIE));
    // A user's session ends with their htpasswd entry (removed, or a new password), as their tokens do.
    const valid = session && (session.user === null || access.sessionValid(session.user, session.fp)) ? session : undefined;
    const identity: Identity = valid?.user ? { user: valid.user, via: 'basic', ...(valid.fp ? { fp: valid.fp } : {}) } : ANONYMOUS;
    request.ui = { session: valid, identity };
    request.identity = identity; // for the audit line of deletions
  });

  // Server time of each page, for browsers' devtools and the speed tests (no other detail: it is public).
  app.addHook('onSend', async (_request, reply, payload) => {
    reply.header('server-timing', `app;dur=${reply.elapsedTime.toFixed(1)}`);
    return payload;
  });

  const secure = (request: FastifyRequest) => request.protocol === 'https';
  const setSession = (request: FastifyRequest, reply: FastifyReply, s: Session) => {
    request.ui!.session = s;
    reply.header('set-cookie', sessionCookie(sessions.encode(s), { path: prefix, secure: secure(request), maxAgeSeconds: (s.exp - Date.now()) / 1000 }));
  };

  const viewOf = (request: FastifyRequest, reply: FastifyReply): View => ({
    prefix,
    user: request.ui!.identity.user,
    loginEnabled,
    open: !access.enabled,
    path: request.url.slice(prefix.length).split('?')[0] || '/',
    csrf: (action) => {
      // An anonymous visitor gets a session of their own the first time a page carries a form.
      if (!request.ui!.session) setSession(request, reply, sessions.create(null, ttlMs));
      return csrf.token(request.ui!.session!.sid, action);
    },
  });

  const send = (reply: FastifyReply, body: Html, status = 200) =>
    reply.code(status).header('cache-control', 'no-store').type('text/html; charset=utf-8').send(body.value);

  const may = (request: FastifyRequest, repo: string, action: Action) => access.allows(request.ui!.identity, repo, action);

  /** The repository, if it exists and the visitor may pull it; else NotFound (the same either way). */
  const visibleRepo = async (request: FastifyRequest, repo: string) => {
    if (!may(request, repo, 'pull')) throw new NotFound(`repository ${repo}`);
    const row = await browse.repository(repo);
    if (!row) throw new NotFound(`repository ${repo}`);
    return row;
  };

  /** A state-changing request: same origin, and the CSRF token of `action` for this session. */
  const checkForm = (request: FastifyRequest, action: string) => {
    const body = (request.body ?? {}) as Record<string, string>;
    const session = request.ui!.session;
    if (!sameOrigin(request) || !session || !csrf.check(session.sid, action, body.csrf)) {
      throw new RegistryError('DENIED', 'This form has expired or did not come from this site. Go back, reload the page and try again.', { status: 403 });
    }
    return body;
  };

  app.setNotFoundHandler(async (request, reply) => {
    return send(reply, errorPage(viewOf(request, reply), 404, 'Not found', 'There is no such page.'), 404);
  });

  app.setErrorHandler(async (err, request, reply) => {
    if (!request.ui) request.ui = { identity: ANONYMOUS };
    const view = viewOf(request, reply);
    if (err instanceof NotFound) return send(reply, errorPage(view, 404, 'Not found', html`There is no ${err.what}, or you may not see it.`), 404);
    const known = err instanceof RegistryError ? err : undefined;
    const status = known?.status ?? (typeof (err as { statusCode?: number }).statusCode === 'number' ? (err as { statusCode: number }).statusCode : 500);
    if (status >= 500) request.log.error({ err }, 'web UI request failed');
    if (known?.headers) reply.headers(known.headers);
    const message = status >= 500 ? 'Something went wrong on the server; it has been logged.' : status === 413 ? 'The form is too large.' : (known?.message ?? 'The request was not understood.');
    const title = status === 403 ? 'Not allowed' : status === 429 ? 'Too many attempts' : status >= 500 ? 'Server error' : 'Bad request';
    return send(reply, errorPage(view, status, title, message), status);
  });

  // ---- static files ----

  app.get('/static/:name', async (request, reply) => {
    const { name } = request.params as { name: string };
    const file = name === CSS_NAME ? { body: CSS, type: 'text/css; charset=utf-8' } : name === JS_NAME ? { body: JS, type: 'text/javascript; charset=utf-8' } : undefined;
    if (!file) throw new NotFound('such file');
    return reply.header('cache-control', 'public, max-age=31536000, immutable').type(file.type).send(file.body);
  });

  // ---- repositories ----

  app.get('/', async (request, reply) => {
    const q = request.query as Record<string, string | undefined>;
    const sort: RepoSort = q.sort && q.sort in SORTS ? (q.sort as RepoSort) : 'name';
    const query = (q.q ?? '').trim().slice(0, 200);
    const after = decodeCursor(q.after, sort);
    const visible = access.listablePatterns(request.ui!.identity);
    const result = await browse.repositories({ visible, query, sort, after, limit: PAGE_SIZE });
    return send(reply, repositoriesPage(viewOf(request, reply), { q: query, sort, result, first: !after }));
  });

  app.get('/r/*', async (request, reply) => {
    const target = parseTarget((request.params as { '*': string })['*']);
    if (!target) throw new NotFound('such page');
    const { repo, rest } = target;
    const row = await visibleRepo(request, repo);
    const view = viewOf(request, reply);
    const host = request.host;
    const q = request.query as Record<string, string | undefined>;

    if (rest.length === 0) {
      const tags = (await browse.tags(repo, TAG_LIMIT)).map((t) => ({ ...t, platforms: undefined as string[] | undefined }));
      let reads = 0;
      for (const t of tags) {
        if (!isIndexType(t.mediaType) || t.manifestSize > DISPLAY_CAP || reads++ >= PLATFORM_READS) continue;
        const parsed = await readJson(() => blobs.readBytes(t.digest));
        const list = Array.isArray(parsed?.manifests) ? (parsed.manifests as Descriptor[]) : [];
        t.platforms = list.map(platformOf).filter((p) => p !== 'unknown' && p !== 'attestation');
      }
      return send(
        reply,
        repositoryPage(view, {
          repo: row,
          host,
          tags,
          v1Tags: await browse.v1Tags(repo, TAG_LIMIT),
          untagged: await browse.untagged(repo, 100),
          canPush: may(request, repo, 'push'),
          canDelete: may(request, repo, 'delete'),
          notice: q.done ? String(q.done).slice(0, 300) : undefined,
          limit: TAG_LIMIT,
        }),
      );
    }

    const [kind, ref] = rest;
    if ((kind === 'tag' || kind === 'manifest') && ref !== undefined && rest.length === 2) {
      if (kind === 'tag' ? !TAG.test(ref) : !DIGEST.test(ref)) throw new NotFound(`${kind} ${ref} in ${repo}`);
      const data = await imageData(request, repo, kind === 'tag' ? ref : undefined, kind === 'tag' ? undefined : (ref as Digest), host);
      return send(reply, imagePage(view, data));
    }
    if (kind === 'v1' && ref !== undefined && rest.length === 2) {
      if (!V1_ID.test(ref)) throw new NotFound(`v1 image ${ref} in ${repo}`);
      return send(reply, v1ImagePage(view, await v1ImageData(request, repo, ref, host)));
    }
    if (kind === 'delete' && rest.length === 1) {
      const doomed = await describeDeletion(repo, q.kind, q.ref, view);
      if (!may(request, repo, 'delete')) throw new RegistryError('DENIED', `You may not delete anything in ${repo}.`, { status: 403 });
      return send(reply, confirmPage(view, repo, doomed));
    }
    throw new NotFound('such page');
  });

  app.post('/r/*', async (request, reply) => {
    const target = parseTarget((request.params as { '*': string })['*']);
    if (!target || target.rest.length !== 1) throw new NotFound('such page');
    const { repo, rest } = target;
    await visibleRepo(request, repo);
    const view = viewOf(request, reply);
    if (rest[0] === 'description') {
      const body = checkForm(request, `description:${repo}`);
      if (!may(request, repo, 'push')) throw new RegistryError('DENIED', `You may not change ${repo}.`, { status: 403 });
      const text = String(body.description ?? '').replace(/\r\n/g, '\n').trim().slice(0, 4000);
      await browse.setDescription(repo, text);
      request.audit = { action: 'push', repository: repo, reference: 'description' };
      return reply.redirect(link(view, repoPath(repo), { done: 'Description saved.' }), 303);
    }
    if (rest[0] === 'delete') {
      const raw = (request.body ?? {}) as Record<string, string>;
      const body = checkForm(request, deleteAction(repo, String(raw.kind), String(raw.ref)));
      if (!may(request, repo, 'delete')) throw new RegistryError('DENIED', `You may not delete anything in ${repo}.`, { status: 403 });
      await describeDeletion(repo, body.kind, body.ref, view); // 404 when it is gone already
      const ref = body.ref!;
      if (body.kind === 'v1tag') await v1.on(requestFacts(request)).deleteTag(repo, ref);
      else await v2.on(requestFacts(request)).deleteManifest(repo, ref);
      request.audit = { action: 'delete', repository: repo, reference: ref };
      const what = body.kind === 'tag' ? `tag ${ref}` : body.kind === 'v1tag' ? `v1 tag ${ref}` : `manifest ${ref}`;
      return reply.redirect(link(view, repoPath(repo), { done: `Deleted ${what}.` }), 303);
    }
    throw new NotFound('such page');
  });

  /** What a deletion takes and leaves (NotFound if the target does not exist). */
  async function describeDeletion(repo: string, kind: string | undefined, ref: string | undefined, view: View): Promise<Doomed> {
    if (kind === 'tag' && ref && TAG.test(ref)) {
      const digest = (await safely(() => v2.resolve(repo, ref)))?.digest;
      if (!digest) throw new NotFound(`tag ${ref} in ${repo}`);
      const others = (await browse.tagsOf(repo, digest)).filter((t) => t !== ref);
      const lastTag = others.length === 0 && (await browse.parentsOf(repo, digest)).length === 0;
      return {
        kind,
        ref,
        goes: [html`the tag <b>${ref}</b>`],
        stays: [
          html`the manifest <a href="${link(view, repoPath(repo, 'manifest', digest))}">${shortDigest(digest)}</a> it points at, pullable by digest${others.length ? html` and by its other tags: ${others.join(', ')}` : ''}`,
        ],
        note: lastTag
          ? config.gc.untagged === 'delete'
            ? html`This is the manifest's last tag: garbage collection deletes the untagged manifest after ${config.gc.delay} s (gc.untagged: delete), freeing up to ${humanBytes((await browse.reclaimable(repo, digest)).repoBytes)}.`
            : html`This is the manifest's last tag: the manifest stays, untagged, until it is deleted (gc.untagged: keep). Delete the manifest instead to free its space.`
          : undefined,
      };
    }
    if (kind === 'manifest' && ref && DIGEST.test(ref)) {
      const m = await safely(() => v2.resolve(repo, ref));
      if (!m) throw new NotFound(`manifest ${ref} in ${repo}`);
      const tags = await browse.tagsOf(repo, m.digest);
      const parents = await browse.parentsOf(repo, m.digest);
      const refs = ((await v2.referrers(repo, m.digest)) as { manifests: unknown[] }).manifests.length;
      return {
        kind,
        ref,
        goes: [
          html`the manifest <b>${shortDigest(m.digest)}</b>`,
          tags.length ? html`its ${tags.length === 1 ? 'tag' : 'tags'}: <b>${tags.join(', ')}</b>` : html`no tag (none points at it)`,
        ],
        stays: [
          ...(parents.length ? [html`the ${parents.length === 1 ? 'index' : 'indexes'} that list it (${parents.map((p) => p.slice(7, 19)).join(', ')}): pulls of this platform through them fail`] : []),
          ...(refs ? [html`${refs} ${refs === 1 ? 'referrer' : 'referrers'} (signatures, SBOMs...) whose subject it is`] : []),
          ...(isIndexType(m.mediaType) ? [html`the platform manifests it lists (untagged unless another tag names them)`] : []),
        ],
        note: reclaimNote(await browse.reclaimable(repo, m.digest)),
      };
    }
    if (kind === 'v1tag' && ref && TAG.test(ref)) {
      const id = await safely(() => v1.getTag(repo, ref));
      if (!id) throw new NotFound(`v1 tag ${ref} in ${repo}`);
      return { kind, ref, goes: [html`the v1 tag <b>${ref}</b>`], stays: [html`the image ${id.slice(0, 12)} and its ancestry (until garbage collection finds them unused)`] };
    }
    throw new NotFound('such thing to delete');
  }

  async function imageData(request: FastifyRequest, repo: string, tag: string | undefined, digest: Digest | undefined, host: string): Promise<ImageData> {
    const record = await safely(() => v2.resolve(repo, tag ?? digest!));
    if (!record) throw new NotFound(tag ? `tag ${tag} in ${repo}` : `manifest ${digest} in ${repo}`);
    const times = await browse.manifestTimes(repo, record.digest);
    const data: ImageData = {
      repo,
      host,
      digest: record.digest,
      tag,
      mediaType: record.mediaType,
      size: record.size,
      createdAt: times?.createdAt,
      pulledAt: times?.pulledAt ?? null,
      tags: await browse.tagsOf(repo, record.digest),
      parents: await browse.parentsOf(repo, record.digest),
      sizes: new Map(),
      referrers: ((await v2.referrers(repo, record.digest)) as { manifests: Descriptor[] }).manifests,
      canDelete: may(request, repo, 'delete'),
      cap: DISPLAY_CAP,
    };
    if (record.size > DISPLAY_CAP) return data;
    const bytes = await v2.readManifest(record);
    data.raw = bytes.toString('utf8');
    data.manifest = parseObject(data.raw);
    const m = data.manifest;
    if (!m) return data;
    if (Array.isArray(m.manifests)) data.childSizes = await browse.totalSizes(repo, (m.manifests as Descriptor[]).map((c) => String(c.digest)));
    const layers = Array.isArray(m.layers) ? (m.layers as Descriptor[]) : [];
    data.sizes = await browse.blobSizes(layers.map((l) => String(l.digest)));
    const cfg = m.config as Descriptor | undefined;
    if (cfg && typeof cfg.digest === 'string' && DIGEST.test(cfg.digest)) {
      const isImageConfig = cfg.mediaType === 'application/vnd.oci.image.config.v1+json' || cfg.mediaType === 'application/vnd.docker.container.image.v1+json';
      const blob = await safely(() => v2.blob(repo, cfg.digest as Digest));
      if (!isImageConfig) {
        data.configNote = `The config is of type ${cfg.mediaType ?? 'unknown'} (${cfg.size ?? '?'} bytes): an artifact, not a runnable image.`;
      } else if (!blob) {
        data.configNote = 'The config blob is missing from this repository.';
      } else if (blob.size > DISPLAY_CAP) {
        data.configNote = `The config is ${blob.size} bytes, more than the ${DISPLAY_CAP / 1048576} MiB the UI displays.`;
      } else {
        data.config = parseObject((await blobs.readBytes(blob.digest)).toString('utf8'));
        if (!data.config) data.configNote = 'The config is not a JSON object.';
      }
    }
    return data;
  }

  async function v1ImageData(request: FastifyRequest, repo: string, id: string, host: string) {
    const image = await safely(() => v1.completeImage(repo, id));
    if (!image) throw new NotFound(`v1 image ${id} in ${repo}`);
    const chain = await v1.ancestry(repo, id);
    const shown = chain.slice(0, ANCESTRY_SHOWN);
    const rows = await browse.v1Images(repo, shown);
    const ancestry = [];
    let json: Record<string, unknown> | undefined;
    let rawJson: string | undefined;
    for (const [i, a] of shown.entries()) {
      const r = rows.get(a);
      const size = r ? ((await blobs.stat(r.jsonDigest))?.size ?? 0) : 0;
      const text = r && size <= DISPLAY_CAP ? (await blobs.readBytes(r.jsonDigest)).toString('utf8') : undefined;
      const parsed = text ? parseObject(text) : undefined;
      if (i === 0) {
        json = parsed;
        rawJson = text;
      }
      const cc = (parsed?.container_config ?? {}) as { Cmd?: unknown };
      ancestry.push({
        id: a,
        layerSize: r?.layerSize ?? null,
        created: typeof parsed?.created === 'string' ? parsed.created : undefined,
        cmd: Array.isArray(cc.Cmd) ? cc.Cmd.join(' ') : undefined,
      });
    }
    const tags = Object.entries(await v1.listTags(repo))
      .filter(([, imageId]) => imageId === id)
      .map(([t]) => t);
    return { repo, host, id, tags, json, rawJson, ancestry, ancestryCut: chain.length > shown.length, canDelete: may(request, repo, 'delete') };
  }

  // ---- storage ----

  app.get('/storage', async (request, reply) => {
    const identity = request.ui!.identity;
    const visible = access.listablePatterns(identity);
    // Whole-registry figures only for those who may pull every repository: they would tell others about the rest.
    const everything = !access.enabled || visible.some((p) => 'prefix' in p && p.prefix === '' && p.regex === undefined) || visible === ALL_NAMES;
    const usage = await browse.usage(visible, STORAGE_ROWS);
    return send(
      reply,
      storagePage(viewOf(request, reply), {
        usage,
        totals: everything ? await browse.totals() : undefined,
        quotas: everything ? await quotas.status() : undefined,
        gc: { interval: config.gc.interval, delay: config.gc.delay, untagged: config.gc.untagged },
        retention: { interval: config.retention.interval, dryRun: config.retention.dryRun, policies: config.retention.policies },
      }),
    );
  });

  // ---- login ----

  const nextPath = (next: unknown) => (typeof next === 'string' && /^\/(?!\/)[^\\\s]*$/.test(next) && next.length < 2000 ? next : '/');

  app.get('/login', async (request, reply) => {
    const q = request.query as Record<string, string | undefined>;
    return send(reply, loginPage(viewOf(request, reply), { next: nextPath(q.next) }));
  });

  app.post('/login', async (request, reply) => {
    const view = viewOf(request, reply);
    const body = (request.body ?? {}) as Record<string, string>;
    const next = nextPath(body.next);
    if (!sameOrigin(request)) throw new RegistryError('DENIED', 'The sign-in form did not come from this site.', { status: 403 });
    if (!loginEnabled) return reply.redirect(link(view, next), 303);
    const user = String(body.username ?? '').slice(0, 256);
    const password = String(body.password ?? '');
    let fp: string | undefined;
    try {
      // The API's check: the same htpasswd, failed-login limits and delay, bcrypt queue.
      fp = user && password ? await access.authenticate(user, password, request.ip) : undefined;
    } catch (err) {
      if (err instanceof RegistryError && (err.status === 429 || err.status === 503)) {
        if (err.headers) reply.headers(err.headers);
        return send(reply, loginPage(view, { next, user, error: err.status === 429 ? 'Too many failed sign-ins. Wait a few minutes and try again.' : 'The server is busy checking passwords. Try again in a moment.' }), err.status);
      }
      throw err;
    }
    if (fp === undefined) {
      request.log.info({ user }, 'web UI sign-in refused');
      return send(reply, loginPage(view, { next, user, error: 'Wrong user name or password.' }), 401);
    }
    setSession(request, reply, sessions.create(user, ttlMs, fp));
    request.log.info({ user }, 'web UI sign-in');
    return reply.redirect(link(view, next), 303);
  });

  app.post('/logout', async (request, reply) => {
    checkForm(request, 'logout');
    reply.header('set-cookie', sessionCookie('', { path: prefix, secure: secure(request), maxAgeSeconds: 0 }));
    return reply.redirect(link({ prefix }, '/'), 303);
  });

}

function reclaimNote(r: { repoBytes: number; storeBytes: number }): Html {
  if (r.repoBytes === 0) return html`It frees no space: everything it names is used by other manifests of this repository.`;
  return html`The next garbage collection takes <b>${humanBytes(r.repoBytes)}</b> out of this repository${
    r.storeBytes === r.repoBytes ? html`, all of it stored nowhere else: freed` : html`; <b>${humanBytes(r.storeBytes)}</b> of it is stored nowhere else and is freed (other repositories keep the rest)`
  }.`;
}

/** `<repo>` or `<repo>/-/<what>[/<ref>]` (a name component is never "-"). */
function parseTarget(path: string): { repo: string; rest: string[] } | undefined {
  const clean = path.replace(/\/+$/, '');
  const at = clean.indexOf('/-/');
  const repo = at < 0 ? (clean.endsWith('/-') ? clean.slice(0, -2) : clean) : clean.slice(0, at);
  const rest = at < 0 ? [] : clean.slice(at + 3).split('/');
  if (!/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/.test(repo) || repo.length > 255) return undefined;
  if (rest.length > 2) return undefined;
  return { repo, rest };
}

/** What a lookup answers when the registry says "not there" (or any other client error): undefined. */
function notThere(err: unknown): undefined {
  if (err instanceof RegistryError && err.status < 500) return undefined;
  throw err;
}

async function safely<T>(fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    return notThere(err);
  }
}

function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(text);
    return v && typeof v === 'object' && !Array.isArray(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

async function readJson(read: () => Promise<Buffer>): Promise<Record<string, unknown> | undefined> {
  try {
    return parseObject((await read()).toString('utf8'));
  } catch {
    return undefined;
  }
}
