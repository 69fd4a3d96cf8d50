import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { AccessPolicy } from '../../src/auth/access';
import { parseRules } from '../../src/auth/rules';
import { parseConfig } from '../../src/config/load';
import { authConfig, basic } from '../helpers/auth';
import { http } from '../helpers/http';
import { ROOT } from '../helpers/process';
import { startRegistry, tempDir } from '../helpers/server';
import { startTenantRegistry, TENANT_GROUPS, TENANT_RULES, TENANT_USERS } from '../helpers/tenants';
import { buildImage } from '../helpers/v2';

// Issue 22, item 6: `$user` is literal in rule globs, and names of Object's machinery
// (constructor, toString, __proto__) never reach a prototype lookup.

const errCode = (r: { json: any }) => r.json?.errors?.[0]?.code;
const tenantPolicy = () => new AccessPolicy(true, parseRules(TENANT_RULES, 'auth.rules'), TENANT_GROUPS);

t.test('$user is taken literally: ali*ce and ** get nothing of alice', async (t) => {
  const p = tenantPolicy();
  t.ok(p.can('alice', 'alice/app', 'push'), 'alice owns alice/**');
  for (const user of ['ali*ce', '**', 'a*', '*', 'al?ce', 'ali.ce']) {
    for (const repo of ['alice/app', 'alce/app', 'a/b', 'team-a/app']) {
      t.same([...p.actions(user, repo)], [], `${user} on ${repo}`);
    }
    t.notOk(p.reach(user, 'pull').some((x) => 'prefix' in x && x.prefix === ''), `${user} reaches no wildcard`);
  }
  t.ok(p.can('ali.ce', 'ali.ce/app', 'push'), 'a dot in a valid name is literal, and the name still owns its namespace');
  t.notOk(p.can('ali.ce', 'alixce/app', 'push'));
  t.same([...p.actions('Alice', 'Alice/app')], [], 'a name that is no repository path component matches no $user glob');
});

t.test('HTTP: a user named ali*ce or ** cannot push to or list alice/**', async (t) => {
  const users = { ...TENANT_USERS, 'ali*ce': 'x-pw', '**': 'y-pw' };
  const { overrides } = authConfig(t, users, { rules: TENANT_RULES as never, groups: TENANT_GROUPS });
  const reg = await startRegistry(t, overrides);
  const img = buildImage({ layers: 1 });
  const alice = { authorization: basic('alice', users.alice) };
  let r = await http(reg.url, 'POST', `/v2/alice/app/blobs/uploads/?digest=${img.config.digest}`, img.config.data, alice);
  t.equal(r.status, 201, 'alice pushes into alice/app');
  for (const user of ['ali*ce', '**'] as const) {
    const h = { authorization: basic(user, users[user]) };
    r = await http(reg.url, 'POST', '/v2/alice/app/blobs/uploads/', undefined, h);
    t.same([r.status, errCode(r)], [403, 'DENIED'], `${user} cannot push to alice/app`);
    r = await http(reg.url, 'GET', `/v2/alice/app/blobs/${img.config.digest}`, undefined, h);
    t.same([r.status, errCode(r)], [403, 'DENIED'], `${user} cannot pull from alice/app`);
    r = await http(reg.url, 'GET', '/v2/_catalog', undefined, h);
    t.same([r.status, r.json.repositories], [200, []], `${user} lists nothing`);
  }
});

t.test('npm run user refuses names that cannot stand for $user', async (t) => {
  const cli = path.join(ROOT, 'dist/cli/user.js');
  if (!existsSync(cli)) {
    t.fail('dist/cli/user.js not built: run npm run build (npm test builds it)');
    return;
  }
  const file = path.join(tempDir(t), 'htpasswd');
  const run = (args: string[], input = 'pw\n') => spawnSync(process.execPath, [cli, ...args], { input, encoding: 'utf8', cwd: ROOT });
  for (const name of ['ali*ce', '**', 'a/b', 'a:b', 'a b', 'Alice', 'al?ce', '[x]', '-x', 'constructor', '__proto__', 'toString']) {
    const r = run(['add', name, '--file', file]);
    t.equal(r.status, 2, `${name} refused`);
    t.match(r.stderr, /^invalid user name ".*": /, `${name}: a clear message`);
    t.notMatch(r.stderr, /\n\s+at /, `${name}: no stack trace`);
  }
  t.equal(existsSync(file) ? readFileSync(file, 'utf8') : '', '', 'nothing written');
  for (const name of ['alice', 'ali.ce', 'a_b', 'a-b', 'a__b', 'x9']) t.equal(run(['add', name, '--file', file]).status, 0, `${name} accepted`);
});

