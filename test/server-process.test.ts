import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { request } from 'node:http';
import t from 'tap';
import { freePort, serverEnv, spawnServer } from './helpers/process';
import { tempDir } from './helpers/server';
import { imageChain } from './helpers/v1';

/** v1 image calls name their repository with the token of the index call (unsigned: no authentication here). */
const V1_TOKEN = { authorization: 'Token signature=unsigned,repository="proc/v1",access=write' };

// The real process: what `npm start` runs (dist/server.js, built by `npm test` first).

t.test('a bad config stops the start with a message naming the key', async (t) => {
  const port = await freePort();
  const srv = await spawnServer(t, { REGISTRY_HTTP_ADDR: `127.0.0.1:${port}`, REGISTRY_PROTOCOLS_V1: 'perhaps' }, port, {
    waitReady: false,
  });
  t.equal(await srv.exited, 2);
  t.match(srv.stderr(), /configuration error: REGISTRY_PROTOCOLS_V1 \(protocols\.v1\): expected true or false/);
});

t.test('an unreachable PostgreSQL index stops the start with one line naming its host, never the password', async (t) => {
  const port = await freePort();
  const dead = await freePort(); // nothing listens there
  const srv = await spawnServer(
    t,
    { REGISTRY_HTTP_ADDR: `127.0.0.1:${port}`, REGISTRY_INDEX_DRIVER: 'postgres', REGISTRY_INDEX_POSTGRES_URL: `postgres://registry:s3cret-pw@127.0.0.1:${dead}/registry`, REGISTRY_STORAGE_LOCAL_SHARED: 'true' },
    port,
    { waitReady: false },
  );
  t.equal(await srv.exited, 2);
  t.match(srv.stderr(), new RegExp(`^registry: cannot connect to the PostgreSQL index at 127\\.0\\.0\\.1:${dead}: .*ECONNREFUSED`, 'm'));
  t.notMatch(srv.stderr(), /s3cret-pw|\n\s+at /, 'no password, no stack trace');
});

t.test('local storage with the PostgreSQL index is refused unless the directory is stated shared', async (t) => {
  const port = await freePort();
  const srv = await spawnServer(
    t,
    { REGISTRY_HTTP_ADDR: `127.0.0.1:${port}`, REGISTRY_INDEX_DRIVER: 'postgres', REGISTRY_INDEX_POSTGRES_URL: `postgres://registry@127.0.0.1:${await freePort()}/registry` },
    port,
    { waitReady: false },
  );
  t.equal(await srv.exited, 2, 'exit status 2, before any connection is tried');
  t.equal(
    srv.stderr(),
    'registry: configuration error: storage.driver local with index.driver postgres: replicas would each keep blobs the others cannot read; use storage.driver s3, or set storage.local.shared: true (REGISTRY_STORAGE_LOCAL_SHARED) if storage.local.root is a file system every replica mounts\n',
    'one line naming the keys',
  );
});

