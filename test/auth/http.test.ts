import { readFileSync, writeFileSync } from 'node:fs';
import t from 'tap';
import type { Action } from '../../src/auth/rules';
import { authConfig, basic } from '../helpers/auth';
import { http } from '../helpers/http';
import { startRegistry } from '../helpers/server';
import { ownToken } from '../helpers/tokens';
import { imageChain, pullV1, pushV1 } from '../helpers/v1';
import { buildImage, sha256 } from '../helpers/v2';

const USERS = { alice: 'alice-pw', bob: 'bob-pw', carol: 'carol-pw' };
const RULES = [
  { repository: 'team-a/**', who: ['@team-a'], actions: ['pull', 'push'] },
  { repository: '**', who: ['@admins'], actions: ['pull', 'push', 'delete'] },
  { repository: 'public/**', who: ['$anonymous', '$authenticated'], actions: ['pull'] },
  { repository: '$user/**', who: ['$authenticated'], actions: ['pull', 'push', 'delete'] },
];
const GROUPS = { 'team-a': ['alice'], admins: ['carol'] };
const errCode = (r: { json: any }) => r.json?.errors?.[0]?.code;

/** One request per (protocol, action); "allowed" means anything but 401/403. */
const probes: Record<'v1' | 'v2', Record<Action, (repo: string) => [string, string, string?]>> = {
  v2: {
    pull: (repo) => ['GET', `/v2/${repo}/tags/list`],
    push: (repo) => ['POST', `/v2/${repo}/blobs/uploads/`],
    delete: (repo) => ['DELETE', `/v2/${repo}/manifests/${sha256('none')}`],
  },
  v1: {
    pull: (repo) => ['GET', `/v1/repositories/${repo}/tags`],
    push: (repo) => ['PUT', `/v1/repositories/${repo}/`, '[]'],
    delete: (repo) => ['DELETE', `/v1/repositories/${repo}/tags/none`],
  },
};

t.test('users x rules x actions x protocols', async (t) => {
  const { overrides } = authConfig(t, USERS, { rules: RULES as never, groups: GROUPS });
  const reg = await startRegistry(t, overrides);
  const who: [string | null, string][] = [[null, ''], ['alice', USERS.alice], ['bob', USERS.bob], ['carol', USERS.carol]];
  const repos = ['team-a/app', 'team-b/app', 'public/base', 'bob/tools'];
  const policy = reg.app.registry.access.policy;
  for (const [user, pw] of who) {
    for (const repo of repos) {
      for (const action of ['pull', 'push', 'delete'] as Action[]) {
        const expected = policy.can(user, repo, action);
        for (const proto of ['v1', 'v2'] as const) {
          const [method, path, body] = probes[proto][action](repo);
          const r = await http(reg.url, method, path, body, user ? { authorization: basic(user, pw) } : {});
          const denied = user === null ? 401 : 403;
          if (expected) t.ok(r.status !== 401 && r.status !== 403, `${user ?? 'anonymous'} may ${action} ${repo} (${proto}: ${r.status})`);
          else t.equal(r.status, denied, `${user ?? 'anonymous'} may not ${action} ${repo} (${proto})`);
        }
      }
    }
  }
  // Spot checks of the matrix itself, so a policy bug cannot hide behind `expected`.
  t.ok(policy.can('alice', 'team-a/app', 'push'));
  t.notOk(policy.can('alice', 'team-b/app', 'push'));
  t.notOk(policy.can('alice', 'team-a/app', 'delete'));
  t.ok(policy.can(null, 'public/base', 'pull'));
  t.notOk(policy.can(null, 'public/base', 'push'));
  t.ok(policy.can('bob', 'bob/tools', 'delete'));
  t.ok(policy.can('carol', 'team-b/app', 'delete'));

  const r = await http(reg.url, 'GET', '/v2/team-b/app/tags/list', undefined, { authorization: basic('alice', USERS.alice) });
  t.same([r.status, errCode(r)], [403, 'DENIED'], 'v2 403 body');
  const a = await http(reg.url, 'GET', '/v2/team-b/app/tags/list');
  t.same([a.status, errCode(a)], [401, 'UNAUTHORIZED']);
  t.equal(a.headers.get('www-authenticate'), 'Basic realm="test-realm"');
});

