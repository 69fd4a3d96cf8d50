import t from 'tap';
import { parseConfig, ConfigError } from '../../src/config/load';
import { backoffDelay, retryable } from '../../src/notifications/backoff';
import { envelope, makeEvent } from '../../src/notifications/events';
import { EndpointFilter } from '../../src/notifications/filter';
import { parseDurationMs } from '../../src/config/duration';
import { parseEndpoints } from '../../src/notifications/settings';
import { signatureHeader, verifySignature } from '../../src/notifications/signature';

const yaml = (endpoint: string, top = '') => `notifications:\n${top}  endpoints:\n    - name: hook\n      url: http://127.0.0.1:9/hook\n${endpoint}`;
const refused = (text: string, re: RegExp) => {
  try {
    parseConfig(text, {});
  } catch (err) {
    return err instanceof ConfigError && re.test(err.message) ? true : (err as Error).message;
  }
  return 'accepted';
};

t.test('config: defaults, and every bad value stops the start naming its key', async (t) => {
  const c = parseConfig(yaml(''), {});
  t.match(c.notifications, { maxAge: 86400, pullEvents: false });
  t.match(c.notifications.endpoints[0], { name: 'hook', enabled: true, timeoutMs: 5000, backoff: { initialMs: 1000, maxMs: 300000 }, maxRetries: 0, repositories: ['**'], ignoreMediaTypes: [], headers: {} });
  t.same(parseConfig('', {}).notifications.endpoints, [], 'none by default');
  t.equal(refused(yaml('      timeout: -1\n'), /notifications\.endpoints\[0\]\.timeout: must be a duration of at least 0/), true, 'negative timeout');
  t.equal(refused(yaml('      timeout: -5s\n'), /endpoints\[0\]\.timeout/), true, 'negative timeout with a unit');
  t.equal(refused(yaml('      timeout: 30d\n'), /endpoints\[0\]\.timeout: at most 24d/), true, 'a timeout Node\'s timers cannot hold');
  t.equal(refused(yaml('      backoff: {max: 25d}\n'), /endpoints\[0\]\.backoff\.max: at most 24d/), true, 'a backoff Node\'s timers cannot hold');
  t.equal(refused(yaml('      headers: {X-Key: "caf\u20ac"}\n'), /headers\.X-Key: expected a one-line string of printable characters/), true, 'a header value Node would refuse to send');
  t.equal(refused(yaml('      colour: blue\n'), /unknown configuration key "notifications\.endpoints\[0\]\.colour"/), true, 'unknown key');
  t.equal(refused(yaml('      backoff: {initial: 1s, maximum: 2s}\n'), /unknown configuration key "notifications\.endpoints\[0\]\.backoff\.maximum"/), true, 'unknown nested key');
  t.equal(refused('notifications:\n  endpoint: []\n', /unknown configuration key "notifications\.endpoint"/), true, 'unknown top key');
  t.equal(refused('notifications:\n  endpoints:\n    - {name: a, url: "ftp://x/"}\n', /endpoints\[0\]\.url: must be an http/), true, 'ftp URL');
  t.equal(refused('notifications:\n  endpoints:\n    - {name: a, url: "file:///etc/passwd"}\n', /endpoints\[0\]\.url/), true, 'file URL');
  t.equal(refused('notifications:\n  endpoints:\n    - {name: a, url: "not a url"}\n', /endpoints\[0\]\.url: not a URL/), true);
  t.equal(refused('notifications:\n  endpoints:\n    - {name: a, url: "http://u:p@x/"}\n', /endpoints\[0\]\.url: put credentials in headers/), true);
  t.equal(refused('notifications:\n  endpoints:\n    - {name: a}\n', /endpoints\[0\]\.url: required/), true);
  t.equal(refused('notifications:\n  endpoints:\n    - {name: a, url: "http://x/"}\n    - {name: a, url: "http://y/"}\n', /endpoints\[1\]\.name: "a" is used/), true, 'duplicate names');
  t.equal(refused(yaml('      actions: [push, fetch]\n'), /endpoints\[0\]\.actions\[1\]: expected one of push, pull, delete, mount/), true);
  t.equal(refused(yaml('      actions: [pull]\n'), /endpoints\[0\]\.actions: "pull" needs notifications\.pullEvents: true/), true, 'pull without pullEvents');
  t.equal(parseConfig(yaml('      actions: [pull]\n', '  pullEvents: true\n'), {}).notifications.endpoints[0]!.actions![0], 'pull');
  t.equal(refused(yaml('      repositories: ["Prod/*"]\n'), /endpoints\[0\]\.repositories\[0\]/), true, 'bad glob');
  t.equal(refused(yaml('      headers: {Content-Type: text/plain}\n'), /endpoints\[0\]\.headers\.Content-Type: set by the registry/), true);
  t.equal(refused(yaml('      headers: {"bad header": x}\n'), /endpoints\[0\]\.headers/), true);
  t.equal(refused(yaml('      backoff: {initial: 10s, max: 1s}\n'), /backoff\.max: must be at least backoff\.initial/), true);
  t.equal(refused(yaml('      maxRetries: -1\n'), /endpoints\[0\]\.maxRetries/), true);
  t.equal(refused(yaml('      enabled: maybe\n'), /endpoints\[0\]\.enabled/), true);
  t.equal(refused(yaml('      secretFile: /x\n      secretEnv: Y\n'), /exclusive/), true);
  t.equal(refused(yaml('', '  maxAge: 10s\n'), /notifications\.maxAge: must be at least one minute/), true);
  t.equal(refused('notifications:\n  endpoints: {name: a}\n', /notifications\.endpoints: expected a list/), true);
  // The environment override takes the list as YAML/JSON, like the other list keys.
  const env = parseConfig('', { REGISTRY_NOTIFICATIONS_ENDPOINTS: '[{name: e, url: "https://hooks.example/x", timeout: 500ms}]' });
  t.match(env.notifications.endpoints[0], { name: 'e', url: 'https://hooks.example/x', timeoutMs: 500 });
});

