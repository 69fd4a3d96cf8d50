import { readFileSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import bcrypt from 'bcryptjs';
import t from 'tap';
import { basic } from '../helpers/auth';
import { http } from '../helpers/http';
import { startTenantRegistry, TENANT_USERS, type Tenant } from '../helpers/tenants';

// Issue 22, item 7: a password check that began on one reading of the htpasswd file answered by it even
// when the file changed while bcrypt ran, so a user removed (or a password changed) during the check
// still logged in. The answer is now judged against the file as it is when the check ends.

/** The tenants at bcrypt cost 10, so a check is under way long enough to change the file meanwhile. */
function entries(users: Partial<Record<Tenant, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(users).map(([u, p]) => [u, `${u}:${bcrypt.hashSync(p, 10)}`]));
}
const write = (file: string, lines: Record<string, string>) => writeFileSync(file, Object.values(lines).join('\n') + '\n');

t.test('a change of the htpasswd file during a check decides its answer', async (t) => {
  const reg = await startTenantRegistry(t, { auth: { token: { enabled: false } } });
  const access = reg.app.registry.access;
  const lines = entries(TENANT_USERS);
  await sleep(20); // a new mtime
  write(reg.htpasswd, lines);
  const login = (user: string, password: string) => http(reg.url, 'GET', '/v2/', undefined, { authorization: basic(user, password) });

  /** Start a login, change the file while its bcrypt check is under way, and return its answer. */
  const loginWhile = async (user: string, password: string, change: () => void) => {
    const answer = login(user, password);
    while (access.pendingPasswordChecks === 0) await sleep(1);
    change(); // synchronous: the check cannot finish in between
    return (await answer).status;
  };

  const { alice: _removed, ...withoutAlice } = lines;
  t.equal(await loginWhile('alice', TENANT_USERS.alice, () => write(reg.htpasswd, withoutAlice)), 401, 'alice, removed during her check, is refused');
  t.equal((await login('alice', TENANT_USERS.alice)).status, 401, 'and afterwards');

  const newBob = entries({ bob: 'bob-new-pw' });
  t.equal(await loginWhile('bob', TENANT_USERS.bob, () => write(reg.htpasswd, { ...withoutAlice, ...newBob })), 401, "bob's old password, changed during the check, is refused");
  t.equal((await login('bob', 'bob-new-pw')).status, 200, 'the new one works');

  const { carol: _gone, ...withoutCarol } = { ...withoutAlice, ...newBob };
  t.equal(await loginWhile('mallory', TENANT_USERS.mallory, () => write(reg.htpasswd, withoutCarol)), 200, "another user's change does not refuse mallory");
  t.match(readFileSync(reg.htpasswd, 'utf8'), /^mallory:/m);
});
