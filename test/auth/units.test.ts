import { execFileSync } from 'node:child_process';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { AccessPolicy } from '../../src/auth/access';
import { apr1, dummyEntry, Htpasswd, parseHtpasswd } from '../../src/auth/htpasswd';
import { FailedLoginLimiter } from '../../src/auth/limiter';
import { parseRules } from '../../src/auth/rules';
import { grantsAllow, signJwt, signV1Token, verifyJwt, verifyV1Token } from '../../src/auth/tokens';
import { parseConfig } from '../../src/config/load';
import { tempDir } from '../helpers/server';
import { requireTools } from '../helpers/tools';

t.test('htpasswd formats, as Apache htpasswd writes them', async (t) => {
  if (!requireTools(t, ['htpasswd'])) return;
  const dir = tempDir(t);
  const file = path.join(dir, 'htpasswd');
  execFileSync('htpasswd', ['-Bbc', file, 'bcrypt', 'b-pass']);
  execFileSync('htpasswd', ['-mb', file, 'md5', 'm-pass']);
  execFileSync('htpasswd', ['-sb', file, 'sha', 's-pass']);
  execFileSync('htpasswd', ['-pb', file, 'plain', 'p-pass']);
  const warnings: object[] = [];
  const log = { warn: (o: object) => warnings.push(o), info: () => undefined };
  const h = new Htpasswd(file, log);
  t.teardown(() => h.close());
  t.match(readFileSync(file, 'utf8'), /^bcrypt:\$2y\$/m, 'htpasswd -B writes $2y$');
  t.ok(await h.verify('bcrypt', 'b-pass'), 'bcrypt $2y$');
  t.notOk(await h.verify('bcrypt', 'wrong'));
  t.ok(await h.verify('bcrypt', 'b-pass'), 'cached success still succeeds');
  t.ok(await h.verify('md5', 'm-pass'), 'apr1');
  t.notOk(await h.verify('md5', 'x'));
  t.ok(await h.verify('sha', 's-pass'), '{SHA}');
  t.notOk(await h.verify('sha', 'x'));
  t.notOk(await h.verify('plain', 'p-pass'), 'plaintext refused');
  t.notOk(await h.verify('nobody', 'x'));
  t.ok(warnings.some((w) => (w as { scheme?: string }).scheme === 'apr1'), 'legacy hashes warned about');
  t.ok(warnings.some((w) => (w as { user?: string }).user === 'plain'), 'plaintext entry warned about');

  // $2a$ and $2b$ prefixes too.
  const b = readFileSync(file, 'utf8').split('\n')[0]!.split(':')[1]!;
  const m = parseHtpasswd(`x:${b.replace('$2y$', '$2a$')}\ny:${b.replace('$2y$', '$2b$')}\n`);
  t.equal(m.get('x')?.scheme, 'bcrypt');
  t.equal(m.get('y')?.scheme, 'bcrypt');

  // Reload on change, without a restart.
  t.notOk(await h.verify('late', 'l-pass'));
  await new Promise((r) => setTimeout(r, 20));
  execFileSync('htpasswd', ['-Bb', file, 'late', 'l-pass']);
  t.ok(await h.verify('late', 'l-pass'), 'a user added to the file works at once');
  execFileSync('htpasswd', ['-D', file, 'bcrypt']);
  t.notOk(await h.verify('bcrypt', 'b-pass'), 'a removed user is refused even with a cached success');
});

t.test('a name the file lacks is checked like the entries most names have', async (t) => {
  const fake = (prefix: string) => `${prefix}${'./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'.slice(0, 53)}`;
  const kind = (text: string) => {
    const d = dummyEntry(parseHtpasswd(text).values());
    // The dummy has the format of a real entry, so it is checked as one.
    t.equal(parseHtpasswd(`u:${d.hash}`).get('u')?.scheme, d.scheme, `${d.hash} parses as ${d.scheme}`);
    return d.scheme === 'bcrypt' ? `bcrypt ${d.hash.slice(4, 6)}` : d.scheme;
  };
  t.equal(kind(`a:${fake('$2y$10$')}\nb:${fake('$2y$10$')}\nc:${fake('$2y$05$')}\n`), 'bcrypt 10', 'the cost most entries use');
  t.equal(kind(`a:${fake('$2y$05$')}\nb:${fake('$2b$12$')}\n`), 'bcrypt 12', 'among equals, the costlier');
  t.equal(kind(`a:$apr1$saltsalt$${'x'.repeat(22)}\nb:$apr1$saltsalt$${'y'.repeat(22)}\nc:${fake('$2y$10$')}\n`), 'apr1', 'a legacy scheme most entries use');
  t.equal(kind(`a:{SHA}${'A'.repeat(27)}=\n`), 'sha');
  t.equal(kind(''), 'bcrypt 04', 'no entries: the cheapest, as every name is unknown');
  const d = dummyEntry(parseHtpasswd(`a:${fake('$2y$04$')}\n`).values());
  t.not(d.hash, dummyEntry(parseHtpasswd(`a:${fake('$2y$04$')}\n`).values()).hash, 'random each time');

  // verify() checks an unknown name against that dummy, on the bcrypt worker, and refuses it.
  const file = path.join(tempDir(t), 'htpasswd');
  writeFileSync(file, `a:${fake('$2y$10$')}\nb:${fake('$2y$10$')}\nc:${fake('$2y$04$')}\n`);
  const h = new Htpasswd(file);
  t.teardown(() => h.close());
  const worker = (h as unknown as { bcrypt: { compare(p: string, hash: string): Promise<boolean> } }).bcrypt;
  const compare = worker.compare.bind(worker);
  const costs: string[] = [];
  worker.compare = (p, hash) => (costs.push(hash.slice(4, 6)), compare(p, hash));
  t.notOk(await h.verify('nobody', 'x'));
  t.notOk(await h.verify('a', 'x'));
  t.same(costs, ['10', '10'], 'an unknown name costs what a known one does');
});

