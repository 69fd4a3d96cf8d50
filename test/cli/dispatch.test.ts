import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { dispatch, type Command } from '../../src/cli/dispatch';
import { ROOT } from '../helpers/process';
import { tempDir } from '../helpers/server';
import { fakeIo, STACK } from './fake-io';

// `registry <command>`: finding the command, help, usage and exit statuses; in-process with fake
// commands, then through the built entry (dist/cli/registry.js, built by npm test).

const calls: string[][] = [];
const commands: Record<string, Command> = {
  echo: {
    help: [['echo <words>', 'print them']],
    run: async (args, io) => {
      calls.push(args);
      io.stdout.write(args.join(' ') + '\n');
      return args[0] === 'fail' ? 1 : 0;
    },
  },
  boom: {
    help: [['boom', 'throw']],
    run: async () => {
      throw new Error('the index cannot be opened: SQLITE_CANTOPEN');
    },
  },
};

t.test('a known command gets its arguments, and its status is the exit status', async (t) => {
  let io = fakeIo();
  t.equal(await dispatch(['echo', 'a', 'b'], commands, io), 0);
  t.same(calls.at(-1), ['a', 'b']);
  t.equal(io.stdout.text(), 'a b\n');
  io = fakeIo();
  t.equal(await dispatch(['echo', 'fail'], commands, io), 1);
});

t.test('help, --help, -h: the usage on stdout, status 0', async (t) => {
  for (const flag of ['help', '--help', '-h']) {
    const io = fakeIo();
    t.equal(await dispatch([flag], commands, io), 0, flag);
    t.match(io.stdout.text(), /^usage: npm run registry -- <command>/, flag);
    t.match(io.stdout.text(), /\n {2}echo <words> +print them\n {2}boom +throw\n {2}help /, `${flag}: every command listed`);
    t.equal(io.stderr.text(), '');
  }
});

t.test('<command> --help: that command\'s usage, without running it', async (t) => {
  const n = calls.length;
  const io = fakeIo();
  t.equal(await dispatch(['echo', 'x', '--help'], commands, io), 0);
  t.equal(io.stdout.text(), 'usage:\n  npm run registry -- echo <words>\n      print them\n');
  t.equal(calls.length, n, 'not run');
});

t.test('no command, or an unknown one: the usage on stderr, status 2', async (t) => {
  let io = fakeIo();
  t.equal(await dispatch([], commands, io), 2);
  t.match(io.stderr.text(), /^usage: /);
  t.equal(io.stdout.text(), '');
  for (const name of ['frobnicate', 'constructor', '__proto__', 'toString', '--dry-run']) {
    io = fakeIo();
    t.equal(await dispatch([name], commands, io), 2, name);
    t.match(io.stderr.text(), new RegExp(`^registry: unknown command ${JSON.stringify(name)}\\n\\nusage: `), name);
  }
});

t.test('a command that throws: `registry <command>: <message>`, status 1, no stack trace', async (t) => {
  const io = fakeIo();
  t.equal(await dispatch(['boom'], commands, io), 1);
  t.equal(io.stderr.text(), 'registry boom: the index cannot be opened: SQLITE_CANTOPEN\n');
  t.notMatch(io.stderr.text(), STACK);
});

t.test('the built entry', async (t) => {
  const cli = path.join(ROOT, 'dist/cli/registry.js');
  if (!existsSync(cli)) {
    t.fail('dist/cli/registry.js not built: run npm run build (npm test builds it)');
    return;
  }
  // Only this test's configuration: no REGISTRY_* from the environment running the tests.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REGISTRY_')));
  const run = (args: string[], extra: NodeJS.ProcessEnv = {}) =>
    spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', cwd: ROOT, env: { ...env, ...extra } });

  let r = run(['help']);
  t.same([r.status, r.stderr], [0, '']);
  t.match(r.stdout, /^usage: npm run registry -- <command> \[arguments\]/);
  t.match(r.stdout, /\n {2}user add <name>.*\n {2}user remove <name>.*\n {2}user list .*\n {2}gc \[--dry-run\] /);
  r = run([]);
  t.same([r.status, r.stdout], [2, '']);
  t.match(r.stderr, /^usage: /);
  r = run(['frobnicate']);
  t.equal(r.status, 2);
  t.match(r.stderr, /^registry: unknown command "frobnicate"/);
  r = run(['gc', '--force']);
  t.equal(r.status, 2);
  t.equal(r.stderr, 'registry gc: unknown argument "--force"\nusage: npm run registry -- gc [--dry-run]\n');
  r = run(['gc', '--help']);
  t.equal(r.status, 0);
  t.match(r.stdout, /npm run registry -- gc \[--dry-run\]/);

  // gc reads the configuration as the server does: a bad one stops it before the collector runs.
  const missing = path.join(tempDir(t), 'missing.yml');
  r = run(['gc'], { REGISTRY_CONFIG: missing });
  t.equal(r.status, 1);
  t.match(r.stderr, new RegExp(`^registry gc: cannot read config file ${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: ENOENT`));
  t.notMatch(r.stderr, STACK);
  const config = path.join(tempDir(t), 'config.yml');
  writeFileSync(config, 'http:\n  addr: 127.0.0.1:5999\n');
  r = run(['gc', '--dry-run'], { REGISTRY_CONFIG: config, REGISTRY_NO_SUCH_KEY: '1' });
  t.same([r.status, r.stdout, r.stderr], [1, '', 'registry gc: unknown environment override REGISTRY_NO_SUCH_KEY (no such configuration key)\n']);
  writeFileSync(config, 'gc:\n  nope: 1\n');
  r = run(['gc'], { REGISTRY_CONFIG: config });
  t.equal(r.status, 1);
  t.match(r.stderr, /^registry gc: .*"gc/, 'a configuration error names the key');
  t.notMatch(r.stderr, STACK);
});
