import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import bcrypt from 'bcryptjs';
import t from 'tap';
import { basic } from '../helpers/auth';
import { http, type HttpResult } from '../helpers/http';
import { startTenantRegistry, TENANT_USERS } from '../helpers/tenants';

// Issue 22, item 5 (first bullet): the failed-login limit was per client and user name, so random user
// names were never limited, and every attempt queued a bcrypt run on the one worker, without bound,
// ahead of every good user's first login. Now failures are also limited per client address across
// names, one address may have only a few checks under way, the queue is bounded, and the excess is
// answered at once with Retry-After. No timing is asserted: the queue ahead of a good login is.

const errCode = (r: { json: any }) => r.json?.errors?.[0]?.code;

/** Rewrite the tenants' htpasswd at bcrypt cost 10 (`npm run user`'s), so checks take real time. */
async function slowHtpasswd(file: string): Promise<void> {
  await sleep(20); // a new mtime
  writeFileSync(file, Object.entries(TENANT_USERS).map(([u, p]) => `${u}:${bcrypt.hashSync(p, 10)}\n`).join(''));
}

/** The largest number of password checks waiting or running, sampled until stopped. */
function sampleQueue(read: () => number): { stop(): number } {
  let max = read();
  const timer = setInterval(() => (max = Math.max(max, read())), 1);
  return { stop: () => (clearInterval(timer), Math.max(max, read())) };
}

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 2000 && !cond(); i++) await sleep(2);
}

const randomLogin = (url: string, from: string) =>
  http(url, 'GET', '/v2/', undefined, { authorization: basic(`nobody-${randomBytes(6).toString('hex')}`, 'guess'), 'x-forwarded-for': from });

t.test('random user names from one address are limited, and a good login from another is served', async (t) => {
  const reg = await startTenantRegistry(t, {
    http: { trustProxy: 1 },
    auth: { failedLogins: { limit: 10, perClient: 8, window: 60 }, passwordChecks: { perClient: 4, queue: 32 } },
  });
  await slowHtpasswd(reg.htpasswd);
  const access = reg.app.registry.access;
  const queue = sampleQueue(() => access.pendingPasswordChecks);

  const flood = Array.from({ length: 60 }, () => randomLogin(reg.url, '203.0.113.66'));
  await until(() => access.pendingPasswordChecks > 0);
  const good = await http(reg.url, 'GET', '/v2/', undefined, { authorization: basic('alice', TENANT_USERS.alice), 'x-forwarded-for': '192.0.2.7' });
  const answers = await Promise.all(flood);
  const maxQueued = queue.stop();

  t.equal(good.status, 200, 'alice, from another address, logs in during the flood');
  t.ok(maxQueued <= 4 + 1, `at most 4 of the flood's checks were ever queued with hers (max ${maxQueued})`);
  const by = (s: number) => answers.filter((r) => r.status === s);
  t.same(answers.filter((r) => r.status !== 401 && r.status !== 429).map((r) => r.status), [], 'every attempt: 401 or 429');
  t.ok(by(401).length <= 8 + 4 - 1, `bcrypt-checked failures bounded by the per-client limits (${by(401).length})`);
  t.ok(by(429).length >= 60 - 11, `the rest refused at once (${by(429).length})`);
  const shape = (r: HttpResult) => [errCode(r), Number(r.headers.get('retry-after')) >= 1];
  t.same(by(429).map(shape), by(429).map(() => ['TOOMANYREQUESTS', true]), 'each 429: TOOMANYREQUESTS with Retry-After');

  // Once the address has its 8 failures, new names from it are refused without a bcrypt run.
  let last: HttpResult | undefined;
  for (let i = 0; i < 12; i++) {
    last = await randomLogin(reg.url, '203.0.113.66');
    if (last.status === 429 && Number(last.headers.get('retry-after')) > 1) break;
  }
  t.equal(last!.status, 429, 'the address is limited across user names');
  const retry = Number(last!.headers.get('retry-after'));
  t.ok(retry > 1 && retry <= 60, `until its failures leave the window (Retry-After ${retry})`);
  t.equal(access.pendingPasswordChecks, 0, 'no check was started for it');
  const more = await randomLogin(reg.url, '203.0.113.66');
  t.equal(more.status, 429, 'and stays limited');
  t.equal((await randomLogin(reg.url, '192.0.2.8')).status, 401, 'another address still gets its answer');
});

t.test('the bcrypt queue is bounded: past it 503 with Retry-After; remembered credentials skip it', async (t) => {
  const reg = await startTenantRegistry(t, {
    http: { trustProxy: 1 },
    auth: { failedLogins: { perClient: 100 }, passwordChecks: { perClient: 4, queue: 6 } },
  });
  await slowHtpasswd(reg.htpasswd);
  const access = reg.app.registry.access;
  const alice = { authorization: basic('alice', TENANT_USERS.alice), 'x-forwarded-for': '192.0.2.7' };
  t.equal((await http(reg.url, 'GET', '/v2/', undefined, alice)).status, 200, 'alice logs in once (checked, then remembered)');

  const queue = sampleQueue(() => access.pendingPasswordChecks);
  const flood = Array.from({ length: 20 }, (_, i) => randomLogin(reg.url, `203.0.113.${10 + (i % 5)}`));
  await until(() => access.pendingPasswordChecks >= 6);
  const again = await http(reg.url, 'GET', '/v2/', undefined, alice);
  const answers = await Promise.all(flood);
  const maxQueued = queue.stop();

  t.equal(again.status, 200, 'alice again during the flood: remembered, no queue');
  t.ok(maxQueued <= 6, `the queue never grew past its bound (max ${maxQueued})`);
  const busy = answers.filter((r) => r.status === 503);
  t.ok(busy.length > 0, `some of the flood found the queue full (${busy.length} of 20)`);
  t.same(answers.filter((r) => r.status !== 401 && r.status !== 503).map((r) => r.status), [], 'the rest were checked (401)');
  t.same(
    busy.map((r) => [errCode(r), r.headers.get('retry-after')]),
    busy.map(() => ['UNAVAILABLE', '1']),
    'each 503: UNAVAILABLE with Retry-After: 1',
  );
});