t.test('apr1 matches a known vector', async (t) => {
  // openssl passwd -apr1 -salt saltsalt password
  t.equal(apr1('password', 'saltsalt'), execFileSync('openssl', ['passwd', '-apr1', '-salt', 'saltsalt', 'password']).toString().trim());
});

t.test('access policy', async (t) => {
  const rules = parseRules(
    [
      { repository: 'team-a/**', who: ['@team-a'], actions: ['pull', 'push'] },
      { repository: 'team-a/**', who: ['carol'], actions: ['delete'] },
      { repository: '$user/**', who: ['$authenticated'], actions: ['pull', 'push', 'delete'] },
      { repository: 'public/*', who: ['$anonymous', '$authenticated'], actions: ['pull'] },
    ],
    'auth.rules',
  );
  const p = new AccessPolicy(true, rules, { 'team-a': ['alice', 'carol'] });
  t.same([...p.actions('alice', 'team-a/x')].sort(), ['pull', 'push']);
  t.same([...p.actions('alice', 'team-a/x/y')].sort(), ['pull', 'push'], '** spans components');
  t.same([...p.actions('carol', 'team-a/x')].sort(), ['delete', 'pull', 'push'], 'rules add up');
  t.same([...p.actions('bob', 'team-a/x')], [], 'not in the group');
  t.same([...p.actions('alice', 'team-b/x')], []);
  t.same([...p.actions('bob', 'bob/tools')].sort(), ['delete', 'pull', 'push'], '$user namespace');
  t.same([...p.actions('bob', 'alice/tools')], []);
  t.same([...p.actions(null, 'public/img')], ['pull'], 'anonymous');
  t.same([...p.actions(null, 'public/a/b')], [], '* stays in one component');
  t.same([...p.actions(null, 'team-a/x')], []);

  const noRules = new AccessPolicy(true, [], {});
  t.same([...noRules.actions('anyone', 'x/y')].sort(), ['delete', 'pull', 'push'], 'no rules: authenticated may do everything');
  t.same([...noRules.actions(null, 'x/y')], [], 'no rules: anonymous nothing');
  const open = new AccessPolicy(false, rules, {});
  t.ok(open.can(null, 'team-a/x', 'delete'), 'no htpasswd: open registry');

  // Glob characters are literal except * and **.
  const dots = new AccessPolicy(true, parseRules([{ repository: 'a.b/*', who: ['$anonymous'], actions: ['pull'] }], 'r'), {});
  t.ok(dots.can(null, 'a.b/c', 'pull'));
  t.notOk(dots.can(null, 'aXb/c', 'pull'));
});

t.test('rules and groups are validated with the key named', async (t) => {
  const bad: [string, RegExp][] = [
    ['auth:\n  rules: {}\n', /auth\.rules: expected a list of rules/],
    ['auth:\n  rules:\n    - repository: x\n      who: [a]\n      actions: [fly]\n', /auth\.rules\[0\]\.actions: expected a list of pull, push, delete/],
    ['auth:\n  rules:\n    - repository: x\n      who: []\n      actions: [pull]\n', /auth\.rules\[0\]\.who/],
    ['auth:\n  rules:\n    - repository: x\n      who: [$everyone]\n      actions: [pull]\n', /unknown keyword \$everyone/],
    ['auth:\n  rules:\n    - repo: x\n', /unknown configuration key "auth\.rules\[0\]\.repo"/],
    ['auth:\n  groups:\n    a: b\n', /auth\.groups\.a: expected a list of user names/],
  ];
  for (const [yaml, re] of bad) t.throws(() => parseConfig(yaml, {}), re, re.source);
  const env = parseConfig('', { REGISTRY_AUTH_RULES: '[{repository: "x/**", who: [$anonymous], actions: [pull]}]' });
  t.same(env.auth.rules, [{ repository: 'x/**', who: ['$anonymous'], actions: ['pull'] }], 'rules from the environment (YAML/JSON)');
});

