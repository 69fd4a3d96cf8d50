import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { authConfig, basic } from '../helpers/auth';
import { startContainerd, type Containerd } from '../helpers/containerd';
import { containersEnv, type ToolResult } from '../helpers/containers';
import { startDockerd, type Dockerd, type DockerResult } from '../helpers/dockerd';
import { http } from '../helpers/http';
import { layoutBlobs, makeOciLayout, readLayoutBlob } from '../helpers/oci-layout';
import { startRegistry, tempDir, type TestRegistry } from '../helpers/server';
import { requireTools } from '../helpers/tools';
import { tarOf } from '../helpers/v1';
import { buildImage, sha256, type BuiltImage } from '../helpers/v2';

// Acceptance of issue 4 (authentication and per-repository access control) with real clients
// (real-clients.md sections 2-5 and 8): docker (dockerd 20.10), skopeo 1.9, podman 4.3 and ctr (containerd 1.6)
// log in, push and pull against registries started here with an htpasswd file and access rules, once with the
// built-in token service (Bearer challenges, GET /token) and once with Basic only. Wrong passwords fail cleanly,
// anonymous docker pulls follow the rules, and a user limited to team-a/** can neither push to nor see team-b.
// Every exchange the registry sees is recorded with the authorization scheme the client used (never the secret),
// so each subtest also proves which flow the client really took.

const USERS = { admin: 'admin-pw', alice: 'alice-pw' };
const WRONG = 'not-alice-pw';
const RULES = [
  { repository: 'team-a/**', who: ['alice'], actions: ['pull', 'push'] },
  { repository: '**', who: ['@admins'], actions: ['pull', 'push', 'delete'] },
  { repository: 'public/**', who: ['$anonymous', '$authenticated'], actions: ['pull'] },
];
const GROUPS = { admins: ['admin'] };
const ADMIN = basic('admin', USERS.admin);
const ALICE = basic('alice', USERS.alice);

type Mode = 'token' | 'basic';
const MODES: Mode[] = ['token', 'basic'];

