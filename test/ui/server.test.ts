import { statSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { authConfig } from '../helpers/auth';
import { startRegistry, tempDir } from '../helpers/server';

// The UI's settings on an in-process server: ui.enabled, the session key file (created 0600, kept, so a
// session survives a restart), the end of a session when its user's password changes, sign-out.

const form = (fields: Record<string, string>) => ({
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded', origin: '' },
  body: new URLSearchParams(fields).toString(),
  redirect: 'manual' as const,
});

t.test('ui.enabled: false serves no UI', async (t) => {
  const reg = await startRegistry(t, { ui: { enabled: false } });
  const r = await fetch(`${reg.url}/ui/`);
  t.equal(r.status, 404);
  t.match(r.headers.get('content-type'), /json/, 'the registry\'s own 404');
});

t.test('sessions: a key file of mode 0600, sessions across restarts, ended by a new password, sign-out', async (t) => {
  const auth = authConfig(t, { alice: 'alice-pw' });
  const dir = tempDir(t, 'ui-server-');
  const key = path.join(dir, 'keys', 'ui.key');
  let reg = await startRegistry(t, { ...auth.overrides, ui: { sessionSecretFile: key, sessionTtl: 3600 } });
  t.equal(statSync(key).mode & 0o777, 0o600, 'the key file is 0600');
  const login = await fetch(`${reg.url}/ui/login`, { ...form({ username: 'alice', password: 'alice-pw' }), headers: { ...form({}).headers, origin: reg.url } });
  t.equal(login.status, 303);
  const setCookie = login.headers.get('set-cookie')!;
  t.match(setCookie, /Max-Age=3600/, 'ui.sessionTtl');
  t.notMatch(setCookie, /Secure/, 'not Secure over plain HTTP');
  const cookie = setCookie.split(';')[0]!;
  const who = async () => /Signed in as <b>([^<]+)<\/b>/.exec(await (await fetch(`${reg.url}/ui/`, { headers: { cookie } })).text())?.[1];
  t.equal(await who(), 'alice');
  reg = await reg.restart();
  t.equal(await who(), 'alice', 'the session survives a restart');

  // Sign-out needs its CSRF token (from the page) and the same origin.
  const home = await (await fetch(`${reg.url}/ui/`, { headers: { cookie } })).text();
  const csrf = /action="\/ui\/logout"><input type="hidden" name="csrf" value="([^"]+)"/.exec(home)![1]!;
  const noToken = await fetch(`${reg.url}/ui/logout`, { ...form({}), headers: { ...form({}).headers, origin: reg.url, cookie } });
  t.equal(noToken.status, 403, 'sign-out without the token: refused');
  const out = await fetch(`${reg.url}/ui/logout`, { ...form({ csrf }), headers: { ...form({}).headers, origin: reg.url, cookie } });
  t.equal(out.status, 303);
  t.match(out.headers.get('set-cookie'), /^registry_session=; Path=\/ui; Max-Age=0/, 'the cookie is cleared');

  // A new password (the htpasswd file rewritten) ends the session, as it revokes tokens.
  const again = authConfig(t, { alice: 'new-pw' });
  const { writeFileSync, readFileSync } = await import('node:fs');
  writeFileSync(auth.htpasswd, readFileSync(again.htpasswd));
  const deadline = Date.now() + 10_000;
  while ((await who()) === 'alice' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  t.equal(await who(), undefined, 'the old session is anonymous once the password changed');
});