t.test('reserved names in rules and groups stop the start, naming the key', async (t) => {
  const bad: [string, RegExp][] = [
    ['auth:\n  rules:\n    - repository: x/**\n      who: [toString]\n      actions: [pull]\n', /auth\.rules\[0\]\.who: "toString" cannot be a user or group name/],
    ['auth:\n  rules:\n    - repository: x/**\n      who: [alice, "@constructor"]\n      actions: [pull]\n', /auth\.rules\[0\]\.who: "constructor"/],
    ['auth:\n  rules:\n    - repository: x/**\n      who: [__proto__]\n      actions: [pull]\n', /auth\.rules\[0\]\.who: "__proto__"/],
    ['auth:\n  groups:\n    __proto__: [bob]\n', /auth\.groups\.__proto__: "__proto__" cannot be a user or group name/],
    ['auth:\n  groups:\n    prototype: [bob]\n', /auth\.groups\.prototype: "prototype"/],
    ['auth:\n  groups:\n    devs: [bob, hasOwnProperty]\n', /auth\.groups\.devs: "hasOwnProperty"/],
  ];
  for (const [yaml, re] of bad) t.throws(() => parseConfig(yaml, {}), re, re.source);
  t.throws(() => parseConfig('', { REGISTRY_AUTH_GROUPS: '{"__proto__": ["bob"]}' }), /REGISTRY_AUTH_GROUPS \(auth\.groups\)\.__proto__: "__proto__" cannot be a user or group name/, 'from the environment too');
  await t.rejects(
    startTenantRegistry(t, { auth: { rules: [...TENANT_RULES, { repository: 'x/**', who: ['toString'], actions: ['pull'] }] as never } }),
    /auth\.rules\[5\]\.who: "toString" cannot be a user or group name/,
    'the registry does not start',
  );
});

t.test('no prototype lookups: rules naming constructor, toString, __proto__ break no one', async (t) => {
  // Built past config validation, as a future config path might: the policy itself must hold.
  const rules = parseRules(
    [
      ...TENANT_RULES,
      { repository: 'x/**', who: ['alice'], actions: ['pull'] },
    ],
    'auth.rules',
  );
  for (const who of ['toString', 'constructor', '__proto__', '@valueOf', 'hasOwnProperty']) {
    const p = new AccessPolicy(true, [...rules, { repository: 'y/**', who: [who], actions: ['pull', 'push'] }], TENANT_GROUPS);
    t.ok(p.can('alice', 'team-a/app', 'push'), `${who}: alice unaffected`);
    t.notOk(p.can('bob', 'team-a/app', 'pull'), `${who}: bob still denied`);
    t.notOk(p.can('bob', 'y/app', 'pull'), `${who}: the group lookup finds nothing`);
    if (who !== 'constructor') t.notOk(p.can('constructor', 'y/app', 'pull'), `${who}: a user named constructor gets nothing from it`);
  }
  // A user literally named constructor (the htpasswd file may hold any name) gets only its own namespace.
  const p = tenantPolicy();
  t.same([...p.actions('constructor', 'team-a/app')], []);
  t.same([...p.actions('__proto__', 'team-b/app')], []);
  t.same([...p.actions('constructor', 'constructor/app')].sort(), ['delete', 'pull', 'push']);
});

t.test('HTTP: users named constructor and __proto__ get nothing through a prototype lookup', async (t) => {
  // An object literal with a __proto__ key sets the prototype: spell the entries out.
  const htUsers = Object.fromEntries(Object.entries({ ...TENANT_USERS, constructor: 'c-pw', toString: 't-pw' }).concat([['__proto__', 'p-pw']]));
  const { overrides } = authConfig(t, htUsers, { rules: TENANT_RULES as never, groups: TENANT_GROUPS });
  const reg = await startRegistry(t, overrides);
  for (const [user, pw] of [['constructor', 'c-pw'], ['__proto__', 'p-pw'], ['toString', 't-pw']]) {
    const h = { authorization: basic(user!, pw!) };
    let r = await http(reg.url, 'GET', '/v2/', undefined, h);
    t.equal(r.status, 200, `${user} logs in`);
    r = await http(reg.url, 'POST', '/v2/team-a/app/blobs/uploads/', undefined, h);
    t.same([r.status, errCode(r)], [403, 'DENIED'], `${user} cannot push to team-a`);
    r = await http(reg.url, 'POST', '/v2/team-b/app/blobs/uploads/', undefined, h);
    t.same([r.status, errCode(r)], [403, 'DENIED'], `${user} cannot push to team-b`);
    r = await http(reg.url, 'GET', '/v2/_catalog', undefined, h);
    t.equal(r.status, 200);
    r = await http(reg.url, 'GET', '/v1/search?q=', undefined, h);
    t.equal(r.status, 200);
  }
  const r = await http(reg.url, 'POST', '/v2/team-a/app/blobs/uploads/', undefined, { authorization: basic('alice', TENANT_USERS.alice) });
  t.equal(r.status, 202, 'alice unaffected');
});