const ACCEPT_ALL = [
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

/** How clients report refused credentials (docker, containers/image, containerd word it differently). */
const LOGIN_REFUSED = /unauthorized|invalid username|incorrect|authentication required/i;
/** How clients report a refused pull or push. */
const REFUSED = /unauthorized|denied|authentication required|not found|forbidden|403|401/i;

// ---------------------------------------------------------------------------------------------------------
// Recording: method, path, status and the Authorization scheme (plus the Basic user name) of every exchange.

interface AuthExchange {
  method: string;
  path: string;
  query: URLSearchParams;
  status: number;
  scheme: 'none' | 'basic' | 'bearer' | 'other';
  /** The user named by Basic credentials (the password is never kept). */
  user?: string;
}

interface AuthLog {
  all(): AuthExchange[];
  clear(): void;
  text(): string;
}

function recordAuth(server: Server): AuthLog {
  let log: AuthExchange[] = [];
  server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '', 'http://x');
    const header = req.headers.authorization ?? '';
    let scheme: AuthExchange['scheme'] = 'none';
    let user: string | undefined;
    if (/^basic\s/i.test(header)) {
      scheme = 'basic';
      user = Buffer.from(header.replace(/^basic\s+/i, ''), 'base64').toString('utf8').split(':')[0];
    } else if (/^bearer\s/i.test(header)) scheme = 'bearer';
    else if (header) scheme = 'other';
    res.once('close', () => log.push({ method: req.method ?? '', path: url.pathname, query: url.searchParams, status: res.statusCode, scheme, user }));
  });
  return {
    all: () => [...log],
    clear: () => {
      log = [];
    },
    text: () =>
      log.map((e) => `${e.method} ${e.path}${e.query.size ? '?' + e.query.toString() : ''} [${e.scheme}${e.user ? ':' + e.user : ''}] -> ${e.status}`).join('\n'),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Registries and seeding.

interface AuthRegistry {
  reg: TestRegistry;
  log: AuthLog;
  mode: Mode;
}

/** A registry with htpasswd (admin, alice), the rules above and the token service on or off. */
async function authRegistry(t: Test, mode: Mode): Promise<AuthRegistry> {
  const { overrides } = authConfig(t, USERS, { rules: RULES as never, groups: GROUPS, token: { enabled: mode === 'token' } as never });
  const reg = await startRegistry(t, overrides);
  const log = recordAuth(reg.app.server);
  // The challenge tells clients which flow to use: check it is the one this mode promises.
  const ping = await http(reg.url, 'GET', '/v2/');
  t.equal(ping.status, 401, `${mode}: anonymous GET /v2/ is challenged`);
  const expected = mode === 'token' ? `Bearer realm="${reg.url}/token",service="registry"` : 'Basic realm="test-realm"';
  t.equal(ping.headers.get('www-authenticate'), expected, `${mode}: WWW-Authenticate ${expected}`);
  log.clear();
  return { reg, log, mode };
}

/** Push an image over HTTP with the given Authorization (monolithic POST ?digest=, then the manifest). */
async function pushAs(base: string, repo: string, tag: string, image: BuiltImage, authorization: string): Promise<string> {
  for (const blob of [image.config, ...image.layers]) {
    const r = await http(base, 'POST', `/v2/${repo}/blobs/uploads/?digest=${blob.digest}`, blob.data, {
      authorization,
      'content-type': 'application/octet-stream',
    });
    if (r.status !== 201) throw new Error(`seed ${repo}: blob upload ${r.status} ${r.buf.toString()}`);
  }
  const m = await http(base, 'PUT', `/v2/${repo}/manifests/${tag}`, image.manifest, { authorization, 'content-type': image.mediaType });
  if (m.status !== 201) throw new Error(`seed ${repo}: manifest PUT ${m.status} ${m.buf.toString()}`);
  return m.headers.get('docker-content-digest')!;
}

/** The manifest the registry holds (read as admin). */
async function manifestOf(reg: TestRegistry, repo: string, ref: string): Promise<{ status: number; digest: string | null; body: Buffer }> {
  const r = await http(reg.url, 'GET', `/v2/${repo}/manifests/${ref}`, undefined, { authorization: ADMIN, accept: ACCEPT_ALL });
  return { status: r.status, digest: r.headers.get('docker-content-digest'), body: r.buf };
}

const errCode = (r: { json: any }) => r.json?.errors?.[0]?.code;

/** Requests a client made to the v2 API (not /v2/ itself) and to /token. */
const v2Calls = (log: AuthLog) => log.all().filter((e) => e.path.startsWith('/v2/') && e.path !== '/v2/');
const tokenCalls = (log: AuthLog) => log.all().filter((e) => e.path === '/token');

/**
 * The client used the flow of `mode` for its repository requests with alice's credentials: with the token service
 * every v2 request after the challenge carries a Bearer token got from GET /token with Basic; without it every one
 * carries Basic and /token is never asked. (A client may first try without credentials and be challenged; ctr uses
 * the OAuth2 form, POST /token with the credentials in the body, the others GET /token with Basic.)
 */
function assertFlow(t: Test, ar: AuthRegistry, what: string): void {
  const calls = v2Calls(ar.log).filter((e) => e.scheme !== 'none');
  t.ok(calls.length > 0, `${what}: the client made authorized v2 requests`, { requests: ar.log.text() });
  if (ar.mode === 'token') {
    t.ok(
      calls.every((e) => e.scheme === 'bearer'),
      `${what}: every v2 request carried a Bearer token`,
      { requests: ar.log.text() },
    );
    const tokens = tokenCalls(ar.log);
    const good = (e: (typeof tokens)[number]) => e.status === 200 && (e.method === 'POST' || (e.scheme === 'basic' && e.user === 'alice'));
    t.ok(tokens.length > 0 && tokens.every(good), `${what}: tokens from /token (GET with Basic alice, or the OAuth2 POST) -> 200`, {
      requests: ar.log.text(),
    });
  } else {
    t.ok(
      calls.every((e) => e.scheme === 'basic' && e.user === 'alice'),
      `${what}: every v2 request carried alice's Basic credentials`,
      { requests: ar.log.text() },
    );
    t.equal(ar.log.all().filter((e) => e.path === '/token').length, 0, `${what}: no token requests without the token service`);
  }
}

/** An anonymous client sent no credentials: nothing but anonymous tokens (if any) and no Basic. */
function assertAnonymous(t: Test, ar: AuthRegistry, what: string): void {
  t.notOk(
    ar.log.all().some((e) => e.scheme === 'basic' || e.scheme === 'other'),
    `${what}: no credentials were sent`,
    { requests: ar.log.text() },
  );
  t.ok(tokenCalls(ar.log).every((e) => e.status === 200), `${what}: any anonymous token request answered 200`, { requests: ar.log.text() });
}

/** The registry refused alice on `repo` with 403 (not 401: she is known) and accepted no write there. */
function assertDenied(t: Test, ar: AuthRegistry, repo: string): void {
  const on = ar.log.all().filter((e) => e.path.startsWith(`/v2/${repo}/`));
  t.ok(on.some((e) => e.status === 403 && e.scheme === (ar.mode === 'token' ? 'bearer' : 'basic')), `registry answered 403 to alice on ${repo}`, {
    requests: ar.log.text(),
  });
  t.notOk(on.some((e) => ['POST', 'PATCH', 'PUT'].includes(e.method) && e.status < 300), `no write to ${repo} was accepted`, { requests: ar.log.text() });
}

/** Nothing the registry answered was a server error. */
function assertNo5xx(t: Test, ar: AuthRegistry, what: string): void {
  t.equal(ar.log.all().filter((e) => e.status >= 500).length, 0, `${what}: no 5xx`, { requests: ar.log.text() });
}

/** Failed Basic logins of `user` the registry saw (401 or 429 on a request carrying Basic for that user). */
const failedLogins = (log: AuthLog, user: string) => log.all().filter((e) => e.scheme === 'basic' && e.user === user && (e.status === 401 || e.status === 429));

/** After bad credentials the registry still works and still lets alice in (no crash, no lock-out). */
async function assertStillFine(t: Test, ar: AuthRegistry, what: string): Promise<void> {
  const good = await http(ar.reg.url, 'GET', '/v2/', undefined, { authorization: ALICE });
  t.equal(good.status, 200, `${what}: the registry still answers and alice's good password still works`);
  const fails = failedLogins(ar.log, 'alice').length;
  t.ok(fails < ar.reg.config.auth.failedLogins.limit, `${what}: ${fails} failed login(s) recorded, below the lock-out limit`, {
    requests: ar.log.text(),
  });
}

// ---------------------------------------------------------------------------------------------------------
// docker

const said = (r: DockerResult | ToolResult) => ({ code: r.code, stdout: r.stdout.slice(-2000), stderr: r.stderr.slice(-2000) });

interface Inspect {
  Id: string;
  RepoDigests: string[] | null;
  RootFS: { Layers: string[] };
}

async function dockerInspect(d: Dockerd, ref: string): Promise<Inspect | undefined> {
  const r = await d.docker(['image', 'inspect', ref]);
  return r.code === 0 ? (JSON.parse(r.stdout) as Inspect[])[0] : undefined;
}

function dockerAuths(d: Dockerd): Record<string, { auth?: string }> {
  const file = path.join(d.dir, 'cli', 'config.json');
  if (!existsSync(file)) return {};
  return (JSON.parse(readFileSync(file, 'utf8')) as { auths?: Record<string, { auth?: string }> }).auths ?? {};
}

/** docker build FROM scratch of one file with random content, tagged `ref`; returns the content. */
async function dockerBuild(t: Test, d: Dockerd, ref: string): Promise<string> {
  const ctx = tempDir(t, 'auth-docker-ctx-');
  const hello = `hello from the auth e2e test ${randomBytes(8).toString('hex')}\n`;
  writeFileSync(path.join(ctx, 'hello.txt'), hello);
  writeFileSync(path.join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY hello.txt /hello.txt\nCMD ["/hello.txt"]\n');
  const b = await d.docker(['build', '-q', '-t', ref, ctx], { env: { DOCKER_BUILDKIT: '0' } });
  t.equal(b.code, 0, `docker build ${ref}`, said(b));
  return hello;
}

/** `docker login` with a wrong password: non-zero exit, an unauthorized message, nothing stored, registry fine. */
async function dockerWrongPassword(t: Test, d: Dockerd, ar: AuthRegistry): Promise<void> {
  const h = ar.reg.host;
  ar.log.clear();
  const started = Date.now();
  const r = await d.docker(['login', '-u', 'alice', '--password-stdin', h], { input: `${WRONG}\n` });
  t.not(r.code, 0, `docker login with a wrong password exits non-zero (${Date.now() - started} ms)`, said(r));
  t.match(r.stderr, /unauthorized|incorrect|invalid username or password/i, 'and says the credentials were refused', said(r));
  t.notMatch(r.stdout + r.stderr, /Login Succeeded/, 'no "Login Succeeded"');
  t.notMatch(r.stderr, /panic|internal error|EOF|connection reset/i, 'a clean refusal, not a crash', said(r));
  t.notOk(dockerAuths(d)[h], 'no credentials stored for the registry');
  t.comment(`docker login (wrong password): ${r.stderr.trim()}`);
  const refused = failedLogins(ar.log, 'alice');
  t.ok(refused.length >= 1 && refused.every((e) => e.status === 401), 'the registry answered 401 to the wrong password', { requests: ar.log.text() });
  if (ar.mode === 'token') t.ok(refused.some((e) => e.path === '/token'), 'refused at GET /token (token flow)', { requests: ar.log.text() });
  else t.ok(refused.some((e) => e.path === '/v2/'), 'refused at GET /v2/ (Basic)', { requests: ar.log.text() });
  assertNo5xx(t, ar, 'wrong password');
  t.equal((await d.docker(['version', '--format', '{{.Server.Version}}'])).code, 0, 'dockerd still answers');
  await assertStillFine(t, ar, 'after the wrong password');
}

/** docker login (password on stdin), build, push, rmi, pull: the file round-trips; the flow is `mode`'s. */
async function dockerRoundTrip(t: Test, d: Dockerd, ar: AuthRegistry, repo: string): Promise<void> {
  const { reg } = ar;
  const h = reg.host;
  ar.log.clear();
  const login = await d.docker(['login', '-u', 'alice', '--password-stdin', h], { input: `${USERS.alice}\n` });
  t.equal(login.code, 0, 'docker login --password-stdin exits 0', said(login));
  t.match(login.stdout, /Login Succeeded/, 'Login Succeeded');
  t.equal(dockerAuths(d)[h]?.auth, Buffer.from(`alice:${USERS.alice}`).toString('base64'), 'credentials stored in the private DOCKER_CONFIG');
  if (ar.mode === 'token') {
    t.ok(tokenCalls(ar.log).some((e) => e.scheme === 'basic' && e.user === 'alice' && e.status === 200), 'login fetched a token with Basic', {
      requests: ar.log.text(),
    });
  } else {
    t.ok(ar.log.all().some((e) => e.path === '/v2/' && e.scheme === 'basic' && e.status === 200), 'login: GET /v2/ with Basic -> 200', {
      requests: ar.log.text(),
    });
  }

  const ref = `${h}/${repo}:v1`;
  const hello = await dockerBuild(t, d, ref);
  const built = await dockerInspect(d, ref);

  ar.log.clear();
  const push = await d.docker(['push', ref]);
  t.equal(push.code, 0, `docker push ${repo}:v1 exits 0`, { ...said(push), requests: ar.log.text() });
  const digest = /v1: digest: (sha256:[a-f0-9]{64})/.exec(push.stdout)?.[1];
  t.ok(digest, 'docker printed the pushed digest', said(push));
  assertFlow(t, ar, 'push');
  t.ok(
    ar.log.all().some((e) => e.method === 'PUT' && e.path === `/v2/${repo}/manifests/v1` && e.status === 201),
    'manifest PUT 201 with credentials',
    { requests: ar.log.text() },
  );
  const held = await manifestOf(reg, repo, 'v1');
  t.equal(held.status, 200, 'the registry holds the pushed manifest');
  t.equal(held.digest, digest, 'with the digest docker printed');
  t.equal(held.body.length > 0 && sha256(held.body), digest, 'whose bytes hash to it');
  assertNo5xx(t, ar, 'push');

  const rmi = await d.docker(['rmi', ref]);
  t.equal(rmi.code, 0, 'docker rmi exits 0', said(rmi));
  t.equal(await dockerInspect(d, ref), undefined, 'the image is gone locally');

  ar.log.clear();
  const pull = await d.docker(['pull', ref]);
  t.equal(pull.code, 0, `docker pull ${repo}:v1 exits 0`, { ...said(pull), requests: ar.log.text() });
  t.match(pull.stdout, `Digest: ${digest}`, 'pulled the pushed digest');
  assertFlow(t, ar, 'pull');
  t.ok(ar.log.all().some((e) => e.method === 'GET' && /\/blobs\/sha256:/.test(e.path) && e.status === 200), 'blobs downloaded again', {
    requests: ar.log.text(),
  });
  const again = await dockerInspect(d, ref);
  t.equal(again?.Id, built?.Id, 'same image id after the round trip');
  t.same(again?.RootFS.Layers, built?.RootFS.Layers, 'same layers');
  t.same(again?.RepoDigests, [`${h}/${repo}@${digest}`], 'repo digest');
  const name = `auth-rt-${ar.mode}`;
  const create = await d.docker(['create', '--network', 'none', '--name', name, ref]);
  t.equal(create.code, 0, 'docker create exits 0', said(create));
  const out = path.join(tempDir(t, 'auth-docker-out-'), 'hello.txt');
  const cp = await d.docker(['cp', `${name}:/hello.txt`, out]);
  t.equal(cp.code, 0, 'docker cp exits 0', said(cp));
  t.equal(existsSync(out) ? readFileSync(out, 'utf8') : undefined, hello, 'the file content round-trips through the authenticated registry');
  await d.docker(['rm', name]);
  assertNo5xx(t, ar, 'pull');
}

t.test('docker (dockerd 20.10): login, push, rmi, pull with htpasswd; wrong password; anonymous and per-repository rules', async (t) => {
  if (!requireTools(t, ['dockerd', 'docker'])) return;
  const d = await startDockerd(t);

  await t.test('token service on (Bearer challenges, GET /token)', async (t) => {
    const ar = await authRegistry(t, 'token');
    const { reg, log } = ar;
    const h = reg.host;
    const seeded: Record<string, { image: BuiltImage; digest: string }> = {};
    for (const repo of ['public/x', 'team-a/x', 'team-b/x']) {
      const image = buildImage({ layers: 1, format: 'docker' });
      seeded[repo] = { image, digest: await pushAs(reg.url, repo, 'v1', image, ADMIN) };
    }

    await t.test('logged out: pulls public/x, not team-a/x, and pushes nowhere', async (t) => {
      t.notOk(dockerAuths(d)[h], 'docker holds no credentials for this registry');
      log.clear();
      const pub = await d.docker(['pull', `${h}/public/x:v1`]);
      t.equal(pub.code, 0, 'anonymous docker pull public/x:v1 exits 0', { ...said(pub), requests: log.text() });
      t.match(pub.stdout, `Digest: ${seeded['public/x']!.digest}`, 'the seeded digest');
      assertAnonymous(t, ar, 'anonymous pull');
      const pubToken = tokenCalls(log).find((e) => e.query.get('scope') === 'repository:public/x:pull');
      t.ok(pubToken, 'docker asked GET /token anonymously for repository:public/x:pull', { requests: log.text() });
      t.ok(
        v2Calls(log).some((e) => e.path === '/v2/public/x/manifests/v1' && e.scheme === 'bearer' && e.status === 200),
        'and resolved the tag with that Bearer token (token flow)',
        { requests: log.text() },
      );
      const info = await dockerInspect(d, `${h}/public/x:v1`);
      t.equal(info?.Id, seeded['public/x']!.image.config.digest, 'image id is the seeded config digest');

      log.clear();
      const priv = await d.docker(['pull', `${h}/team-a/x:v1`]);
      t.not(priv.code, 0, 'anonymous docker pull team-a/x:v1 fails', { ...said(priv), requests: log.text() });
      t.match(priv.stderr, REFUSED, 'refused as unauthorized/denied/not found', said(priv));
      t.comment(`anonymous docker pull team-a/x: ${priv.stderr.trim()}`);
      t.ok(
        log.all().some((e) => e.path === '/token' && e.scheme === 'none' && e.query.get('scope') === 'repository:team-a/x:pull'),
        'an anonymous token was asked for repository:team-a/x:pull',
        { requests: log.text() },
      );
      t.ok(
        log.all().some((e) => e.path.startsWith('/v2/team-a/x/manifests/') && e.scheme === 'bearer' && e.status === 401),
        'the registry answered 401 to the anonymous token on team-a/x',
        { requests: log.text() },
      );
      t.notOk(
        log.all().some((e) => e.path.startsWith('/v2/team-a/x/') && e.status < 300),
        'nothing of team-a/x was served',
        { requests: log.text() },
      );
      t.equal(await dockerInspect(d, `${h}/team-a/x:v1`), undefined, 'no team-a/x image locally');

      for (const repo of ['public/anon', 'team-a/anon', 'anon/x']) {
        const ref = `${h}/${repo}:v1`;
        t.equal((await d.docker(['tag', `${h}/public/x:v1`, ref])).code, 0, `docker tag ${repo}`);
        log.clear();
        const push = await d.docker(['push', ref]);
        t.not(push.code, 0, `anonymous docker push ${repo}:v1 fails`, { ...said(push), requests: log.text() });
        t.match(push.stderr + push.stdout, REFUSED, 'refused as unauthorized/denied', said(push));
        t.notOk(
          log.all().some((e) => ['POST', 'PATCH', 'PUT'].includes(e.method) && e.status < 300),
          'no upload or manifest write was accepted',
          { requests: log.text() },
        );
        t.equal((await manifestOf(reg, repo, 'v1')).status, 404, `the registry holds nothing under ${repo}`);
        await d.docker(['rmi', ref]);
      }
      assertNo5xx(t, ar, 'anonymous');
      await d.docker(['rmi', `${h}/public/x:v1`]);
    });

    await t.test('wrong password: docker login fails cleanly', async (t) => {
      await dockerWrongPassword(t, d, ar);
    });

    await t.test('docker login + push + rmi + pull (token flow)', async (t) => {
      await dockerRoundTrip(t, d, ar, 'team-a/app');
    });

    await t.test('alice (team-a/** only) cannot push to team-b/x, gets 403 DENIED and does not see it in the catalog', async (t) => {
      t.ok(dockerAuths(d)[h], 'docker is logged in as alice');
      const ref = `${h}/team-b/x:v2`;
      t.equal((await d.docker(['tag', `${h}/team-a/app:v1`, ref])).code, 0, 'docker tag team-b/x:v2');
      log.clear();
      const push = await d.docker(['push', ref]);
      t.not(push.code, 0, 'docker push team-b/x:v2 as alice fails', { ...said(push), requests: log.text() });
      t.match(push.stderr + push.stdout, /denied/i, 'with "denied"', said(push));
      t.comment(`docker push team-b/x as alice: ${push.stderr.trim()}`);
      t.ok(
        log.all().some((e) => e.path.startsWith('/v2/team-b/x/') && e.scheme === 'bearer' && e.status === 403),
        'the registry answered 403 to alice\'s token on team-b/x',
        { requests: log.text() },
      );
      t.notOk(
        log.all().some((e) => e.path.startsWith('/v2/team-b/x/') && ['POST', 'PATCH', 'PUT'].includes(e.method) && e.status < 300),
        'no write to team-b/x was accepted',
        { requests: log.text() },
      );
      t.equal((await manifestOf(reg, 'team-b/x', 'v2')).status, 404, 'team-b/x:v2 does not exist');
      t.equal((await manifestOf(reg, 'team-b/x', 'v1')).digest, seeded['team-b/x']!.digest, 'team-b/x:v1 (seeded by admin) is untouched');
      await d.docker(['rmi', ref]);

      // The same over HTTP: Basic and a Bearer token from /token.
      let r = await http(reg.url, 'POST', '/v2/team-b/x/blobs/uploads/', undefined, { authorization: ALICE });
      t.same([r.status, errCode(r)], [403, 'DENIED'], 'Basic alice: POST team-b/x uploads -> 403 DENIED');
      r = await http(reg.url, 'PUT', '/v2/team-b/x/manifests/v3', seeded['team-a/x']!.image.manifest, {
        authorization: ALICE,
        'content-type': seeded['team-a/x']!.image.mediaType,
      });
      t.same([r.status, errCode(r)], [403, 'DENIED'], 'Basic alice: PUT team-b/x manifest -> 403 DENIED');
      r = await http(reg.url, 'GET', '/v2/team-b/x/manifests/v1', undefined, { authorization: ALICE, accept: ACCEPT_ALL });
      t.same([r.status, errCode(r)], [403, 'DENIED'], 'Basic alice: GET team-b/x manifest -> 403 DENIED (no pull either)');
      const tok = await http(reg.url, 'GET', '/token?service=registry&scope=repository:team-b/x:pull,push', undefined, { authorization: ALICE });
      t.equal(tok.status, 200, 'alice gets a token for team-b/x');
      r = await http(reg.url, 'POST', '/v2/team-b/x/blobs/uploads/', undefined, { authorization: `Bearer ${tok.json?.token}` });
      t.same([r.status, errCode(r)], [403, 'DENIED'], 'Bearer alice: POST team-b/x uploads -> 403 DENIED');
      r = await http(reg.url, 'POST', '/v2/team-a/x/blobs/uploads/', undefined, { authorization: ALICE });
      t.equal(r.status, 202, 'while team-a/x accepts her upload (202)');

      r = await http(reg.url, 'GET', '/v2/_catalog', undefined, { authorization: ALICE });
      t.equal(r.status, 200, 'catalog with alice\'s credentials');
      t.same(r.json?.repositories, ['public/x', 'team-a/app', 'team-a/x'], 'alice sees public/x and team-a, not team-b/x');
      r = await http(reg.url, 'GET', '/v2/_catalog', undefined, { authorization: ADMIN });
      t.same(r.json?.repositories, ['public/x', 'team-a/app', 'team-a/x', 'team-b/x'], 'admin sees team-b/x (it exists)');
      // The token flow of the same listing: a registry:catalog:* token names alice, so it must list what she may pull.
      const catTok = await http(reg.url, 'GET', '/token?service=registry&scope=registry:catalog:*', undefined, { authorization: ALICE });
      t.equal(catTok.status, 200, 'alice gets a registry:catalog:* token');
      r = await http(reg.url, 'GET', '/v2/_catalog', undefined, { authorization: `Bearer ${catTok.json?.token}` });
      t.equal(r.status, 200, 'catalog with alice\'s registry:catalog:* token');
      t.same(r.json?.repositories, ['public/x', 'team-a/app', 'team-a/x'], 'the token flow lists what alice may pull too, never team-b/x');

      const logout = await d.docker(['logout', h]);
      t.equal(logout.code, 0, 'docker logout exits 0', said(logout));
      t.notOk(dockerAuths(d)[h], 'credentials removed');
    });
  });

  await t.test('Basic only (token service off)', async (t) => {
    const ar = await authRegistry(t, 'basic');
    await t.test('wrong password: docker login fails cleanly', async (t) => {
      await dockerWrongPassword(t, d, ar);
    });
    await t.test('docker login + push + rmi + pull (Basic)', async (t) => {
      await dockerRoundTrip(t, d, ar, 'team-a/app');
    });
    await t.test('alice cannot push to team-b/x (403 DENIED with Basic)', async (t) => {
      const h = ar.reg.host;
      const ref = `${h}/team-b/x:v1`;
      t.equal((await d.docker(['tag', `${h}/team-a/app:v1`, ref])).code, 0, 'docker tag team-b/x:v1');
      ar.log.clear();
      const push = await d.docker(['push', ref]);
      t.not(push.code, 0, 'docker push team-b/x:v1 as alice fails', { ...said(push), requests: ar.log.text() });
      t.match(push.stderr + push.stdout, /denied/i, 'with "denied"', said(push));
      t.ok(ar.log.all().some((e) => e.path.startsWith('/v2/team-b/x/') && e.scheme === 'basic' && e.status === 403), '403 to Basic alice', {
        requests: ar.log.text(),
      });
      t.equal((await manifestOf(ar.reg, 'team-b/x', 'v1')).status, 404, 'nothing written to team-b/x');
      await d.docker(['rmi', ref]);
      await d.docker(['logout', h]);
    });
  });
});

// ---------------------------------------------------------------------------------------------------------
// skopeo

t.test('skopeo: --dest-creds push, --src-creds pull, login, inspect --creds; wrong credentials fail', async (t) => {
  if (!requireTools(t, ['skopeo'])) return;
  for (const mode of MODES) {
    await t.test(`${mode === 'token' ? 'token service on' : 'Basic only'}`, async (t) => {
      const ar = await authRegistry(t, mode);
      const { reg, log } = ar;
      const env = await containersEnv(t);
      const work = tempDir(t, 'auth-skopeo-');
      const src = path.join(work, 'src');
      const img = makeOciLayout(src, { tag: 'v1', layers: 2, layerBytes: 5000, seed: mode === 'token' ? 401 : 402 });
      const ref = `docker://${reg.host}/team-a/skopeo:v1`;
      const authfile = path.join(env.dir, 'skopeo-auth.json');

      let r = await env.skopeo(['copy', '--dest-tls-verify=false', `oci:${src}:v1`, ref]);
      t.not(r.code, 0, `push without credentials fails (${r.ms} ms)`, said(r));
      t.match(r.stderr, REFUSED, 'unauthorized', said(r));

      log.clear();
      r = await env.skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', `alice:${WRONG}`, `oci:${src}:v1`, ref]);
      t.not(r.code, 0, `push with a wrong password fails (${r.ms} ms)`, { ...said(r), requests: log.text() });
      t.match(r.stderr, LOGIN_REFUSED, 'unauthorized', said(r));
      t.equal((await manifestOf(reg, 'team-a/skopeo', 'v1')).status, 404, 'nothing was written');
      assertNo5xx(t, ar, 'wrong --dest-creds');
      await assertStillFine(t, ar, 'after wrong --dest-creds');

      log.clear();
      r = await env.skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', `alice:${USERS.alice}`, `oci:${src}:v1`, ref]);
      t.equal(r.code, 0, `skopeo copy --dest-creds alice (${r.ms} ms)`, { ...said(r), requests: log.text() });
      assertFlow(t, ar, 'skopeo push');
      const held = await manifestOf(reg, 'team-a/skopeo', 'v1');
      t.equal(held.digest, img.manifestDigest, 'the registry holds the layout manifest digest');
      t.ok(held.body.equals(img.manifest), 'byte for byte');

      log.clear();
      const back = path.join(work, 'back');
      r = await env.skopeo(['copy', '--src-tls-verify=false', '--src-creds', `alice:${USERS.alice}`, ref, `oci:${back}:v1`]);
      t.equal(r.code, 0, `skopeo copy --src-creds alice to oci: (${r.ms} ms)`, { ...said(r), requests: log.text() });
      assertFlow(t, ar, 'skopeo pull');
      t.same(layoutBlobs(back), img.blobs, 'pulled exactly the blobs pushed');
      t.ok(readLayoutBlob(back, img.manifestDigest).equals(img.manifest), 'pulled manifest byte-identical');

      r = await env.skopeo(['inspect', '--tls-verify=false', '--raw', '--creds', `alice:${USERS.alice}`, ref]);
      t.equal(r.code, 0, `skopeo inspect --raw --creds (${r.ms} ms)`, said(r));
      t.ok(r.out.equals(img.manifest), 'inspect --raw prints the pushed manifest bytes');
      r = await env.skopeo(['inspect', '--tls-verify=false', '--creds', `alice:${USERS.alice}`, ref]);
      t.equal(r.code, 0, 'skopeo inspect --creds (with tags)', said(r));
      t.equal(r.code === 0 ? JSON.parse(r.stdout).Digest : undefined, img.manifestDigest, 'inspect reports the digest');
      r = await env.skopeo(['inspect', '--tls-verify=false', '--raw', '--creds', `alice:${WRONG}`, ref]);
      t.not(r.code, 0, 'skopeo inspect with a wrong password fails', said(r));
      t.match(r.stderr, REFUSED, 'unauthorized', said(r));
      r = await env.skopeo(['inspect', '--tls-verify=false', '--raw', ref]);
      t.not(r.code, 0, 'skopeo inspect without credentials fails (team-a is not anonymous)', said(r));

      log.clear();
      r = await env.skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', `alice:${USERS.alice}`, `oci:${src}:v1`, `docker://${reg.host}/team-b/skopeo:v1`]);
      t.not(r.code, 0, 'alice cannot push to team-b', said(r));
      // skopeo first HEADs the blobs: a HEAD 403 has no body, so it can only say "403 (Forbidden)".
      t.match(r.stderr, /denied|403|forbidden/i, 'denied (403)', said(r));
      assertDenied(t, ar, 'team-b/skopeo');
      t.equal((await manifestOf(reg, 'team-b/skopeo', 'v1')).status, 404, 'nothing written to team-b');

      log.clear();
      r = await env.skopeo(['login', '--tls-verify=false', '--authfile', authfile, '-u', 'alice', '--password-stdin', reg.host], { input: `${WRONG}\n` });
      t.not(r.code, 0, 'skopeo login with a wrong password fails', said(r));
      t.match(r.stderr, LOGIN_REFUSED, 'unauthorized', said(r));
      t.notOk(existsSync(authfile) && readFileSync(authfile, 'utf8').includes(reg.host), 'nothing stored in the auth file');
      await assertStillFine(t, ar, 'after the wrong skopeo login');
      r = await env.skopeo(['login', '--tls-verify=false', '--authfile', authfile, '-u', 'alice', '--password-stdin', reg.host], { input: `${USERS.alice}\n` });
      t.equal(r.code, 0, 'skopeo login --password-stdin', said(r));
      t.match(r.stdout, /Login Succeeded/, 'Login Succeeded');
      t.ok(JSON.parse(readFileSync(authfile, 'utf8')).auths?.[reg.host]?.auth, 'credentials in the auth file');
      log.clear();
      r = await env.skopeo(['inspect', '--tls-verify=false', '--raw', '--authfile', authfile, ref]);
      t.equal(r.code, 0, 'skopeo inspect with the logged-in auth file', { ...said(r), requests: log.text() });
      t.ok(r.out.equals(img.manifest), 'same manifest bytes');
      assertFlow(t, ar, 'skopeo inspect after login');
      r = await env.skopeo(['logout', '--authfile', authfile, reg.host]);
      t.equal(r.code, 0, 'skopeo logout', said(r));
      assertNo5xx(t, ar, 'skopeo');
    });
  }
});

// ---------------------------------------------------------------------------------------------------------
// podman

t.test('podman: login with an auth file, push, rmi, pull; wrong password fails', async (t) => {
  if (!requireTools(t, ['podman'])) return;
  for (const mode of MODES) {
    await t.test(`${mode === 'token' ? 'token service on' : 'Basic only'}`, async (t) => {
      const ar = await authRegistry(t, mode);
      const { reg, log } = ar;
      const env = await containersEnv(t);
      // podman names an oci: pull after the layout path, which must be lowercase (mkdtemp names are not).
      const work = path.join(tmpdir(), `auth-podman-${randomBytes(6).toString('hex')}`);
      mkdirSync(work);
      t.teardown(() => rmSync(work, { recursive: true, force: true }));
      const src = path.join(work, 'src');
      const img = makeOciLayout(src, { tag: 'v1', layers: 2, layerBytes: 5000, seed: mode === 'token' ? 501 : 502 });
      const authfile = path.join(env.dir, 'podman-auth.json');
      writeFileSync(authfile, '{"auths":{}}\n');
      const local = 'localhost/auth-e2e:v1';
      const ref = `${reg.host}/team-a/podman:v1`;

      let r = await env.podman(['pull', `oci:${src}:v1`]);
      t.equal(r.code, 0, `podman pull oci: layout (${r.ms} ms)`, said(r));
      r = await env.podman(['tag', img.configDigest.slice('sha256:'.length), local]);
      t.equal(r.code, 0, 'podman tag', said(r));

      r = await env.podman(['push', '--tls-verify=false', '--authfile', authfile, local, `docker://${ref}`]);
      t.not(r.code, 0, `podman push before login fails (${r.ms} ms)`, said(r));
      t.match(r.stderr, REFUSED, 'unauthorized', said(r));

      log.clear();
      r = await env.podman(['login', '--tls-verify=false', '--authfile', authfile, '-u', 'alice', '--password-stdin', reg.host], { input: `${WRONG}\n` });
      t.not(r.code, 0, `podman login with a wrong password fails (${r.ms} ms)`, { ...said(r), requests: log.text() });
      t.match(r.stderr, LOGIN_REFUSED, 'unauthorized', said(r));
      t.notOk(existsSync(authfile) && readFileSync(authfile, 'utf8').includes(reg.host), 'nothing stored in the auth file');
      assertNo5xx(t, ar, 'wrong podman login');
      await assertStillFine(t, ar, 'after the wrong podman login');

      log.clear();
      r = await env.podman(['login', '--tls-verify=false', '--authfile', authfile, '-u', 'alice', '--password-stdin', reg.host], { input: `${USERS.alice}\n` });
      t.equal(r.code, 0, `podman login --authfile (${r.ms} ms)`, { ...said(r), requests: log.text() });
      t.match(r.stdout, /Login Succeeded/, 'Login Succeeded');
      t.equal(
        JSON.parse(readFileSync(authfile, 'utf8')).auths?.[reg.host]?.auth,
        Buffer.from(`alice:${USERS.alice}`).toString('base64'),
        'credentials in the temp-dir auth file',
      );

      log.clear();
      const digestFile = path.join(work, 'digest');
      r = await env.podman(['push', '--tls-verify=false', '--authfile', authfile, '--digestfile', digestFile, local, `docker://${ref}`]);
      t.equal(r.code, 0, `podman push (${r.ms} ms)`, { ...said(r), requests: log.text() });
      assertFlow(t, ar, 'podman push');
      const pushed = existsSync(digestFile) ? readFileSync(digestFile, 'utf8').trim() : '';
      const held = await manifestOf(reg, 'team-a/podman', 'v1');
      t.equal(held.status, 200, 'the registry holds the pushed manifest');
      t.equal(held.digest, pushed, 'with the digest podman computed');

      log.clear();
      r = await env.podman(['push', '--tls-verify=false', '--authfile', authfile, local, `docker://${reg.host}/team-b/podman:v1`]);
      t.not(r.code, 0, 'podman push to team-b as alice fails', said(r));
      t.match(r.stderr, /denied|403|forbidden/i, 'denied (403)', said(r));
      assertDenied(t, ar, 'team-b/podman');
      t.equal((await manifestOf(reg, 'team-b/podman', 'v1')).status, 404, 'nothing written to team-b');

      r = await env.podman(['rmi', '--all', '--force']);
      t.equal(r.code, 0, 'podman rmi --all', said(r));
      t.equal((await env.podman(['images', '--quiet'])).stdout.trim(), '', 'local storage is empty');

      log.clear();
      r = await env.podman(['pull', '--tls-verify=false', '--authfile', authfile, ref]);
      t.equal(r.code, 0, `podman pull with the auth file (${r.ms} ms)`, { ...said(r), requests: log.text() });
      assertFlow(t, ar, 'podman pull');
      const insp = await env.podman(['image', 'inspect', ref]);
      t.equal(insp.code, 0, 'podman image inspect', said(insp));
      const info = insp.code === 0 ? (JSON.parse(insp.stdout) as { Id: string; Digest: string }[])[0] : undefined;
      t.equal(info?.Digest, pushed, 'pulled back the pushed digest');
      t.equal(`sha256:${info?.Id}`, img.configDigest, 'same image id (config digest)');

      r = await env.podman(['logout', '--authfile', authfile, reg.host]);
      t.equal(r.code, 0, 'podman logout', said(r));
      r = await env.podman(['pull', '--tls-verify=false', '--authfile', authfile, ref]);
      t.not(r.code, 0, 'after logout the pull is refused', said(r));
      assertNo5xx(t, ar, 'podman');
    });
  }
});

// ---------------------------------------------------------------------------------------------------------
// ctr (containerd)

/** An OCI image layout tar holding one image tagged `tag` (what `ctr images import` reads). */
function ociLayoutTar(image: BuiltImage, tag: string): Buffer {
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [{ mediaType: image.mediaType, digest: image.manifestDigest, size: image.manifest.length, annotations: { 'org.opencontainers.image.ref.name': tag } }],
    }),
  );
  const blob = (digest: string, data: Buffer) => ({ name: `blobs/sha256/${digest.slice('sha256:'.length)}`, data });
  return tarOf([
    { name: 'oci-layout', data: Buffer.from('{"imageLayoutVersion":"1.0.0"}') },
    { name: 'index.json', data: index },
    blob(image.manifestDigest, image.manifest),
    blob(image.config.digest, image.config.data),
    ...image.layers.map((l) => blob(l.digest, l.data)),
  ]);
}