t.test('tokens', async (t) => {
  const key = Buffer.alloc(32, 7);
  const keys = { service: 's', key };
  const now = Math.floor(Date.now() / 1000);
  const claims = { iss: 's', sub: 'alice', aud: 's', exp: now + 60, nbf: now, iat: now, jti: 'x', access: [{ type: 'repository' as const, name: 'a/b', actions: ['pull'] }] };
  const jwt = await signJwt(claims, key);
  t.same(await verifyJwt(jwt, keys), { claims, expired: false, external: false });
  t.equal(await verifyJwt(jwt, { ...keys, key: Buffer.alloc(32, 8) }), undefined, 'another key');
  t.equal(await verifyJwt(jwt, { ...keys, service: 'other' }), undefined, 'another audience');
  const [h, , s] = jwt.split('.');
  const forged = Buffer.from(JSON.stringify({ ...claims, access: [{ type: 'repository', name: 'a/b', actions: ['push'] }] })).toString('base64url');
  t.equal(await verifyJwt(`${h}.${forged}.${s}`, keys), undefined, 'tampered claims');
  t.equal(await verifyJwt('a.b', keys), undefined);
  const none = Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url');
  t.equal(await verifyJwt(`${none}.${jwt.split('.')[1]}.`, keys), undefined, 'alg none refused');
  const old = await verifyJwt(await signJwt({ ...claims, exp: now - 5 }, key), keys);
  t.same([old?.expired, old?.claims.sub], [true, 'alice'], 'an expired token is authentic, and marked expired');
  t.ok(grantsAllow(claims.access, 'a/b', 'pull'));
  t.notOk(grantsAllow(claims.access, 'a/b', 'push'));
  t.notOk(grantsAllow(claims.access, 'a/c', 'pull'));

  const v1 = await signV1Token({ user: 'alice', repo: 'ns/r', access: 'write', exp: now + 60 }, key, 's');
  t.match(v1, /^signature=[\w-]+\.[\w-]+\.[\w-]+,repository="ns\/r",access=write$/);
  t.same(await verifyV1Token(`Token ${v1}`, key, 's'), { user: 'alice', repo: 'ns/r', access: 'write', exp: now + 60 });
  t.same((await verifyV1Token(`Token Token ${v1}`, key, 's'))?.repo, 'ns/r', 'Docker may repeat the word Token');
  t.equal(await verifyV1Token(`Token ${v1.replace(/signature=(\w)/, 'signature=X')}`, key, 's'), undefined);
  t.equal(await verifyJwt(/signature=([^,]+)/.exec(v1)![1]!, keys), undefined, 'a v1 token is no Bearer token');
  t.equal(await verifyV1Token(`Token signature=${jwt}`, key, 's'), undefined, 'nor a Bearer token a v1 token');
  const expiredV1 = await signV1Token({ user: 'alice', repo: 'ns/r', access: 'write', exp: now - 5 }, key, 's');
  t.equal(await verifyV1Token(`Token ${expiredV1}`, key, 's'), undefined, 'expired v1 token');
});

t.test('failed login limiter', async (t) => {
  const l = new FailedLoginLimiter(3, 1000);
  for (let i = 0; i < 3; i++) {
    t.notOk(l.blocked('ip', 'alice', 0));
    l.fail('ip', 'alice', 0);
  }
  t.ok(l.blocked('ip', 'alice', 10), 'blocked after the limit');
  t.notOk(l.blocked('ip2', 'alice', 10), 'another client is not');
  t.notOk(l.blocked('ip', 'bob', 10), 'another user is not');
  t.notOk(l.blocked('ip', 'alice', 1001), 'the window passes');
});

t.test('token key is created once, private', async (t) => {
  const { loadTokenKey } = await import('../../src/auth/tokens');
  const dir = tempDir(t);
  const file = path.join(dir, 'sub/token.key');
  const a = loadTokenKey(file);
  const b = loadTokenKey(file);
  t.ok(a.equals(b));
  const { statSync } = await import('node:fs');
  t.equal(statSync(file).mode & 0o777, 0o600);
  writeFileSync(file, 'c2hvcnQ=\n');
  t.throws(() => loadTokenKey(file), /too short/);
  appendFileSync(file, '');
});
