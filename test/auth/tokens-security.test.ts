import { readFileSync, writeFileSync } from 'node:fs';
import bcrypt from 'bcryptjs';
import t from 'tap';
import { http } from '../helpers/http';
import { as, startTenantRegistry } from '../helpers/tenants';
import { imageChain, pushV1 } from '../helpers/v1';

// Issue 22 item 3: a token is never worth more than what it was issued for, and the tokens of a
// removed user or a changed password stop working within the htpasswd poll (about 1 s).

const claimsOf = (jwt: string) => JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString());
const v1Jwt = (token: string) => /signature=([^,]+)/.exec(token)![1]!;

/** A v1 token from an index call, as Docker 1.x asks for one. */
async function v1TokenOf(url: string, repo: string, headers: Record<string, string>): Promise<string | null> {
  const res = await fetch(`${url}/v1/repositories/${repo}/images`, { headers: { 'x-docker-token': 'true', ...headers } });
  await res.arrayBuffer();
  return res.headers.get('x-docker-token');
}

/** Poll until `probe` answers `status` (the htpasswd file is polled every second). */
async function eventually(probe: () => Promise<number>, status: number, ms = 4000): Promise<number> {
  const until = Date.now() + ms;
  let got = await probe();
  while (got !== status && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 100));
    got = await probe();
  }
  return got;
}

t.test('a v1 read token buys no JWT at /token, and a token no new token', async (t) => {
  const reg = await startTenantRegistry(t);
  await pushV1(reg.url, 'team-a/app', 'latest', imageChain(1), as('alice'));
  const read = await v1TokenOf(reg.url, 'team-a/app', as('alice'));
  t.match(read, /access=read$/);

  // The attack of the review: the read token for team-a/app asks for everything on team-a/secret.
  let r = await http(reg.url, 'GET', '/token?service=registry&scope=repository:team-a/secret:pull,push,delete', undefined, {
    authorization: `Token ${read}`,
  });
  t.equal(r.status, 401, 'a v1 token is refused at /token');
  t.equal(r.json?.token, undefined, 'and no token');
  t.match(r.headers.get('www-authenticate'), /^Basic /, 'with a challenge for credentials');

  // A Bearer token is refused too (it used to buy an anonymous one).
  r = await http(reg.url, 'GET', '/token?service=registry&scope=repository:team-a/app:pull', undefined, as('alice'));
  const jwt = r.json.token as string;
  r = await http(reg.url, 'GET', '/token?service=registry&scope=repository:team-a/app:pull,push', undefined, { authorization: `Bearer ${jwt}` });
  t.equal(r.status, 401, 'a Bearer token is refused at /token');

  // An index call made with a token hands out no fresh token: lifetimes cannot be stretched.
  t.equal(await v1TokenOf(reg.url, 'team-a/app', { authorization: `Token ${read}` }), null, 'no v1 token for a v1 token');
  t.equal(await v1TokenOf(reg.url, 'team-a/app', { authorization: `Bearer ${jwt}` }), null, 'no v1 token for a Bearer token');

  // Still: Basic and anonymous callers get what the rules grant.
  r = await http(reg.url, 'GET', '/token?service=registry&scope=repository:team-a/secret:pull,push,delete', undefined, as('mallory'));
  t.same(claimsOf(r.json.token).access, [{ type: 'repository', name: 'team-a/secret', actions: ['pull'] }], 'mallory: pull only');
  r = await http(reg.url, 'GET', '/token?service=registry&scope=repository:public/x:pull');
  t.equal(r.status, 200, 'anonymous tokens');
});

t.test('v1 tokens live auth.token.v1Expiry, Bearer tokens auth.token.expiry', async (t) => {
  const reg = await startTenantRegistry(t, { auth: { token: { expiry: 30, v1Expiry: 45 } } as never });
  const { token } = await pushV1(reg.url, 'team-a/app', 'latest', imageChain(1), as('alice'));
  const v1 = claimsOf(v1Jwt(token!));
  t.equal(v1.exp - v1.iat, 45, 'v1 token: v1Expiry, not max(expiry, 3600)');
  const r = await http(reg.url, 'GET', '/token?service=registry&scope=repository:team-a/app:pull', undefined, as('alice'));
  const bearer = claimsOf(r.json.token);
  t.equal(bearer.exp - bearer.iat, 30);
  t.equal(r.json.expires_in, 30);
});

