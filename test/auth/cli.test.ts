import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { Htpasswd } from '../../src/auth/htpasswd';
import { ROOT } from '../helpers/process';
import { tempDir } from '../helpers/server';
import { findTool } from '../helpers/tools';

// `npm run user -- add|remove|list` (dist/cli/user.js, built by npm test).

const run = (args: string[], input = '') =>
  spawnSync(process.execPath, [path.join(ROOT, 'dist/cli/user.js'), ...args], { input, encoding: 'utf8', cwd: ROOT });

t.test('add, update, list, remove', async (t) => {
  const file = path.join(tempDir(t), 'htpasswd');
  let r = run(['add', 'alice', '--file', file], 'first-pw\n');
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /added alice/);
  t.match(readFileSync(file, 'utf8'), /^alice:\$2y\$10\$/);
  r = run(['add', 'bob', '--file', file], 'bob-pw\n');
  r = run(['add', 'alice', '--file', file], 'second-pw\n');
  t.match(r.stdout, /updated alice/);
  const h = new Htpasswd(file);
  t.teardown(() => h.close());
  t.ok(await h.verify('alice', 'second-pw'));
  t.notOk(await h.verify('alice', 'first-pw'));
  t.ok(await h.verify('bob', 'bob-pw'));
  if (findTool('htpasswd')) {
    execFileSync('htpasswd', ['-vb', file, 'alice', 'second-pw'], { stdio: 'pipe' });
    t.pass('Apache htpasswd verifies our entries');
  }
  t.same(run(['list', '--file', file]).stdout.trim().split('\n'), ['bob', 'alice']);
  r = run(['remove', 'bob', '--file', file]);
  t.equal(r.status, 0);
  t.same(run(['list', '--file', file]).stdout.trim().split('\n'), ['alice']);
  t.equal(run(['remove', 'bob', '--file', file]).status, 1, 'removing a missing user fails');
  t.equal(run(['add', 'x:y', '--file', file], 'p\n').status, 2, 'names with a colon refused');
  t.equal(run(['add', 'carol', '--file', file], '\n').status, 2, 'empty password refused');
  t.equal(run(['frobnicate']).status, 2);
});