t.test('env overrides, one log line per request, nothing secret, graceful SIGTERM', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  const env = {
    REGISTRY_HTTP_ADDR: `127.0.0.1:${port}`,
    REGISTRY_STORAGE_LOCAL_ROOT: path.join(dir, 'x/blobs'),
    REGISTRY_INDEX_PATH: path.join(dir, 'x/index.db'),
  };
  const srv = await spawnServer(t, env, port);
  t.ok(existsSync(path.join(dir, 'x/index.db')), 'index where REGISTRY_INDEX_PATH says');
  t.ok(existsSync(path.join(dir, 'x/blobs')), 'blobs where REGISTRY_STORAGE_LOCAL_ROOT says');

  const secret = Buffer.from('alice:hunter2-secret').toString('base64');
  await fetch(`${srv.url}/v1/users/`, { headers: { authorization: `Basic ${secret}`, cookie: 'session=cookie-secret' } }).then((r) => r.text());

  // Start a layer upload and keep it in flight across SIGTERM.
  const [img] = imageChain(1);
  await fetch(`${srv.url}/v1/images/${img!.id}/json`, { method: 'PUT', body: img!.json, headers: V1_TOKEN }).then((r) => r.text());
  let status = 0;
  const inflight = new Promise<void>((resolve, reject) => {
    const req = request(`${srv.url}/v1/images/${img!.id}/layer`, { method: 'PUT', headers: V1_TOKEN }, (res) => {
      status = res.statusCode!;
      res.resume();
      res.on('end', resolve);
    });
    req.on('error', reject);
    req.write(img!.layer.subarray(0, 100));
    setTimeout(() => {
      srv.child.kill('SIGTERM');
      setTimeout(() => req.end(img!.layer.subarray(100)), 500);
    }, 200);
  });
  await inflight;
  t.equal(status, 200, 'the in-flight upload finished after SIGTERM');
  t.equal(await srv.exited, 0, 'clean exit');

  const lines = srv.stdout().trim().split('\n').map((l) => JSON.parse(l));
  const reqLines = lines.filter((l) => l.msg === 'request' && l.route !== '/v1/_ping'); // readiness polls
  t.equal(reqLines.length, 3, 'one line per request');
  t.match(reqLines[0], { reqId: String, method: 'GET', route: '/v1/users', status: 200, ms: Number });
  t.match(reqLines[2], { method: 'PUT', route: '/v1/images/:id/layer', status: 200 });
  t.notMatch(srv.stdout(), /hunter2|cookie-secret|YWxpY2U6/, 'no credential or cookie in the log');
  t.match(srv.stdout(), /shutting down/);
});

t.test('npm start exposes gc, so memory is handed back when the server goes quiet (src/idle-gc.ts)', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  const srv = await spawnServer(
    t,
    {
      REGISTRY_HTTP_ADDR: `127.0.0.1:${port}`,
      REGISTRY_STORAGE_LOCAL_ROOT: path.join(dir, 'blobs'),
      REGISTRY_INDEX_PATH: path.join(dir, 'index.db'),
      REGISTRY_LOG_LEVEL: 'debug',
    },
    port,
  );
  t.match(srv.stdout(), /"idleGc":true,"msg":"idle collection on"/);
  // A few pushes at once leave spare upload slabs behind: once the server is quiet they are let go, and
  // collected (however few; the 16 MiB threshold is for garbage alone).
  await Promise.all(
    Array.from({ length: 4 }, async (_, i) => {
      const data = randomBytes(1024 * 1024);
      const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
      const post = await fetch(`${srv.url}/v2/burst/r${i}/blobs/uploads/`, { method: 'POST' });
      const put = await fetch(new URL(`${post.headers.get('location')}?digest=${digest}`, srv.url), { method: 'PUT', body: data });
      t.equal(put.status, 201);
    }),
  );
  let collection: { freedMiB: number; releasedKiB: number } | undefined;
  for (let waited = 0; !collection && waited < 15_000; waited += 100) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const line = srv.stdout().split('\n').find((l) => l.includes('"msg":"idle collection"'));
    collection = line ? JSON.parse(line) : undefined;
  }
  t.match(collection, { freedMiB: Number, ms: Number }, 'once quiet, the server collected');
  t.ok(collection && collection.releasedKiB > 0, `after letting go of the spare upload slabs: ${collection?.releasedKiB} KiB`);
  t.equal(await srv.stop(), 0);
});

t.test('restart with data intact (real process)', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  const env = {
    REGISTRY_HTTP_ADDR: `127.0.0.1:${port}`,
    REGISTRY_STORAGE_LOCAL_ROOT: path.join(dir, 'blobs'),
    REGISTRY_INDEX_PATH: path.join(dir, 'index.db'),
    REGISTRY_LOG_LEVEL: 'warn',
  };
  let srv = await spawnServer(t, env, port);
  const { pushV1, pullV1 } = await import('./helpers/v1');
  const chain = imageChain(2);
  await pushV1(srv.url, 'durable/app', 'latest', chain);
  t.equal(await srv.stop('SIGINT'), 0);
  srv = await spawnServer(t, env, port);
  const pulled = await pullV1(srv.url, 'durable/app', 'latest');
  t.ok(pulled.every((p, i) => p.layer.equals(chain[i]!.layer) && p.json.equals(chain[i]!.json)));
  t.equal(await srv.stop(), 0);
});