t.test('v2 base, wrong passwords, catalog and search show only what the caller may pull', async (t) => {
  const { overrides } = authConfig(t, USERS, { rules: RULES as never, groups: GROUPS });
  const reg = await startRegistry(t, overrides);
  const carol = { authorization: basic('carol', USERS.carol) };
  const img = buildImage({ layers: 1 });
  for (const repo of ['team-a/app', 'team-b/app', 'public/base']) {
    for (const b of [img.config, ...img.layers]) {
      const res = await http(reg.url, 'POST', `/v2/${repo}/blobs/uploads/?digest=${b.digest}`, b.data, carol);
      t.equal(res.status, 201);
    }
    const res = await http(reg.url, 'PUT', `/v2/${repo}/manifests/v1`, img.manifest, { ...carol, 'content-type': img.mediaType });
    t.equal(res.status, 201);
    await http(reg.url, 'PUT', `/v1/repositories/${repo}/`, '[]', carol);
  }
  let r = await http(reg.url, 'GET', '/v2/');
  t.same([r.status, errCode(r)], [401, 'UNAUTHORIZED'], 'anonymous /v2/ is challenged');
  t.equal(r.headers.get('docker-distribution-api-version'), 'registry/2.0');
  r = await http(reg.url, 'GET', '/v2/', undefined, { authorization: basic('alice', USERS.alice) });
  t.equal(r.status, 200, 'good login');
  r = await http(reg.url, 'GET', '/v2/', undefined, { authorization: basic('alice', 'wrong') });
  t.same([r.status, errCode(r)], [401, 'UNAUTHORIZED'], 'wrong password');
  r = await http(reg.url, 'GET', '/v2/', undefined, { authorization: basic('mallory', 'x') });
  t.equal(r.status, 401, 'unknown user');
  r = await http(reg.url, 'GET', '/v2/', undefined, { authorization: 'Basic !!!' });
  t.equal(r.status, 401, 'malformed Basic');
  r = await http(reg.url, 'GET', '/v2/', undefined, { authorization: 'Digest abc' });
  t.equal(r.status, 401, 'unknown scheme');

  r = await http(reg.url, 'GET', '/v2/_catalog', undefined, { authorization: basic('alice', USERS.alice) });
  t.same(r.json.repositories, ['public/base', 'team-a/app'], 'alice sees team-a and public, not team-b');
  r = await http(reg.url, 'GET', '/v2/_catalog?n=1', undefined, { authorization: basic('alice', USERS.alice) });
  t.same(r.json.repositories, ['public/base'], 'pagination over the filtered list');
  r = await http(reg.url, 'GET', '/v2/_catalog', undefined, carol);
  t.same(r.json.repositories, ['public/base', 'team-a/app', 'team-b/app']);
  r = await http(reg.url, 'GET', '/v1/search?q=app', undefined, { authorization: basic('alice', USERS.alice) });
  t.same(r.json.results.map((x: { name: string }) => x.name), ['team-a/app']);
  t.equal(r.json.num_results, 1);
  r = await http(reg.url, 'GET', '/v1/search?q=');
  t.same(r.json.results.map((x: { name: string }) => x.name), ['public/base'], 'anonymous search');

  // Mount needs pull on the source: alice cannot copy team-b's blob into her namespace.
  r = await http(reg.url, 'POST', `/v2/alice/x/blobs/uploads/?mount=${img.layers[0]!.digest}&from=team-b/app`, undefined, {
    authorization: basic('alice', USERS.alice),
  });
  t.equal(r.status, 202, 'mount refused silently: a plain upload starts');
  r = await http(reg.url, 'POST', `/v2/alice/x/blobs/uploads/?mount=${img.layers[0]!.digest}&from=team-a/app`, undefined, {
    authorization: basic('alice', USERS.alice),
  });
  t.equal(r.status, 201, 'mount from a readable repository');
});

