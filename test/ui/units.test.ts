import t from 'tap';
import { Csrf } from '../../src/ui/csrf';
import { humanBytes, relativeTime } from '../../src/ui/format';
import { escapeHtml, html, raw, safeUrl } from '../../src/ui/html';
import { parseCookies, SessionCodec, sessionCookie } from '../../src/ui/session';
import { parsePathPrefix, parseSessionTtl } from '../../src/ui/settings';

// Unit tests of the UI's escaping, session and CSRF modules.

const secret = Buffer.alloc(32, 7);

t.test('escaping: every interpolation is escaped unless it is Html', async (t) => {
  t.equal(escapeHtml(`<script>alert("x")</script>&'\``), '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;&#96;');
  const evil = '"><img src=x onerror=alert(1)>';
  t.equal(html`<a title="${evil}">${evil}</a>`.value, '<a title="&quot;&gt;&lt;img src=x onerror=alert(1)&gt;">&quot;&gt;&lt;img src=x onerror=alert(1)&gt;</a>');
  t.equal(html`<b>${html`<i>${'<x>'}</i>`}</b>`.value, '<b><i>&lt;x&gt;</i></b>', 'nested templates are not escaped twice');
  t.equal(html`${['<a>', html`<b>`, 1, null, undefined, false]}`.value, '&lt;a&gt;<b>1', 'arrays join, empty values vanish');
  t.equal(raw('<br>').value, '<br>');
  t.equal(safeUrl('javascript:alert(1)'), '#');
  t.equal(safeUrl('//evil.example/'), '#');
  t.equal(safeUrl('/ui/r/a'), '/ui/r/a');
});

t.test('sessions: signed, expiring, tamper-evident', async (t) => {
  const codec = new SessionCodec(secret);
  const s = codec.create('alice', 60_000, 'fp1', 1000);
  const cookie = codec.encode(s);
  t.same(codec.decode(cookie, 2000), s);
  t.equal(codec.decode(cookie, 61_001), undefined, 'expired');
  const [payload, mac] = cookie.split('.');
  const forged = Buffer.from(JSON.stringify({ u: 'admin', e: 1e15, s: s.sid })).toString('base64url');
  t.equal(codec.decode(`${forged}.${mac}`, 2000), undefined, 'another payload with the old MAC');
  t.equal(codec.decode(`${payload}.${mac!.slice(0, -2)}AA`, 2000), undefined, 'a changed MAC');
  t.equal(codec.decode(`${payload}`, 2000), undefined, 'no MAC');
  t.equal(new SessionCodec(Buffer.alloc(32, 8)).decode(cookie, 2000), undefined, 'another secret');
  t.equal(codec.decode(undefined), undefined);
  t.equal(codec.decode('x'.repeat(5000)), undefined);
  const anon = codec.create(null, 60_000, undefined, 1000);
  t.same(codec.decode(codec.encode(anon), 2000), anon, 'anonymous sessions carry a session id');
  t.not(codec.create(null, 1).sid, codec.create(null, 1).sid, 'random ids');
});

t.test('cookies', async (t) => {
  t.same([...parseCookies('a=1; registry_session=x.y; a=2')], [['a', '1'], ['registry_session', 'x.y']]);
  t.equal(sessionCookie('v', { path: '/ui', secure: false, maxAgeSeconds: 10 }), 'registry_session=v; Path=/ui; Max-Age=10; HttpOnly; SameSite=Strict');
  t.match(sessionCookie('v', { path: '/p', secure: true, maxAgeSeconds: 1 }), /; Secure$/);
});

t.test('csrf: bound to the session and the action, checked in constant time', async (t) => {
  const csrf = new Csrf(secret);
  const token = csrf.token('sid1', 'delete:a:tag:v1');
  t.ok(csrf.check('sid1', 'delete:a:tag:v1', token));
  t.notOk(csrf.check('sid2', 'delete:a:tag:v1', token), 'another session');
  t.notOk(csrf.check('sid1', 'delete:a:tag:v2', token), 'another action');
  t.notOk(csrf.check('sid1', 'delete:a:tag:v1', undefined));
  t.notOk(csrf.check('sid1', 'delete:a:tag:v1', ''));
  t.notOk(csrf.check('sid1', 'delete:a:tag:v1', token.slice(0, -1)));
  t.notOk(new Csrf(Buffer.alloc(32, 1)).check('sid1', 'delete:a:tag:v1', token), 'another secret');
});

t.test('settings and formats', async (t) => {
  t.equal(parseSessionTtl('8h', 'ui.sessionTtl'), 28800);
  t.equal(parseSessionTtl(3600, 'ui.sessionTtl'), 3600);
  t.equal(parseSessionTtl('2d', 'ui.sessionTtl'), 172800);
  t.throws(() => parseSessionTtl('soon', 'ui.sessionTtl'), /ui\.sessionTtl: expected a duration/);
  t.throws(() => parseSessionTtl('10s', 'ui.sessionTtl'), /at least one minute/);
  t.equal(parsePathPrefix('/tools/registry/', 'ui.pathPrefix'), '/tools/registry');
  t.throws(() => parsePathPrefix('ui', 'ui.pathPrefix'), /absolute path/);
  t.throws(() => parsePathPrefix('/v2', 'ui.pathPrefix'), /taken/);
  t.throws(() => parsePathPrefix('/', 'ui.pathPrefix'), /absolute path/);
  t.throws(() => parseSessionTtl('1x', 'k'), /expected a duration/);
  t.equal(humanBytes(0), '0 B');
  t.equal(humanBytes(1536), '1.5 KiB');
  t.equal(humanBytes(5 * 1024 * 1024 * 1024), '5.0 GiB');
  t.equal(relativeTime(0, 3 * 3600_000), '3 hours ago');
  t.equal(relativeTime(1000, 1000), 'just now');
});

t.test('session key: created 0600, the same for processes starting together', async (t) => {
  const { mkdtempSync, rmSync, statSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const path = await import('node:path');
  const { execFile } = await import('node:child_process');
  const { loadSessionKey, sessionKeyFile } = await import('../../src/ui/session-key');
  t.equal(sessionKeyFile('', '/srv/registry/index.db'), '/srv/registry/ui-session.key', 'beside the index by default');
  t.equal(sessionKeyFile('/k', '/srv/registry/index.db'), '/k');
  const dir = mkdtempSync(path.join(tmpdir(), 'ui-key-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'sub', 'ui.key');
  const key = loadSessionKey(file);
  t.equal(key.length, 32);
  t.equal(statSync(file).mode & 0o777, 0o600);
  t.same(loadSessionKey(file), key, 'read back');
  writeFileSync(path.join(dir, 'short.key'), 'c2hvcnQ=\n');
  t.throws(() => loadSessionKey(path.join(dir, 'short.key')), /too short/);
  // Eight processes at once on a new file: one key for all (dist/ is what npm start runs).
  const racing = path.join(dir, 'race.key');
  const module = path.join(__dirname, '../../dist/ui/session-key.js');
  const keys = await Promise.all(
    Array.from({ length: 8 }, () =>
      new Promise<string>((resolve, reject) =>
        execFile(process.execPath, ['-e', `process.stdout.write(require(${JSON.stringify(module)}).loadSessionKey(${JSON.stringify(racing)}).toString('hex'))`], (err, out) => (err ? reject(err) : resolve(out))),
      ),
    ),
  );
  t.equal(new Set(keys).size, 1, 'every process has the same key');
  t.same(readdir(dir).filter((f) => f.endsWith('.tmp')), [], 'no temporary file left');
});

function readdir(dir: string): string[] {
  return require('node:fs').readdirSync(dir) as string[];
}
