import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import bcrypt from 'bcryptjs';
import t from 'tap';
import { BcryptWorker } from '../../src/auth/bcrypt-worker';
import { Htpasswd } from '../../src/auth/htpasswd';
import { authConfig, basic } from '../helpers/auth';
import { startRegistry, tempDir } from '../helpers/server';

// Cost 12: ~290 ms per compare here, long enough that an event loop running it would be plainly busy.
const SLOW = bcrypt.hashSync('s3cret', 12);

t.test('a compare runs on the worker thread: the event loop stays idle meanwhile', async (t) => {
  const worker = new BcryptWorker();
  t.teardown(() => worker.close());
  t.ok(await worker.compare('s3cret', bcrypt.hashSync('s3cret', 4)), 'warm-up (the worker starts)');
  const before = performance.eventLoopUtilization();
  const [right, wrong] = await Promise.all([worker.compare('s3cret', SLOW), worker.compare('nope', SLOW)]);
  const elu = performance.eventLoopUtilization(before);
  t.same([right, wrong], [true, false]);
  // Compared on the event loop, the two would keep it busy nearly all of their ~0.6 s (utilization ~1).
  t.ok(elu.utilization < 0.5, `event loop utilization during two cost-12 compares: ${elu.utilization.toFixed(3)}`);
});

t.test('a worker that goes away fails what waits; the next compare starts a new one', async (t) => {
  const worker = new BcryptWorker();
  const waiting = worker.compare('s3cret', SLOW);
  await worker.close();
  await t.rejects(waiting, /bcrypt worker exited/);
  t.ok(await worker.compare('s3cret', SLOW), 'a new worker answers');
  // A compare asked for while the old worker is still going away goes to a new one, and the old one's
  // exit fails only what waited on it.
  const closing = worker.close();
  const next = worker.compare('s3cret', SLOW);
  await closing;
  t.ok(await next, 'not failed by the exit of the worker before it');
  await worker.close();
});

t.test('htpasswd: one compare for a credential arriving many times at once; none cached across a change of the file', async (t) => {
  const file = path.join(tempDir(t), 'htpasswd');
  writeFileSync(file, `ci:${SLOW}\n`);
  const h = new Htpasswd(file);
  t.teardown(() => h.close());
  let compares = 0;
  const compare = BcryptWorker.prototype.compare;
  BcryptWorker.prototype.compare = function (this: BcryptWorker, password: string, hash: string) {
    compares++;
    return compare.call(this, password, hash);
  };
  t.teardown(() => void (BcryptWorker.prototype.compare = compare));

  // 16 CI jobs start with the same credentials before any login has been verified.
  t.same(await Promise.all(Array.from({ length: 16 }, () => h.verify('ci', 's3cret'))), Array(16).fill(true));
  t.equal(compares, 1, 'one bcrypt for all 16');
  t.ok(await h.verify('ci', 's3cret'));
  t.equal(compares, 1, 'then cached');

  // The password changes while a login with the old one is being checked: the answer is judged against
  // the file as it is when the check ends, so that login fails (issue 22: a removed user's or an old
  // password's check in flight must not succeed), and nothing is remembered for the new file.
  await new Promise((r) => setTimeout(r, 20)); // a new mtime
  writeFileSync(file, `other:${SLOW}\n`);
  const login = h.verify('other', 's3cret');
  while (compares < 2) await new Promise((r) => setTimeout(r, 5)); // its compare is under way
  writeFileSync(file, `other:${bcrypt.hashSync('new-pass', 4)}\n`);
  await h.reloadIfChanged();
  t.notOk(await login, 'judged against the file as it is when the check ends');
  t.notOk(await h.verify('other', 's3cret'), 'the old password is refused once the file says otherwise');
  t.ok(await h.verify('other', 'new-pass'));
});

t.test('a failed bcrypt worker answers 503, not a 401 that blames the credentials', async (t) => {
  const { overrides } = authConfig(t, { alice: 'alice-pw' });
  const reg = await startRegistry(t, overrides);
  const compare = BcryptWorker.prototype.compare;
  BcryptWorker.prototype.compare = () => Promise.reject(new Error('bcrypt worker exited with code 1'));
  t.teardown(() => void (BcryptWorker.prototype.compare = compare));
  const headers = { authorization: basic('alice', 'alice-pw') };
  const v2 = await fetch(`${reg.url}/v2/`, { headers });
  t.equal(v2.status, 503);
  t.match(await v2.json(), { errors: [{ code: 'UNAVAILABLE', message: /cannot check passwords now: bcrypt worker exited/ }] });
  const v1 = await fetch(`${reg.url}/v1/users/`, { headers });
  t.equal(v1.status, 503);
  t.match(await v1.json(), { error: /cannot check passwords now/ });
  BcryptWorker.prototype.compare = compare;
  t.equal((await fetch(`${reg.url}/v2/`, { headers })).status, 200, 'and logins work again once it does');
});
