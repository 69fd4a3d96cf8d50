import t from 'tap';
import { ConfigError, parseConfig } from '../../src/config/load';
import { basic } from '../helpers/auth';
import { http } from '../helpers/http';
import { as, startTenantRegistry, TENANT_USERS } from '../helpers/tenants';

// Issue 22, item 4: with trustProxy `true` the leftmost, client-written X-Forwarded-For address was the
// client, so rotating it gave unlimited password guesses and forging a victim's address locked the victim
// out. Trust is now a hop count or a list of proxies, and the address used is the one the proxy saw.
// Here the test client plays nginx (the trusted hop): it sends "<what the client wrote>, <real client>".

const errCode = (r: { json: any }) => r.json?.errors?.[0]?.code;
const fwd = (chain: string) => ({ 'x-forwarded-for': chain });

t.test('http.trustProxy: false, a hop count or proxies; true is refused with the way out', async (t) => {
  const trust = (env: string) => parseConfig('', { REGISTRY_HTTP_TRUST_PROXY: env }).http.trustProxy;
  t.equal(trust('false'), false);
  t.equal(trust('1'), 1);
  t.equal(trust('2'), 2);
  t.same(trust('127.0.0.1, 172.16.0.0/12,::1,fd00::/8,10.0.0.0/255.0.0.0,loopback'), [
    '127.0.0.1',
    '172.16.0.0/12',
    '::1',
    'fd00::/8',
    '10.0.0.0/255.0.0.0',
    'loopback',
  ]);
  t.same(parseConfig('http:\n  trustProxy: [127.0.0.1, 10.0.0.0/8]\n', {}).http.trustProxy, ['127.0.0.1', '10.0.0.0/8'], 'a YAML list');
  t.equal(parseConfig('http:\n  trustProxy: 1\n', {}).http.trustProxy, 1, 'a YAML number');
  for (const [bad, re] of [
    ['true', /true would trust every hop.*number of proxies.*CIDRs/],
    ['TRUE', /true would trust every hop/],
    ['0', /at least 1/],
    ['-1', /at least 1|not an IP/],
    ['10.0.0.0/33', /"10\.0\.0\.0\/33" is not an IP address, CIDR/],
    ['proxy.example.com', /"proxy\.example\.com" is not an IP address/],
    ['{a: 1}', /expected false, a hop count or a list/],
    ['[]', /an empty list trusts no proxy/],
  ] as const) {
    t.throws(() => trust(bad), re, `REGISTRY_HTTP_TRUST_PROXY=${bad}`);
    t.throws(() => trust(bad), ConfigError);
  }
  t.throws(() => parseConfig('http:\n  trustProxy: true\n', {}), /http\.trustProxy: true would trust every hop/, 'in the file too');
});

t.test('one trusted hop: rotating X-Forwarded-For does not dodge the limit, forging it locks nobody out', async (t) => {
  const reg = await startTenantRegistry(t, { http: { trustProxy: 1 }, auth: { failedLogins: { limit: 3, window: 60 } } });
  const login = (user: string, password: string, chain: string) =>
    http(reg.url, 'GET', '/v2/', undefined, { authorization: basic(user, password), ...fwd(chain) });

  // An attacker at 203.0.113.5 writes a new address into X-Forwarded-For on every guess; nginx appends the real one.
  const rotating = [];
  for (let i = 0; i < 6; i++) rotating.push(await login('alice', `guess-${i}`, `198.51.100.${i + 1}, 203.0.113.5`));
  t.same(
    rotating.map((r) => r.status),
    [401, 401, 401, 429, 429, 429],
    'limited after 3 guesses whatever the client wrote',
  );
  t.equal(errCode(rotating[3]!), 'TOOMANYREQUESTS');
  t.ok(Number(rotating[3]!.headers.get('retry-after')) >= 1, 'with Retry-After');
  t.equal((await login('alice', TENANT_USERS.alice, '203.0.113.5')).status, 429, 'the attacker stays limited for that name');

  // Another attacker names the victim 192.0.2.9 as its address while guessing bob's password.
  for (let i = 0; i < 5; i++) await login('bob', `guess-${i}`, `192.0.2.9, 203.0.113.6`);
  t.equal((await login('bob', TENANT_USERS.bob, '192.0.2.9')).status, 200, 'the victim logs in as bob from its own address');
  t.equal((await login('alice', TENANT_USERS.alice, '192.0.2.9')).status, 200, 'and alice logs in from there too');
  t.equal((await login('bob', TENANT_USERS.bob, '203.0.113.6')).status, 429, 'the attacker is the one limited');
});

t.test('trusted proxies by address: X-Forwarded-For from anywhere else is ignored', async (t) => {
  // The test client (127.0.0.1) is not the listed proxy: whatever it writes, its address is 127.0.0.1.
  const reg = await startTenantRegistry(t, { http: { trustProxy: ['192.0.2.1'] }, auth: { failedLogins: { limit: 2, window: 60 } } });
  const statuses = [];
  for (let i = 0; i < 4; i++) {
    statuses.push((await http(reg.url, 'GET', '/v2/', undefined, { authorization: basic('carol', `g${i}`), ...fwd(`10.9.9.${i}`) })).status);
  }
  t.same(statuses, [401, 401, 429, 429], 'a forged X-Forwarded-For from an untrusted peer changes nothing');

  const listed = await startTenantRegistry(t, { http: { trustProxy: ['127.0.0.1'] }, auth: { failedLogins: { limit: 2, window: 60 } } });
  for (let i = 0; i < 3; i++) await http(listed.url, 'GET', '/v2/', undefined, { authorization: basic('carol', `g${i}`), ...fwd(`10.9.9.1, 10.8.8.8`) });
  const other = await http(listed.url, 'GET', '/v2/', undefined, { ...as('carol'), ...fwd('10.8.8.9') });
  t.equal(other.status, 200, 'from the listed proxy, the address it appended is the client');
});

t.test('429 answers carry Retry-After in both protocols ({"error": ...} in v1)', async (t) => {
  const reg = await startTenantRegistry(t, { http: { trustProxy: 1 }, auth: { failedLogins: { limit: 1, window: 60 } } });
  const bad = { authorization: basic('mallory', 'wrong'), ...fwd('203.0.113.7') };
  t.equal((await http(reg.url, 'GET', '/v2/', undefined, bad)).status, 401);
  const v2 = await http(reg.url, 'GET', '/v2/', undefined, bad);
  t.same([v2.status, errCode(v2)], [429, 'TOOMANYREQUESTS']);
  const v2Retry = Number(v2.headers.get('retry-after'));
  t.ok(v2Retry >= 1 && v2Retry <= 60, `v2 Retry-After within the window (${v2Retry})`);
  const v1 = await http(reg.url, 'GET', '/v1/users/', undefined, bad);
  t.equal(v1.status, 429);
  t.match(v1.json, { error: /too many failed logins/ });
  t.notOk('errors' in (v1.json ?? {}), 'v1 body is {"error": ...}');
  t.ok(Number(v1.headers.get('retry-after')) >= 1, 'v1 Retry-After');
  const token = await http(reg.url, 'POST', '/token', new URLSearchParams({ grant_type: 'password', username: 'mallory', password: 'x' }).toString(), {
    'content-type': 'application/x-www-form-urlencoded',
    ...fwd('203.0.113.7'),
  });
  t.same([token.status, errCode(token)], [429, 'TOOMANYREQUESTS'], 'POST /token');
  t.ok(Number(token.headers.get('retry-after')) >= 1, 'POST /token Retry-After');
});
