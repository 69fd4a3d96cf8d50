import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { Htpasswd } from '../../src/auth/htpasswd';
import { ROOT } from '../helpers/process';
import { tempDir } from '../helpers/server';
import { STACK } from './fake-io';

// `npm run registry -- user add|remove|list` through the built entry: the same commands, messages and
// statuses as `npm run user` (test/auth/cli.test.ts); and both create the htpasswd file's directory.

const REGISTRY = path.join(ROOT, 'dist/cli/registry.js');
const USER = path.join(ROOT, 'dist/cli/user.js');
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REGISTRY_')));
const spawn = (cli: string, args: string[], input = '', extra: NodeJS.ProcessEnv = {}) =>
  spawnSync(process.execPath, [cli, ...args], { input, encoding: 'utf8', cwd: ROOT, env: { ...env, ...extra } });
const registry = (args: string[], input = '', extra: NodeJS.ProcessEnv = {}) => spawn(REGISTRY, ['user', ...args], input, extra);

t.before(() => {
  if (!existsSync(REGISTRY)) throw new Error('dist/cli/registry.js not built: run npm run build (npm test builds it)');
});

t.test('registry user add, update, list, remove', async (t) => {
  const file = path.join(tempDir(t), 'htpasswd');
  let r = registry(['add', 'alice', '--file', file], 'first-pw\n');
  t.same([r.status, r.stdout, r.stderr], [0, `added alice in ${file}\n`, '']);
  t.match(readFileSync(file, 'utf8'), /^alice:\$2y\$10\$/);
  t.equal(statSync(file).mode & 0o777, 0o600, 'only the owner reads the hashes');
  t.equal(registry(['add', 'bob', '--file', file], 'bob-pw\n').status, 0);
  r = registry(['add', 'alice', '--file', file], 'second-pw\n');
  t.equal(r.stdout, `updated alice in ${file}\n`);
  const h = new Htpasswd(file);
  t.teardown(() => h.close());
  t.ok(await h.verify('alice', 'second-pw'));
  t.notOk(await h.verify('alice', 'first-pw'));
  t.ok(await h.verify('bob', 'bob-pw'));
  t.equal(registry(['list', '--file', file]).stdout, 'bob\nalice\n');
  r = registry(['remove', 'bob', '--file', file]);
  t.same([r.status, r.stdout], [0, `removed bob from ${file}\n`]);
  t.equal(registry(['list', '--file', file]).stdout, 'alice\n');
  r = registry(['remove', 'bob', '--file', file]);
  t.same([r.status, r.stderr], [1, `no user bob in ${file}\n`], 'removing a missing user fails');
});

t.test('registry user: refusals, with the messages and statuses of npm run user', async (t) => {
  const file = path.join(tempDir(t), 'htpasswd');
  for (const [args, input] of [
    [['add', 'x:y', '--file', file], 'p\n'],
    [['add', 'Alice', '--file', file], 'p\n'],
    [['add', 'carol', '--file', file], '\n'],
    [['add', '--file', file], 'p\n'],
    [['remove', '--file', file], ''],
  ] as [string[], string][]) {
    const a = registry(args, input);
    const b = spawn(USER, args, input);
    t.equal(a.status, 2, args.join(' '));
    t.equal(a.status, b.status, `${args.join(' ')}: same status as npm run user`);
    t.notMatch(a.stderr, STACK);
  }
  t.match(registry(['add', 'x:y', '--file', file], 'p\n').stderr, /^invalid user name "x:y": /);
  t.equal(registry(['add', 'carol', '--file', file], '\n').stderr, 'empty password refused\n');
  t.notOk(existsSync(file), 'nothing written');

  let r = registry(['frobnicate']);
  t.same([r.status, r.stderr], [2, 'usage: npm run registry -- user add <name> | user remove <name> | user list [--file <htpasswd>]\n']);
  r = registry([]);
  t.equal(r.status, 2);
  t.match(r.stderr, /^usage: npm run registry -- user /);
  r = spawn(USER, ['frobnicate']);
  t.same([r.status, r.stderr], [2, 'usage: npm run user -- add <name> | remove <name> | list [--file <htpasswd>]\n'], 'npm run user keeps its own usage');
});

t.test('the file comes from the configuration as for the server', async (t) => {
  const dir = tempDir(t);
  const config = path.join(dir, 'config.yml');
  writeFileSync(config, '');
  let r = registry(['list'], '', { REGISTRY_CONFIG: config });
  t.same([r.status, r.stderr], [2, 'no htpasswd file: set auth.htpasswd.path in config.yml or pass --file\n']);
  const file = path.join(dir, 'from-env');
  r = registry(['add', 'dave'], 'pw\n', { REGISTRY_CONFIG: config, REGISTRY_AUTH_HTPASSWD_PATH: file });
  t.same([r.status, r.stdout], [0, `added dave in ${file}\n`]);
  r = registry(['list'], '', { REGISTRY_CONFIG: path.join(dir, 'missing.yml') });
  t.equal(r.status, 1);
  t.match(r.stderr, /^registry user: cannot read config file .*missing\.yml/, 'a configuration error: one line, status 1');
  t.notMatch(r.stderr, STACK);
});

t.test('user add creates the htpasswd file\'s directory (registry user and npm run user)', async (t) => {
  for (const [name, run] of [
    ['registry user', (args: string[], input: string) => registry(args, input)],
    ['npm run user', (args: string[], input: string) => spawn(USER, args, input)],
  ] as const) {
    const dir = path.join(tempDir(t), 'auth', 'nested');
    const file = path.join(dir, 'htpasswd');
    const r = run(['add', 'erin', '--file', file], 'pw\n');
    t.same([r.status, r.stderr], [0, ''], name);
    t.match(readFileSync(file, 'utf8'), /^erin:\$2y\$10\$/, `${name}: file written`);
    t.equal(statSync(dir).mode & 0o777, 0o700, `${name}: a directory it creates is the owner's only`);
  }
});