t.test('durations', async (t) => {
  t.equal(parseDurationMs(2, 'k'), 2000);
  t.equal(parseDurationMs(0.25, 'k'), 250);
  t.equal(parseDurationMs('250ms', 'k'), 250);
  t.equal(parseDurationMs('1.5s', 'k'), 1500);
  t.equal(parseDurationMs('2m', 'k'), 120000);
  t.equal(parseDurationMs('1h', 'k'), 3600000);
  t.equal(parseDurationMs('1d', 'k'), 86400000);
  t.throws(() => parseDurationMs('soon', 'k'), /k: expected a duration/);
  t.throws(() => parseDurationMs(-1, 'k'), /k: must be a duration of at least 0/);
});

t.test('filters', async (t) => {
  const [e] = parseEndpoints([{ name: 'a', url: 'http://x/', repositories: ['prod/*', 'team/**'], ignoreMediaTypes: ['application/octet-stream'] }], 'n');
  const f = new EndpointFilter(e!, false);
  t.ok(f.matches('push', 'prod/web', 'application/vnd.oci.image.manifest.v1+json'));
  t.notOk(f.matches('push', 'prod/web/deep', undefined), '* stays in one component');
  t.ok(f.matches('delete', 'team/a/b', undefined), '** spans components');
  t.notOk(f.matches('push', 'dev/web', undefined), 'other repositories');
  t.notOk(f.matches('push', 'prod/web', 'application/octet-stream'), 'ignored media type');
  t.ok(f.matches('mount', 'prod/web', undefined));
  t.notOk(f.matches('pull', 'prod/web', undefined), 'no pulls without pullEvents');
  t.ok(new EndpointFilter(e!, true).matches('pull', 'prod/web', undefined), 'pulls with pullEvents, actions unset');
  const [only] = parseEndpoints([{ name: 'a', url: 'http://x/', actions: ['delete'] }], 'n');
  const g = new EndpointFilter(only!, true);
  t.ok(g.matches('delete', 'any/thing', undefined));
  t.notOk(g.matches('push', 'any/thing', undefined));
  t.notOk(g.wantsAction('pull'));
});

t.test('envelope: distribution\'s event shape', async (t) => {
  const request = { id: 'r1', addr: '10.0.0.1', host: 'reg:5000', method: 'PUT', useragent: 'docker/25', actor: 'alice', base: 'https://reg:5000' };
  const source = { addr: 'host:5000', instanceID: 'i-1' };
  const now = new Date('2026-01-02T03:04:05.000Z');
  const e = makeEvent('push', 'a/b', { mediaType: 'm', digest: 'sha256:00', size: 12, tag: 'v1', path: '/v2/a/b/manifests/sha256:00' }, request, source, now);
  t.match(e.id, /^[0-9a-f-]{36}$/);
  t.same({ ...e, id: 'x' }, {
    id: 'x',
    timestamp: '2026-01-02T03:04:05.000Z',
    action: 'push',
    target: { repository: 'a/b', mediaType: 'm', digest: 'sha256:00', size: 12, length: 12, url: 'https://reg:5000/v2/a/b/manifests/sha256:00', tag: 'v1' },
    request: { id: 'r1', addr: '10.0.0.1', host: 'reg:5000', method: 'PUT', useragent: 'docker/25' },
    actor: { name: 'alice' },
    source,
  });
  const bg = makeEvent('delete', 'a/b', { tag: 'old' }, undefined, source, now);
  t.same(bg.actor, {}, 'no request: no actor');
  t.notOk('request' in bg);
  t.notOk('url' in bg.target, 'no request: no URL');
  t.same(JSON.parse(envelope([JSON.stringify(e), JSON.stringify(bg)])).events.map((x: { id: string }) => x.id), [e.id, bg.id]);
});

