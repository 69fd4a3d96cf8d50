import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import t from 'tap';
import { buildApp } from '../src/app';
import { defaultConfig } from '../src/config/load';
import { authConfig, basic } from './helpers/auth';
import { http } from './helpers/http';
import { startRegistry, tempDir } from './helpers/server';

// GET /healthz (the process answers) and GET /readyz (index and storage answer): anonymous, never
// challenged, and logged at debug level only.

t.test('healthz and readyz answer 200 with JSON', async (t) => {
  const reg = await startRegistry(t);
  const live = await http(reg.url, 'GET', '/healthz');
  t.equal(live.status, 200);
  t.same(live.json, { status: 'ok' });
  t.match(live.headers.get('content-type'), /^application\/json/);
  t.equal(live.headers.get('cache-control'), 'no-store', 'probes are never cached');

  const ready = await http(reg.url, 'GET', '/readyz');
  t.equal(ready.status, 200);
  t.same(ready.json, { status: 'ok', checks: { index: 'ok', storage: 'ok' } });

  t.equal((await http(reg.url, 'HEAD', '/healthz')).status, 200, 'HEAD /healthz');
  t.equal((await http(reg.url, 'HEAD', '/readyz')).status, 200, 'HEAD /readyz');
});

t.test('served with both protocols off', async (t) => {
  const reg = await startRegistry(t, { protocols: { v1: false, v2: false } });
  t.equal((await http(reg.url, 'GET', '/healthz')).status, 200);
  t.equal((await http(reg.url, 'GET', '/readyz')).status, 200);
});

t.test('readyz: 503 naming storage when the storage root is gone, 200 again once it is back', async (t) => {
  const reg = await startRegistry(t);
  const root = reg.config.storage.local.root;
  rmSync(root, { recursive: true, force: true });
  const down = await http(reg.url, 'GET', '/readyz');
  t.equal(down.status, 503);
  t.same(down.json, { status: 'unavailable', checks: { index: 'ok', storage: 'failed' } });
  t.notMatch(down.buf.toString(), root, 'no server path in the anonymous answer');
  t.equal((await http(reg.url, 'GET', '/healthz')).status, 200, 'liveness does not depend on storage');

  mkdirSync(root, { recursive: true });
  t.equal((await http(reg.url, 'GET', '/readyz')).status, 200, 'ready again');
});

t.test('readyz: 503 when the storage root is not writable', async (t) => {
  const reg = await startRegistry(t);
  const root = reg.config.storage.local.root;
  // Root ignores permission bits, but not the immutable attribute (chattr +i: no write, even for root).
  const asRoot = process.getuid?.() === 0;
  const lock = () => (asRoot ? spawnSync('chattr', ['+i', root]).status === 0 : (chmodSync(root, 0o555), true));
  const unlock = () => (asRoot ? spawnSync('chattr', ['-i', root]) : chmodSync(root, 0o755));
  if (!lock()) {
    t.pass('unwritable storage root', { skip: 'running as root and chattr +i does not work here (no e2fsprogs, or a file system without it)' });
    return;
  }
  t.teardown(unlock); // also when an assertion throws
  try {
    const down = await http(reg.url, 'GET', '/readyz');
    t.equal(down.status, 503);
    t.same(down.json, { status: 'unavailable', checks: { index: 'ok', storage: 'failed' } });
  } finally {
    unlock();
  }
  t.equal((await http(reg.url, 'GET', '/readyz')).status, 200, 'ready again once writable');
});

t.test('readyz: 503 naming the index when it does not answer', async (t) => {
  const reg = await startRegistry(t);
  reg.app.registry.index.close();
  const down = await http(reg.url, 'GET', '/readyz');
  t.equal(down.status, 503);
  t.same(down.json, { status: 'unavailable', checks: { index: 'failed', storage: 'ok' } });
});

