import t from 'tap';
import { http } from '../helpers/http';
import { as, startTenantRegistry } from '../helpers/tenants';
import { ownToken } from '../helpers/tokens';
import { sha256 } from '../helpers/v2';

// Issue 22 item 6 (first part): an expired Bearer token may finish only an upload started while it
// was valid, and only for auth.token.uploadGrace; an upload URL carries no authority of its own.

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const push = [{ type: 'repository' as const, name: 'team-a/app', actions: ['pull', 'push'] }];

t.test('an expired token continues its own upload, not one started after it expired', async (t) => {
  const reg = await startTenantRegistry(t);
  const key = reg.config.auth.token.secretFile;
  const exp = Math.floor(Date.now() / 1000) + 2;
  const token = { authorization: `Bearer ${await ownToken(key, reg.htpasswd, 'alice', push, exp)}` };

  let r = await http(reg.url, 'POST', '/v2/team-a/app/blobs/uploads/', undefined, token);
  t.equal(r.status, 202, 'upload started with the valid token');
  const mine = r.headers.get('location')!;
  while (Date.now() <= exp * 1000) await sleep(100);

  r = await http(reg.url, 'POST', '/v2/team-a/app/blobs/uploads/', undefined, as('alice'));
  t.equal(r.status, 202, 'another upload, started after the token expired');
  const later = r.headers.get('location')!;
  const data = Buffer.from('late bytes');
  r = await http(reg.url, 'PATCH', later, data, token);
  t.equal(r.status, 401, 'PATCH of a later upload with the expired token: 401');
  t.match(r.headers.get('www-authenticate'), /^Bearer /);
  r = await http(reg.url, 'PUT', `${later}?digest=${sha256(data)}`, data, token);
  t.equal(r.status, 401, 'PUT of a later upload with the expired token: 401');
  r = await http(reg.url, 'GET', later, undefined, token);
  t.equal(r.status, 401, 'GET of a later upload with the expired token: 401');

  r = await http(reg.url, 'PATCH', mine, data, token);
  t.equal(r.status, 202, 'its own upload continues after expiry');
  r = await http(reg.url, 'PUT', `${mine}?digest=${sha256(data)}`, undefined, token);
  t.equal(r.status, 201, 'and completes');
  r = await http(reg.url, 'POST', '/v2/team-a/app/blobs/uploads/', undefined, token);
  t.equal(r.status, 401, 'but starts none');
  r = await http(reg.url, 'PATCH', `/v2/team-a/app/blobs/uploads/00000000-0000-4000-8000-000000000000`, data, token);
  t.equal(r.status, 401, 'an unknown upload id gives an expired token nothing');
});

t.test('the grace after expiry is auth.token.uploadGrace', async (t) => {
  const reg = await startTenantRegistry(t, { auth: { token: { uploadGrace: 1 } } as never });
  const exp = Math.floor(Date.now() / 1000) + 2;
  const token = { authorization: `Bearer ${await ownToken(reg.config.auth.token.secretFile, reg.htpasswd, 'alice', push, exp)}` };
  let r = await http(reg.url, 'POST', '/v2/team-a/app/blobs/uploads/', undefined, token);
  const up = r.headers.get('location')!;
  while (Date.now() <= exp * 1000) await sleep(100);
  r = await http(reg.url, 'PATCH', up, Buffer.from('a'), token);
  t.equal(r.status, 202, 'within the grace');
  await sleep(1100);
  r = await http(reg.url, 'PATCH', up, Buffer.from('b'), token);
  t.equal(r.status, 401, 'past the grace: 401');
  r = await http(reg.url, 'PATCH', up, Buffer.from('b'), as('alice'));
  t.equal(r.status, 202, 'the upload itself goes on with valid credentials');
});