t.test('backoff: exponential, capped, jittered in the upper half', async (t) => {
  t.equal(backoffDelay(1, 1000, 60000, () => 1), 1000);
  t.equal(backoffDelay(1, 1000, 60000, () => 0), 500);
  t.equal(backoffDelay(2, 1000, 60000, () => 1), 2000);
  t.equal(backoffDelay(5, 1000, 60000, () => 1), 16000);
  t.equal(backoffDelay(10, 1000, 60000, () => 1), 60000, 'capped');
  t.equal(backoffDelay(1000, 1000, 60000, () => 1), 60000, 'no overflow');
  for (let i = 0; i < 100; i++) {
    const d = backoffDelay(3, 1000, 60000);
    t.ok(d >= 2000 && d <= 4000);
  }
  t.ok(retryable(500) && retryable(503) && retryable(408) && retryable(429));
  t.notOk(retryable(400) || retryable(401) || retryable(404) || retryable(302));
});

t.test('signature: receivers can verify body and time', async (t) => {
  const secret = Buffer.from('0123456789abcdef0123');
  const body = '{"events":[]}';
  const h = signatureHeader(secret, body, 1_700_000_000);
  t.match(h, /^t=1700000000,sha256=[0-9a-f]{64}$/);
  t.ok(verifySignature(secret, body, h, 1_700_000_100));
  t.notOk(verifySignature(secret, body + ' ', h, 1_700_000_100), 'other body');
  t.notOk(verifySignature(Buffer.from('another secret!!!!'), body, h, 1_700_000_100), 'other secret');
  t.notOk(verifySignature(secret, body, h, 1_700_001_000), 'too old');
  t.notOk(verifySignature(secret, body, 'garbage', 1_700_000_000));
});

t.test('an outbox write that fails: a pull is still served, a change fails with it', async (t) => {
  const { Notifier } = await import('../../src/notifications/notifier');
  const failing = { enqueue: async () => { throw new Error('disk full'); } } as never;
  const warned: string[] = [];
  const log = { info: () => undefined, warn: (_: object, msg: string) => void warned.push(msg), error: () => undefined };
  const [e] = parseEndpoints([{ name: 'a', url: 'http://127.0.0.1:9/' }], 'n');
  const notifier = new Notifier({ endpoints: [e!], maxAge: 3600, pullEvents: true }, failing, log, { port: 5000 });
  await t.resolves(notifier.record(null, 'pull', 'a/b', { digest: 'sha256:x' }), 'a pull goes on');
  t.same(warned, ['pull event not recorded'], 'and is logged');
  await t.rejects(notifier.record(null, 'push', 'a/b', { digest: 'sha256:x' }), /disk full/, 'a push fails with its event');
});

t.test('close() waits for a pause already under way (leadership lost as the process stops)', async (t) => {
  const { Notifier } = await import('../../src/notifications/notifier');
  const outbox = { expired: async () => [] } as never;
  const log = { info: () => undefined, warn: () => undefined, error: () => undefined };
  const [e] = parseEndpoints([{ name: 'a', url: 'http://127.0.0.1:9/' }], 'n');
  const notifier = new Notifier({ endpoints: [e!], maxAge: 3600, pullEvents: false }, outbox, log, { port: 5000 });
  // A sender whose attempt in flight takes a while to abort.
  let release!: () => void;
  const slowStop = new Promise<void>((r) => (release = r));
  const active = (notifier as unknown as { active: { sender: object }[] }).active;
  active[0]!.sender = { start: () => undefined, stop: () => slowStop };
  notifier.start();
  void notifier.pause(); // as leadership's change listener does, without waiting
  let closed = false;
  const closing = notifier.close().then(() => (closed = true));
  await new Promise((r) => setTimeout(r, 50));
  t.equal(closed, false, 'close() has not returned while the sender is still stopping');
  release();
  await closing;
  t.equal(closed, true);
});