t.test('no authentication with htpasswd and tokens configured, whatever credentials are sent', async (t) => {
  const auth = authConfig(t, { alice: 'wonderland' }, { token: { enabled: true } });
  const reg = await startRegistry(t, auth.overrides);
  t.equal((await http(reg.url, 'GET', '/v2/')).status, 401, 'auth is on: /v2/ challenges');
  for (const p of ['/healthz', '/readyz']) {
    const anon = await http(reg.url, 'GET', p);
    t.equal(anon.status, 200, `${p} anonymous`);
    t.equal(anon.headers.get('www-authenticate'), null, `${p} sends no challenge`);
    t.equal((await http(reg.url, 'GET', p, undefined, { authorization: basic('alice', 'wrong') })).status, 200, `${p} ignores bad Basic credentials`);
    t.equal((await http(reg.url, 'GET', p, undefined, { authorization: 'Bearer not-a-token' })).status, 200, `${p} ignores a bad Bearer token`);
  }
});

t.test('request lines for the probes are logged at debug, not info', async (t) => {
  const dir = tempDir(t);
  const lines: { level: number; msg: string; url?: string; status?: number }[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.push(JSON.parse(l));
      cb();
    },
  });
  const config = defaultConfig({
    storage: { local: { root: path.join(dir, 'blobs'), fsync: false } },
    index: { path: path.join(dir, 'index.db') },
  });
  const app = await buildApp(config, { logger: { level: 'debug', stream } });
  t.teardown(() => app.close());
  await app.listen({ host: '127.0.0.1', port: 0 });
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  await http(url, 'GET', '/healthz');
  await http(url, 'GET', '/readyz');
  await http(url, 'GET', '/v2/');

  const requests = lines.filter((l) => l.msg === 'request');
  const byRoute = (url: string) => requests.filter((l) => l.url === url);
  t.equal(byRoute('/healthz').length, 1, 'one line for /healthz');
  t.equal(byRoute('/healthz')[0]?.level, 20, '/healthz at debug (20)');
  t.equal(byRoute('/readyz').length, 1, 'one line for /readyz');
  t.equal(byRoute('/readyz')[0]?.level, 20, '/readyz at debug (20)');
  t.equal(byRoute('/v2/')[0]?.level, 30, 'other routes stay at info (30)');
});

t.test('a stopping server: /readyz says so (503), other requests that still reach it are served with Connection: close', async (t) => {
  const reg = await startRegistry(t);
  const { connect } = await import('node:net');
  // Requests begun before the stop and finished after it: a proxy's keep-alive connection in use.
  const begin = (head: string) => {
    const socket = connect(reg.port, '127.0.0.1');
    let answer = '';
    socket.on('data', (d) => (answer += d));
    const ended = new Promise<string>((resolve) => socket.on('close', () => resolve(answer)));
    socket.write(head);
    return { socket, ended };
  };
  const post = await http(reg.url, 'POST', '/v2/stopping/app/blobs/uploads/');
  const loc = new URL(post.headers.get('location')!, reg.url).pathname;
  const upload = begin(`PATCH ${loc} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 10\r\n\r\n12345`);
  const probe = begin('GET /readyz HTTP/1.1\r\nHost: x\r\n');
  const ping = begin('GET /v2/ HTTP/1.1\r\nHost: x\r\n');
  await new Promise((r) => setTimeout(r, 200));
  const closed = reg.close();
  await new Promise((r) => setTimeout(r, 200));
  probe.socket.write('\r\n');
  ping.socket.write('\r\n');
  upload.socket.write('67890');
  const [readyz, v2, patched] = await Promise.all([probe.ended, ping.ended, upload.ended]);
  t.match(readyz, /^HTTP\/1\.1 503 /, '/readyz: 503 while stopping');
  t.match(readyz, /\{"status":"stopping","checks":\{\}\}$/, 'saying so');
  t.match(v2, /^HTTP\/1\.1 200 /, 'a request that still arrives is served, not refused');
  t.match(patched, /^HTTP\/1\.1 202 /, 'the upload in flight finishes');
  for (const [what, answer] of [['readyz', readyz], ['/v2/', v2], ['PATCH', patched]]) t.match(answer, /\r\nConnection: close\r\n/i, `${what}: Connection: close`);
  await closed;
});