async function ctrContent(c: Containerd, digest: string): Promise<Buffer | undefined> {
  const r = await c.ctr(['content', 'get', digest]);
  return r.code === 0 ? r.stdoutBytes : undefined;
}

t.test('ctr (containerd 1.6): images push/pull --plain-http --user; wrong password fails', async (t) => {
  if (!requireTools(t, ['containerd', 'ctr'])) return;
  const c = await startContainerd(t);
  for (const mode of MODES) {
    await t.test(`${mode === 'token' ? 'token service on' : 'Basic only'}`, async (t) => {
      const ar = await authRegistry(t, mode);
      const { reg, log } = ar;
      const h = reg.host;
      const fresh = buildImage({ layers: 2, layerBytes: 20_000 });
      const tarFile = path.join(tempDir(t, 'auth-ctr-'), 'fresh.tar');
      writeFileSync(tarFile, ociLayoutTar(fresh, 'v1'));
      const imp = await c.ctr(['images', 'import', '--base-name', `${h}/team-a/ctr`, tarFile]);
      t.equal(imp.code, 0, 'ctr images import', said(imp));
      const ref = `${h}/team-a/ctr:v1`;

      log.clear();
      let r = await c.ctr(['images', 'push', '--plain-http', '--user', `alice:${WRONG}`, ref]);
      t.not(r.code, 0, 'ctr push with a wrong password fails', { ...said(r), requests: log.text() });
      t.match(r.stderr, REFUSED, 'unauthorized', said(r));
      t.equal((await manifestOf(reg, 'team-a/ctr', 'v1')).status, 404, 'nothing was written');
      assertNo5xx(t, ar, 'ctr wrong push');
      await assertStillFine(t, ar, 'after the wrong ctr push');

      log.clear();
      r = await c.ctr(['images', 'push', '--plain-http', '--user', `alice:${USERS.alice}`, ref]);
      t.equal(r.code, 0, 'ctr images push --user alice', { ...said(r), requests: log.text() });
      assertFlow(t, ar, 'ctr push');
      const held = await manifestOf(reg, 'team-a/ctr', 'v1');
      t.equal(held.digest, fresh.manifestDigest, 'the registry holds the imported manifest');
      t.ok(held.body.equals(fresh.manifest), 'byte for byte');
      for (const b of [fresh.config, ...fresh.layers]) {
        const got = await http(reg.url, 'GET', `/v2/team-a/ctr/blobs/${b.digest}`, undefined, { authorization: ADMIN });
        t.ok(got.status === 200 && got.buf.equals(b.data), `blob ${b.digest.slice(7, 19)} uploaded byte for byte`);
      }

      r = await c.ctr(['images', 'tag', ref, `${h}/team-b/ctr:v1`]);
      t.equal(r.code, 0, 'ctr images tag team-b', said(r));
      log.clear();
      r = await c.ctr(['images', 'push', '--plain-http', '--user', `alice:${USERS.alice}`, `${h}/team-b/ctr:v1`]);
      t.not(r.code, 0, 'ctr push to team-b as alice fails', said(r));
      t.match(r.stderr, /denied|forbidden|403/i, 'denied (403)', said(r));
      assertDenied(t, ar, 'team-b/ctr');
      t.equal((await manifestOf(reg, 'team-b/ctr', 'v1')).status, 404, 'nothing written to team-b');

      // Pull of an image ctr has never seen, seeded by admin.
      const seeded = buildImage({ layers: 2, format: 'docker' });
      await pushAs(reg.url, 'team-a/ctr-seeded', 'v1', seeded, ADMIN);
      const pullRef = `${h}/team-a/ctr-seeded:v1`;
      log.clear();
      r = await c.ctr(['images', 'pull', '--plain-http', `--user`, `alice:${WRONG}`, pullRef]);
      t.not(r.code, 0, 'ctr pull with a wrong password fails', { ...said(r), requests: log.text() });
      t.match(r.stderr, REFUSED, 'unauthorized', said(r));
      r = await c.ctr(['images', 'pull', '--plain-http', pullRef]);
      t.not(r.code, 0, 'ctr pull without credentials fails', said(r));
      await assertStillFine(t, ar, 'after the wrong ctr pull');

      log.clear();
      r = await c.ctr(['images', 'pull', '--plain-http', '--user', `alice:${USERS.alice}`, pullRef]);
      t.equal(r.code, 0, 'ctr images pull --user alice', { ...said(r), requests: log.text() });
      assertFlow(t, ar, 'ctr pull');
      t.ok((await ctrContent(c, seeded.manifestDigest))?.equals(seeded.manifest), 'manifest stored byte for byte');
      for (const b of [seeded.config, ...seeded.layers]) {
        t.ok((await ctrContent(c, b.digest))?.equals(b.data), `blob ${b.digest.slice(7, 19)} stored byte for byte`);
      }

      if (mode === 'token') {
        // Anonymous pull of public/** through the token flow works for ctr as well.
        const pub = buildImage({ layers: 1 });
        await pushAs(reg.url, 'public/ctr', 'v1', pub, ADMIN);
        log.clear();
        r = await c.ctr(['images', 'pull', '--plain-http', `${h}/public/ctr:v1`]);
        t.equal(r.code, 0, 'anonymous ctr pull of public/ctr', { ...said(r), requests: log.text() });
        assertAnonymous(t, ar, 'anonymous ctr pull');
        t.ok(v2Calls(log).some((e) => e.path === '/v2/public/ctr/manifests/v1' && e.status === 200), 'public/ctr:v1 resolved', { requests: log.text() });
      }
      assertNo5xx(t, ar, 'ctr');
    });
  }
});