t.test('token service (Docker token authentication)', async (t) => {
  const { overrides, dir, htpasswd } = authConfig(t, USERS, { rules: RULES as never, groups: GROUPS, token: { enabled: true, expiry: 60 } as never });
  const reg = await startRegistry(t, overrides);
  let r = await http(reg.url, 'GET', '/v2/');
  t.equal(r.status, 401);
  t.equal(r.headers.get('www-authenticate'), `Bearer realm="${reg.url}/token",service="registry"`);
  r = await http(reg.url, 'GET', '/v2/team-a/app/tags/list');
  t.equal(r.headers.get('www-authenticate'), `Bearer realm="${reg.url}/token",service="registry",scope="repository:team-a/app:pull"`);
  r = await http(reg.url, 'POST', '/v2/team-a/app/blobs/uploads/');
  t.match(r.headers.get('www-authenticate'), /scope="repository:team-a\/app:pull,push"/);

  // Anonymous token: only what anonymous may do.
  r = await http(reg.url, 'GET', '/token?service=registry&scope=repository:public/base:pull,push&scope=repository:team-a/app:pull');
  t.equal(r.status, 200);
  t.match(r.json, { token: String, access_token: String, expires_in: 60, issued_at: String });
  const claims = JSON.parse(Buffer.from(r.json.token.split('.')[1], 'base64url').toString());
  t.same(claims.access, [
    { type: 'repository', name: 'public/base', actions: ['pull'] },
    { type: 'repository', name: 'team-a/app', actions: [] },
  ]);
  const anon = { authorization: `Bearer ${r.json.token}` };
  t.not((await http(reg.url, 'GET', '/v2/public/base/tags/list', undefined, anon)).status, 401, 'anonymous pull with a token');
  r = await http(reg.url, 'POST', '/v2/public/base/blobs/uploads/', undefined, anon);
  t.equal(r.status, 401, 'push not granted to anonymous');

  // Basic to the token service: alice gets push on team-a only.
  r = await http(reg.url, 'GET', '/token?service=registry&scope=repository:team-a/app:pull,push&scope=repository:team-b/app:pull,push', undefined, {
    authorization: basic('alice', USERS.alice),
  });
  const aliceClaims = JSON.parse(Buffer.from(r.json.token.split('.')[1], 'base64url').toString());
  t.same(aliceClaims.access.map((g: { actions: string[] }) => g.actions), [['pull', 'push'], []]);
  t.equal(aliceClaims.sub, 'alice');
  const alice = { authorization: `Bearer ${r.json.token}` };
  t.equal((await http(reg.url, 'POST', '/v2/team-a/app/blobs/uploads/', undefined, alice)).status, 202);
  t.same(
    [(await http(reg.url, 'POST', '/v2/team-b/app/blobs/uploads/', undefined, alice)).status],
    [403],
    'a token for one repository does not open another',
  );
  r = await http(reg.url, 'GET', '/token?service=registry&scope=repository:team-a/app:pull', undefined, { authorization: basic('alice', 'bad') });
  t.equal(r.status, 401, 'token service refuses wrong passwords');
  r = await http(reg.url, 'GET', '/token?service=other');
  t.equal(r.status, 400, 'unknown service');
  t.equal((await http(reg.url, 'GET', '/v2/team-a/app/tags/list', undefined, { authorization: 'Bearer a.b.c' })).status, 401, 'forged token');

  // Basic still works on every request with the token service on.
  t.equal((await http(reg.url, 'POST', '/v2/team-a/app/blobs/uploads/', undefined, { authorization: basic('alice', USERS.alice) })).status, 202);

  // Expiry: an expired token is refused, except to continue an upload started while it was valid.
  r = await http(reg.url, 'POST', '/v2/team-a/app/blobs/uploads/', undefined, alice);
  const up = r.headers.get('location')!;
  const startedMs = Date.now();
  await new Promise((resolve) => setTimeout(resolve, 1100));
  const grant = [{ type: 'repository' as const, name: 'team-a/app', actions: ['pull', 'push'] }];
  const expired = await ownToken(`${dir}/token.key`, htpasswd, 'alice', grant, Math.floor(startedMs / 1000) + 1);
  const old = { authorization: `Bearer ${expired}` };
  r = await http(reg.url, 'GET', '/v2/team-a/app/tags/list', undefined, old);
  t.equal(r.status, 401, 'expired token refused');
  t.equal((await http(reg.url, 'GET', '/v2/', undefined, old)).status, 401, '/v2/ tells the client its token expired');
  t.equal((await http(reg.url, 'GET', '/v2/', undefined, alice)).status, 200, '/v2/ with a valid token');
  t.equal((await http(reg.url, 'POST', '/v2/team-a/app/blobs/uploads/', undefined, old)).status, 401, 'no new upload with it');
  const data = Buffer.from('a long push');
  r = await http(reg.url, 'PATCH', up, data, old);
  t.equal(r.status, 202, 'an upload started with a valid token continues after it expires');
  r = await http(reg.url, 'PUT', `${up}?digest=${sha256(data)}`, undefined, old);
  t.equal(r.status, 201);
  r = await http(reg.url, 'PUT', `/v2/team-a/app/manifests/v1`, Buffer.from('{}'), { ...old, 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
  t.equal(r.status, 401, 'but nothing else');
});

t.test('v1 flows with authentication, using tokens as Docker 1.x does', async (t) => {
  const { overrides } = authConfig(t, USERS, { rules: RULES as never, groups: GROUPS });
  const reg = await startRegistry(t, overrides);
  const chain = imageChain(3, { emptyAt: 1 });
  const alice = { authorization: basic('alice', USERS.alice) };

  // Basic only on index calls; registry calls carry the X-Docker-Token (pushV1 does exactly that).
  const pushed = await pushV1(reg.url, 'team-a/v1app', 'latest', chain, alice);
  t.match(pushed.token, /^signature=[\w-]+\.[\w-]+\.[\w-]+,repository="team-a\/v1app",access=write$/);
  t.equal(pushed.pushed.length, 3);
  const again = await pushV1(reg.url, 'team-a/v1app', 'latest', chain, alice);
  t.equal(again.skipped.length, 3, 'a write token may probe images (the push flow does)');
  await t.rejects(pushV1(reg.url, 'team-b/v1app', 'latest', chain, alice), /index PUT: 403/, 'alice may not push to team-b');
  await t.rejects(pushV1(reg.url, 'team-a/v1app', 'latest', chain), /index PUT: 401/, 'anonymous may not push');

  // Pull with a read token obtained with Basic.
  const res = await fetch(`${reg.url}/v1/repositories/team-a/v1app/images`, { headers: { 'x-docker-token': 'true', ...alice } });
  t.equal(res.status, 200);
  const token = res.headers.get('x-docker-token')!;
  t.match(token, /access=read$/);
  for (const img of chain) {
    const r = await http(reg.url, 'GET', `/v1/images/${img.id}/layer`, undefined, { authorization: `Token ${token}` });
    t.ok(r.buf.equals(img.layer), 'layer with the read token');
  }
  let r = await http(reg.url, 'GET', `/v1/images/${chain[0]!.id}/json`);
  t.equal(r.status, 401, 'no token, no image');
  r = await http(reg.url, 'PUT', `/v1/images/${chain[0]!.id}/json`, chain[0]!.json, { authorization: `Token ${token}` });
  t.equal(r.status, 403, 'a read token cannot write');
  r = await http(reg.url, 'GET', `/v1/images/${chain[0]!.id}/json`, undefined, { authorization: `Token signature=forged.x,repository="team-a/v1app",access=read` });
  t.equal(r.status, 401, 'forged token');
  r = await http(reg.url, 'GET', `/v1/images/${chain[0]!.id}/json`, undefined, { authorization: basic('bob', USERS.bob) });
  t.equal(r.status, 404, 'Basic works on registry calls too (HTTPS standalone); bob may not read team-a, and is not told the image exists');
  r = await http(reg.url, 'GET', `/v1/images/${chain[0]!.id}/json`, undefined, { authorization: basic('carol', USERS.carol) });
  t.equal(r.status, 200);

  // pullV1 sends no credentials on the index call: public repositories only.
  await pushV1(reg.url, 'public/v1base', 'latest', chain, { authorization: basic('carol', USERS.carol) });
  const pulled = await pullV1(reg.url, 'public/v1base', 'latest');
  t.ok(pulled.every((p, i) => p.layer.equals(chain[i]!.layer)), 'anonymous pull of a public repository');
  await t.rejects(pullV1(reg.url, 'team-a/v1app', 'latest'), /401/);

  // Login as Docker 1.x does it.
  r = await http(reg.url, 'POST', '/v1/users/', JSON.stringify({ username: 'alice', password: USERS.alice, email: 'a@x' }));
  t.equal(r.status, 401, 'no self-registration');
  t.equal((await http(reg.url, 'GET', '/v1/users/', undefined, alice)).status, 200, 'good login');
  t.equal((await http(reg.url, 'GET', '/v1/users/', undefined, { authorization: basic('alice', 'no') })).status, 401, 'bad login');
  t.equal((await http(reg.url, 'GET', '/v1/users/')).status, 401, 'no credentials');
  t.equal((await http(reg.url, 'GET', '/v1/_ping')).status, 200, '_ping stays open');
});

t.test('htpasswd reload and failed-login limiting over HTTP', async (t) => {
  const { overrides, htpasswd } = authConfig(t, USERS, { failedLogins: { limit: 3, window: 60 } });
  const reg = await startRegistry(t, overrides);
  const as = (u: string, p: string) => http(reg.url, 'GET', '/v2/', undefined, { authorization: basic(u, p) });
  t.equal((await as('dave', 'dave-pw')).status, 401);
  const bcrypt = (await import('bcryptjs')).default;
  await new Promise((r) => setTimeout(r, 20));
  writeFileSync(htpasswd, readFileSync(htpasswd, 'utf8') + `dave:${bcrypt.hashSync('dave-pw', 4)}\n`);
  t.equal((await as('dave', 'dave-pw')).status, 200, 'new user without a restart');

  const started = Date.now();
  for (let i = 0; i < 3; i++) t.equal((await as('bob', 'guess' + i)).status, 401);
  t.ok(Date.now() - started >= 3 * 250, 'failed logins are slowed down');
  const blocked = await as('bob', USERS.bob);
  t.same([blocked.status, errCode(blocked)], [429, 'TOOMANYREQUESTS'], 'after the limit even the right password waits');
  const t0 = Date.now();
  t.equal((await as('alice', USERS.alice)).status, 200, 'other users are not affected');
  t.ok(Date.now() - t0 < 250, 'and not slowed down');
});

t.test('token service: OAuth2 password grant and catalog tokens', async (t) => {
  const { overrides } = authConfig(t, USERS, { rules: RULES as never, groups: GROUPS, token: { enabled: true } as never });
  const reg = await startRegistry(t, overrides);
  const form = (fields: Record<string, string>) =>
    http(reg.url, 'POST', '/token', new URLSearchParams(fields).toString(), { 'content-type': 'application/x-www-form-urlencoded' });
  let r = await form({ grant_type: 'password', service: 'registry', client_id: 'ctr', username: 'alice', password: USERS.alice, scope: 'repository:team-a/x:pull,push' });
  t.equal(r.status, 200);
  t.match(r.json, { access_token: String, expires_in: 300, scope: 'repository:team-a/x:pull,push' });
  t.equal((await http(reg.url, 'POST', '/v2/team-a/x/blobs/uploads/', undefined, { authorization: `Bearer ${r.json.access_token}` })).status, 202);
  r = await form({ grant_type: 'password', service: 'registry', username: 'alice', password: 'nope', scope: 'repository:team-a/x:pull' });
  t.equal(r.status, 401, 'wrong password');
  r = await form({ grant_type: 'refresh_token', service: 'registry', refresh_token: 'x' });
  t.equal(r.status, 400, 'no refresh tokens');

  // A catalog token lists what the rules let its user pull.
  const carol = { authorization: basic('carol', USERS.carol) };
  const img = buildImage({ layers: 1 });
  for (const repo of ['team-a/x', 'team-b/x']) {
    for (const b of [img.config, ...img.layers]) await http(reg.url, 'POST', `/v2/${repo}/blobs/uploads/?digest=${b.digest}`, b.data, carol);
    await http(reg.url, 'PUT', `/v2/${repo}/manifests/v1`, img.manifest, { ...carol, 'content-type': img.mediaType });
  }
  r = await http(reg.url, 'GET', '/token?service=registry&scope=registry:catalog:*', undefined, { authorization: basic('alice', USERS.alice) });
  r = await http(reg.url, 'GET', '/v2/_catalog', undefined, { authorization: `Bearer ${r.json.token}` });
  t.same(r.json.repositories, ['team-a/x'], 'alice sees team-a, not team-b');
  r = await http(reg.url, 'GET', '/token?service=registry&scope=repository:team-a/x:pull', undefined, { authorization: basic('alice', USERS.alice) });
  r = await http(reg.url, 'GET', '/v2/_catalog', undefined, { authorization: `Bearer ${r.json.token}` });
  t.same(r.json.repositories, [], 'without the catalog grant a token lists nothing');
});
