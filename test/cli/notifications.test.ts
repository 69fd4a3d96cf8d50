import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { EXIT_FAILING, notificationsCommand } from '../../src/cli/notifications';
import { defaultConfig } from '../../src/config/load';
import { openDatabase } from '../../src/index/db';
import { NotificationIndex } from '../../src/index/notification-index';
import { ROOT } from '../helpers/process';
import { tempDir } from '../helpers/server';
import { fakeIo, STACK } from './fake-io';

// `registry notifications status`: the outbox per endpoint, and an exit status scripts can rely on.

const NOW = 1_800_000_000_000;

function setup(t: { teardown(fn: () => void): void }) {
  const file = path.join(tempDir(t), 'index.db');
  const db = openDatabase(file);
  const outbox = new NotificationIndex(db);
  const config = defaultConfig({
    index: { path: file },
    notifications: {
      endpoints: [
        { name: 'ci', url: 'http://127.0.0.1:1/ci' },
        { name: 'scanner', url: 'https://scan.example/hook' },
        { name: 'paused', url: 'http://127.0.0.1:1/p', enabled: false },
      ],
    } as never,
  });
  return { db, outbox, deps: { loadConfig: () => config, now: () => NOW } };
}

t.test('every endpoint delivering: a table and status 0', async (t) => {
  const { db, outbox, deps } = setup(t);
  await outbox.enqueue(['ci'], 'a/b', '{}', NOW - 4000);
  db.close();
  const io = fakeIo();
  t.equal(await notificationsCommand(['status'], io, deps), 0);
  const lines = io.stdout.text().trim().split('\n');
  t.match(lines[0], /^ENDPOINT\s+STATE\s+PENDING\s+FAILING\s+OLDEST\s+LAST ERROR$/);
  t.match(lines[1], /^ci\s+ok\s+1\s+0\s+4\.0 s\s+-$/);
  t.match(lines[2], /^scanner\s+ok\s+0\s+0\s+-\s+-$/);
  t.match(lines[3], /^paused\s+disabled\s+0/);
});

t.test('a failing endpoint: its last error, status 3; rows of a removed endpoint are shown', async (t) => {
  const { db, outbox, deps } = setup(t);
  await outbox.enqueue(['scanner'], 'a/b', '{}', NOW - 200_000);
  await outbox.enqueue(['scanner'], 'a/b', '{}', NOW - 100_000);
  await outbox.enqueue(['gone'], 'a/b', '{}', NOW - 10_000);
  const [first] = await outbox.next('scanner', 1);
  await outbox.failed([first!.seq], 'HTTP 500');
  db.close();
  const io = fakeIo();
  t.equal(await notificationsCommand(['status'], io, deps), EXIT_FAILING);
  t.match(io.stdout.text(), /\nscanner\s+failing\s+2\s+1\s+3 min 20 s\s+HTTP 500\n/);
  t.match(io.stdout.text(), /\ngone\s+not configured\s+1\s+0/);
  const json = fakeIo();
  t.equal(await notificationsCommand(['status', '--json'], json, deps), EXIT_FAILING);
  const parsed = JSON.parse(json.stdout.text()) as { endpoints: { endpoint: string; state: string; pending: number; failing: number; oldestAgeSeconds: number | null; lastError: string | null }[] };
  t.same(parsed.endpoints.find((e) => e.endpoint === 'scanner'), { endpoint: 'scanner', state: 'failing', pending: 2, failing: 1, oldestAgeSeconds: 200, lastError: 'HTTP 500' });
});

t.test('bad usage: one line and status 2', async (t) => {
  const { deps } = setup(t);
  for (const args of [[], ['stat'], ['status', '--yaml'], ['status', '--json', 'x']]) {
    const io = fakeIo();
    t.equal(await notificationsCommand(args, io, deps), 2, args.join(' '));
    t.match(io.stderr.text(), /^registry notifications: .*\nusage: npm run registry -- notifications status \[--json\]\n$/);
  }
});

t.test('through the built entry: --help, and no index is one line with status 1', async (t) => {
  const entry = path.join(ROOT, 'dist/cli/registry.js');
  const help = spawnSync(process.execPath, [entry, 'notifications', '--help'], { encoding: 'utf8' });
  t.equal(help.status, 0);
  t.match(help.stdout, /notifications status \[--json\]/);
  const dir = tempDir(t);
  writeFileSync(path.join(dir, 'empty.yml'), '');
  const env = { ...process.env, REGISTRY_CONFIG: path.join(dir, 'empty.yml'), REGISTRY_INDEX_PATH: path.join(dir, 'missing.db') };
  const missing = spawnSync(process.execPath, [entry, 'notifications', 'status'], { encoding: 'utf8', env });
  t.equal(missing.status, 1);
  t.notMatch(missing.stderr, STACK);
  t.match(missing.stderr, /^registry notifications: no index at /);
});