t.test('with authentication: an audit line names the user, no secret is logged', async (t) => {
  const { authConfig, basic } = await import('./helpers/auth');
  const dir = tempDir(t);
  const port = await freePort();
  const { htpasswd, dir: authDir } = authConfig(t, { alice: 'alice-secret-pw' });
  const srv = await spawnServer(
    t,
    {
      REGISTRY_HTTP_ADDR: `127.0.0.1:${port}`,
      REGISTRY_STORAGE_LOCAL_ROOT: path.join(dir, 'blobs'),
      REGISTRY_INDEX_PATH: path.join(dir, 'index.db'),
      REGISTRY_AUTH_HTPASSWD_PATH: htpasswd,
      REGISTRY_AUTH_TOKEN_ENABLED: 'true',
      REGISTRY_AUTH_TOKEN_SECRET_FILE: path.join(authDir, 'token.key'),
    },
    port,
  );
  const alice = { authorization: basic('alice', 'alice-secret-pw') };
  const { buildImage, sha256 } = await import('./helpers/v2');
  const img = buildImage({ layers: 1 });
  for (const b of [img.config, ...img.layers]) {
    const r = await fetch(`${srv.url}/v2/team/app/blobs/uploads/?digest=${b.digest}`, { method: 'POST', body: b.data, headers: alice });
    t.equal(r.status, 201);
  }
  let r = await fetch(`${srv.url}/v2/team/app/manifests/v1`, { method: 'PUT', body: img.manifest, headers: { ...alice, 'content-type': img.mediaType } });
  t.equal(r.status, 201);
  r = await fetch(`${srv.url}/token?service=registry&scope=repository:team/app:pull`, { headers: alice });
  const { token } = (await r.json()) as { token: string };
  r = await fetch(`${srv.url}/v2/team/app/manifests/v1`, { headers: { authorization: `Bearer ${token}` } });
  t.equal(r.status, 200);
  await r.arrayBuffer();
  r = await fetch(`${srv.url}/v2/team/app/manifests/${sha256(img.manifest)}`, { method: 'DELETE', headers: alice });
  t.equal(r.status, 202);
  await fetch(`${srv.url}/v2/`, { headers: { authorization: 'Basic ' + Buffer.from('alice:wrong-guess-pw').toString('base64') } }).then((x) => x.text());
  t.equal(await srv.stop(), 0);

  const lines = srv.stdout().trim().split('\n').map((l) => JSON.parse(l));
  const audits = lines.filter((l) => l.msg === 'audit').map((l) => l.audit);
  t.match(audits, [
    { action: 'push', repository: 'team/app', reference: 'v1', user: 'alice', status: 201 },
    { action: 'delete', repository: 'team/app', user: 'alice', status: 202 },
  ]);
  t.equal(audits.length, 2, 'pushes and deletes only');
  t.notMatch(srv.stdout() + srv.stderr(), /alice-secret-pw|wrong-guess-pw|YWxpY2U6|Bearer|eyJ/, 'no password, Authorization header or token logged');
});