t.test('tokens of a removed user stop working within the htpasswd poll', async (t) => {
  const reg = await startTenantRegistry(t);
  const jwt = (await http(reg.url, 'GET', '/token?service=registry&scope=repository:team-a/app:pull,push', undefined, as('alice'))).json.token;
  const chain = imageChain(1);
  const { token: write } = await pushV1(reg.url, 'team-a/app', 'latest', chain, as('alice'));
  const bearerPush = async () => (await http(reg.url, 'POST', '/v2/team-a/app/blobs/uploads/', undefined, { authorization: `Bearer ${jwt}` })).status;
  const v1Push = async () => (await http(reg.url, 'PUT', '/v1/repositories/team-a/app/tags/t2', JSON.stringify(chain[0]!.id), { authorization: `Token ${write}` })).status;
  t.equal(await bearerPush(), 202, 'the Bearer token pushes');
  t.equal(await v1Push(), 200, 'the v1 token pushes');
  const anon = (await http(reg.url, 'GET', '/token?service=registry&scope=repository:public/x:pull')).json.token;

  writeFileSync(reg.htpasswd, readFileSync(reg.htpasswd, 'utf8').split('\n').filter((l) => !l.startsWith('alice:')).join('\n'));
  t.equal(await eventually(bearerPush, 401), 401, 'Bearer token of the removed user: 401');
  t.equal(await eventually(v1Push, 401), 401, 'v1 token of the removed user: 401');
  const r = await http(reg.url, 'GET', '/token?service=registry&scope=repository:team-a/app:pull', undefined, { authorization: `Token ${write}` });
  t.equal(r.status, 401, 'and buys nothing at /token');
  t.equal((await http(reg.url, 'GET', '/v2/public/x/tags/list', undefined, { authorization: `Bearer ${anon}` })).status, 404, 'anonymous tokens are unaffected');
});

t.test('tokens issued before a password change stop working; new ones work', async (t) => {
  const reg = await startTenantRegistry(t);
  const tokenFor = async (password: string) =>
    (
      await http(reg.url, 'GET', '/token?service=registry&scope=repository:team-b/app:pull,push', undefined, {
        authorization: 'Basic ' + Buffer.from(`bob:${password}`).toString('base64'),
      })
    ).json?.token as string | undefined;
  const old = (await tokenFor('bob-pw'))!;
  const push = async (jwt: string) => (await http(reg.url, 'POST', '/v2/team-b/app/blobs/uploads/', undefined, { authorization: `Bearer ${jwt}` })).status;
  t.equal(await push(old), 202);
  const { token: v1 } = await pushV1(reg.url, 'team-b/app', 'latest', imageChain(1), as('bob'));
  const v1Pull = async () => (await http(reg.url, 'GET', '/v1/repositories/team-b/app/tags', undefined, { authorization: `Token ${v1}` })).status;
  t.equal(await v1Pull(), 200);

  const lines = readFileSync(reg.htpasswd, 'utf8').split('\n');
  writeFileSync(reg.htpasswd, lines.map((l) => (l.startsWith('bob:') ? `bob:${bcrypt.hashSync('new-pw', 4)}` : l)).join('\n'));
  t.equal(await eventually(() => push(old), 401), 401, 'the old Bearer token is refused');
  t.equal(await eventually(v1Pull, 401), 401, 'the old v1 token is refused');
  const fresh = await tokenFor('new-pw');
  t.ok(fresh, 'the new password gets a token');
  t.equal(await push(fresh!), 202, 'which works');
  t.equal(await tokenFor('bob-pw'), undefined, 'the old password gets none');
});
