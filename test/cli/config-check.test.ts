import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { configCommand, MASK, maskSecrets } from '../../src/cli/config-check';
import { fakeIo, STACK } from './fake-io';

const dir = mkdtempSync(join(tmpdir(), 'config-check-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

t.test('a valid file: exit 0, the effective configuration with secrets masked', async (t) => {
  const path = file('ok.yml', 'storage:\n  driver: s3\n  s3:\n    bucket: b\n    accessKeyId: AKIA\n    secretAccessKey: hunter2\nlog:\n  level: warn\n');
  const io = fakeIo();
  t.equal(await configCommand(['check', path], io, { REGISTRY_HTTP_ADDR: '127.0.0.1:5999' }), 0);
  const out = io.stdout.text();
  t.match(out, new RegExp(`^# effective configuration: ${path}, overridden by REGISTRY_HTTP_ADDR\n`));
  const effective = parse(out) as { http: { addr: string }; log: { level: string }; storage: { s3: Record<string, string> }; gc: { delay: number } };
  t.equal(effective.http.addr, '127.0.0.1:5999', 'overrides applied');
  t.equal(effective.log.level, 'warn', 'file values applied');
  t.equal(effective.gc.delay, 3600, 'defaults filled in');
  t.equal(effective.storage.s3.secretAccessKey, MASK, 'the secret key is masked');
  t.notMatch(out, /hunter2/, 'and appears nowhere');
  t.equal(effective.storage.s3.accessKeyId, 'AKIA', 'an access key id is not a secret');
  t.match(io.stderr.text(), /: valid\n$/);
});

t.test('mistakes: exit 1 with one line naming the key, never a stack trace', async (t) => {
  const cases: [string, string, RegExp][] = [
    ['unknown.yml', 'http:\n  adr: x\n', /unknown configuration key "http\.adr"/],
    ['type.yml', 'gc:\n  delay: soon\n', /gc\.delay: expected an integer/],
    ['cross.yml', 'storage:\n  driver: s3\n', /storage\.s3\.bucket is empty/],
    ['yaml.yml', 'http: [\n', /invalid YAML/],
  ];
  for (const [name, text, message] of cases) {
    const io = fakeIo();
    t.equal(await configCommand(['check', file(name, text)], io, {}), 1, name);
    t.match(io.stderr.text(), message, `${name}: says what is wrong`);
    t.notMatch(io.stderr.text(), STACK);
    t.equal(io.stdout.text(), '', `${name}: prints no configuration`);
  }
  const io = fakeIo();
  t.equal(await configCommand(['check'], io, { REGISTRY_GC_DELAY: '-1' }), 1, 'a bad override');
  t.match(io.stderr.text(), /REGISTRY_GC_DELAY \(gc\.delay\): must be at least 0/);
  const missing = fakeIo();
  t.equal(await configCommand(['check', join(dir, 'nope.yml')], missing, {}), 1, 'a named file that does not exist');
  t.match(missing.stderr.text(), /cannot read .*nope\.yml/);
});

t.test('usage mistakes: exit 2', async (t) => {
  for (const args of [[], ['verify'], ['check', 'a.yml', 'b.yml'], ['check', '--force']]) {
    const io = fakeIo();
    t.equal(await configCommand(args, io, {}), 2, JSON.stringify(args));
    t.match(io.stderr.text(), /usage: npm run registry -- config check \[FILE\]/);
  }
});

t.test('maskSecrets: secret-named keys and passwords in URLs, not files that hold secrets', async (t) => {
  t.same(
    maskSecrets({
      token: { secretFile: './data/token.key', enabled: true },
      endpoints: [{ url: 'https://hook:s3cret@example.com/x', headers: { Authorization: 'Bearer abc', 'X-Env': 'prod' } }],
      postgres: { url: 'postgres://reg:pw@db:5432/registry', passwordFile: '/run/secrets/pg', passwordEnv: 'PG_PASSWORD' },
      empty: { password: '' },
    }),
    {
      token: { secretFile: './data/token.key', enabled: true },
      endpoints: [{ url: `https://hook:${MASK}@example.com/x`, headers: { Authorization: MASK, 'X-Env': MASK } }],
      postgres: { url: `postgres://reg:${MASK}@db:5432/registry`, passwordFile: '/run/secrets/pg', passwordEnv: 'PG_PASSWORD' },
      empty: { password: '' },
    },
  );
});