t.test('a file size limit on the real process: 507 STORAGE_FULL, nothing half-stored, and the upload goes through once lifted', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  const root = path.join(dir, 'blobs');
  const env = { REGISTRY_HTTP_ADDR: `127.0.0.1:${port}`, REGISTRY_STORAGE_LOCAL_ROOT: root, REGISTRY_INDEX_PATH: path.join(dir, 'index.db'), REGISTRY_LOG_LEVEL: 'warn' };
  const srv = await spawnServer(t, env, port);
  // Past the limit a write fails with EFBIG, half-way through the body: the answer comes before the client
  // has sent it all.
  // The soft limit only, so that lifting it needs no privilege.
  const limit = (bytes: string) => spawnSync('prlimit', ['--pid', String(srv.child.pid), `--fsize=${bytes}:`], { encoding: 'utf8' });
  t.equal(limit(String(4 * 1024 * 1024)).status, 0, 'prlimit');
  const data = randomBytes(8 * 1024 * 1024);
  const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
  const post = await fetch(`${srv.url}/v2/big/r/blobs/uploads/`, { method: 'POST' });
  const location = new URL(`${post.headers.get('location')}?digest=${digest}`, srv.url).href;
  const put = await fetch(location, { method: 'PUT', body: data, headers: { 'content-type': 'application/octet-stream' } });
  t.equal(put.status, 507);
  t.match(await put.json(), { errors: [{ code: 'STORAGE_FULL', message: 'the blob is larger than the storage can hold in one file' }] });
  // Whether the server had read the whole body, drained the rest, or abandoned it half-way (then it answers
  // Connection: close) depends on timing. Either way the next request on the connection, if it is kept,
  // must not hang (an abandoned body on a kept connection hung it ~76 s): each one below has 10 s.
  const soon = { signal: AbortSignal.timeout(10_000) };
  // v1 answers the same way, in its own body.
  const [img] = imageChain(1);
  t.equal((await fetch(`${srv.url}/v1/images/${img!.id}/json`, { method: 'PUT', body: img!.json, headers: V1_TOKEN, ...soon })).status, 200);
  const layer = await fetch(`${srv.url}/v1/images/${img!.id}/layer`, { method: 'PUT', body: data, headers: V1_TOKEN, ...soon });
  t.same([layer.status, await layer.json()], [507, { error: 'the blob is larger than the storage can hold in one file' }]);
  t.equal((await fetch(`${srv.url}/v2/big/r/blobs/${digest}`, { method: 'HEAD', ...soon })).status, 404, 'no blob visible');
  const staged = readdirSync(path.join(root, 'uploads'));
  t.same(staged.map((f) => statSync(path.join(root, 'uploads', f)).size), [0], 'the staged bytes rolled back to the upload\'s size (the v1 one is gone)');

  t.equal(limit('unlimited').status, 0, 'limit lifted');
  const again = await fetch(location, { method: 'PUT', body: data, headers: { 'content-type': 'application/octet-stream' }, signal: AbortSignal.timeout(10_000) });
  t.equal(again.status, 201, 'the same upload, retried once the limit is lifted (it hung ~76 s on a reused connection)');
  const got = Buffer.from(await (await fetch(`${srv.url}/v2/big/r/blobs/${digest}`)).arrayBuffer());
  t.ok(got.equals(data), 'every byte');
  t.equal(await srv.stop(), 0);
});

t.test('under a virtual memory limit (ulimit -v) uploads with directWrites on still work, through the page cache', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  const env = serverEnv(dir, port, { REGISTRY_STORAGE_LOCAL_DIRECT_WRITES: 'true' });
  const srv = await spawnServer(t, env, port);
  // Room for the upload workers' threads and heaps, not for the ~10 GiB WebAssembly reserves (the workers
  // start with the first upload). It failed every upload with 500 before.
  const vmKiB = Number(/^VmSize:\s+(\d+)/m.exec(readFileSync(`/proc/${srv.child.pid}/status`, 'utf8'))![1]);
  const limit = vmKiB * 1024 + 2 * 1024 ** 3;
  t.equal(spawnSync('prlimit', ['--pid', String(srv.child.pid), `--as=${limit}:`], { encoding: 'utf8' }).status, 0, 'prlimit');
  // At once, so that both workers start.
  const pushes = [1000, 3 * 1024 * 1024 + 5].map(async (size) => {
    const data = randomBytes(size);
    const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
    const post = await fetch(`${srv.url}/v2/vm/r/blobs/uploads/`, { method: 'POST' });
    const put = await fetch(new URL(`${post.headers.get('location')}?digest=${digest}`, srv.url), { method: 'PUT', body: data });
    t.equal(put.status, 201, `a ${size}-byte push`);
    const got = Buffer.from(await (await fetch(`${srv.url}/v2/vm/r/blobs/${digest}`)).arrayBuffer());
    t.ok(got.equals(data), 'every byte');
  });
  await Promise.all(pushes);
  t.equal(await srv.stop(), 0);
  t.match(srv.stderr(), /REGISTRY_NO_DIRECT_WRITES.*written through the page cache, not with O_DIRECT/, 'the operator is told, once');
  t.equal(srv.stderr().match(/REGISTRY_NO_DIRECT_WRITES/g)?.length, 1);
});
