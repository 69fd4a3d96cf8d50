import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import t from 'tap';
import { authConfig, basic } from '../helpers/auth';
import { freePort, serverEnv, spawnServer } from '../helpers/process';
import { parsePrometheusText, valueOf, type Family } from '../helpers/prom-text';
import { startRegistry, tempDir } from '../helpers/server';
import { buildImage, pushImage } from '../helpers/v2';

// /metrics served by a running registry: on the main port or its own listener, with and without its own
// Basic credentials, and the series moving as requests go through.

async function scrape(url: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string; families?: Map<string, Family> }> {
  const res = await fetch(url, { headers });
  const text = await res.text();
  return { status: res.status, text, families: res.status === 200 ? parsePrometheusText(text) : undefined };
}

t.test('on the main port: requests by route pattern, never a repository name or digest', async (t) => {
  const reg = await startRegistry(t, { metrics: { enabled: true } });
  const image = buildImage({ layers: 2, layerBytes: 3000 });
  await pushImage(reg.url, 'secret-team/hidden-app', 'v1', image);
  const got = await fetch(`${reg.url}/v2/secret-team/hidden-app/manifests/v1`, { headers: { accept: image.mediaType } });
  t.equal(got.status, 200);
  await got.arrayBuffer();
  await (await fetch(`${reg.url}/v2/secret-team/hidden-app/manifests/nope`)).arrayBuffer();
  await (await fetch(`${reg.url}/no/such/path`)).arrayBuffer();

  const { status, text, families } = await scrape(`${reg.url}/metrics`);
  t.equal(status, 200);
  const f = families!;
  t.notMatch(text, /secret-team|hidden-app|sha256:/, 'no repository name or digest anywhere');
  const manifest = '/v2/<name>/manifests/<reference>';
  t.equal(valueOf(f, 'registry_http_requests_total', { method: 'PUT', route: manifest, code: '201' }), 1, 'the manifest PUT');
  t.equal(valueOf(f, 'registry_http_requests_total', { method: 'GET', route: manifest, code: '200' }), 1, 'the manifest GET');
  t.equal(valueOf(f, 'registry_http_requests_total', { method: 'GET', route: manifest, code: '404' }), 1, 'the unknown tag');
  t.equal(valueOf(f, 'registry_http_requests_total', { method: 'POST', route: '/v2/<name>/blobs/uploads/', code: '202' }), 3, 'three uploads started');
  t.equal(valueOf(f, 'registry_http_requests_total', { method: 'PUT', route: '/v2/<name>/blobs/uploads/<uuid>', code: '201' }), 3, 'and finished');
  t.equal(valueOf(f, 'registry_http_requests_total', { route: 'unmatched', code: '404' }), 1, 'an unknown path: unmatched');
  t.equal(valueOf(f, 'registry_http_request_duration_seconds_count', { method: 'GET', route: manifest }), 2, 'latency observed per request');
  const blobBytes = [image.config, ...image.layers].reduce((n, b) => n + b.data.length, 0);
  // A manifest is stored as a blob too (one-shot, from its PUT body).
  const stored = blobBytes + image.manifest.length;
  t.equal(valueOf(f, 'registry_upload_bytes_total'), stored, 'bytes stored: exactly the blobs and the manifest');
  t.equal(valueOf(f, 'registry_uploads_completed_total'), 4, 'three blob uploads and the manifest');
  t.ok(valueOf(f, 'registry_http_received_bytes_total', { protocol: 'v2' }) >= blobBytes + image.manifest.length, 'v2 bytes received: at least the bodies');
  t.ok(valueOf(f, 'registry_http_sent_bytes_total', { protocol: 'v2' }) >= image.manifest.length, 'v2 bytes sent: at least the manifest');
  t.equal(valueOf(f, 'registry_http_received_bytes_total', { protocol: 'v1' }), 0, 'nothing over v1');
  t.equal(valueOf(f, 'registry_blobs'), 4, 'blob count from the index (the manifest is one)');
  t.equal(valueOf(f, 'registry_blob_bytes'), stored, 'blob bytes from the index');
  t.ok(valueOf(f, 'registry_index_transaction_duration_seconds_count') >= 4, 'index transactions timed');
  t.ok(valueOf(f, 'registry_write_durable_wait_seconds_count') >= 7, 'every write waited for durability (and was timed)');
  t.ok(valueOf(f, 'registry_storage_operations_total', { driver: reg.config.storage.driver, operation: 'commitUpload' }) >= 3, 'storage operations');
  t.ok(valueOf(f, 'process_resident_memory_bytes') > 0, 'RSS');

  const again = (await scrape(`${reg.url}/metrics`)).families!;
  t.equal(valueOf(again, 'registry_http_requests_total', { method: 'GET', route: '/metrics', code: '200' }), 1, 'the scrape itself is counted');
});

t.test('metrics.enabled false: no /metrics', async (t) => {
  const reg = await startRegistry(t);
  const res = await fetch(`${reg.url}/metrics`);
  t.equal(res.status, 404);
});

t.test('own Basic credentials on the main port, whatever the registry\'s users and rules', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'metrics-password');
  writeFileSync(file, 'scrape-me-please\n');
  const auth = authConfig(t, { alice: 'alice-pw' });
  const reg = await startRegistry(t, { ...auth.overrides, metrics: { enabled: true, user: 'prometheus', passwordFile: file } });

  t.equal((await scrape(`${reg.url}/metrics`)).status, 401, 'anonymous: 401');
  const anon = await fetch(`${reg.url}/metrics`);
  t.equal(anon.headers.get('www-authenticate'), 'Basic realm="metrics"');
  t.equal((await scrape(`${reg.url}/metrics`, { authorization: basic('alice', 'alice-pw') })).status, 401, 'a registry user is no scraper');
  t.equal((await scrape(`${reg.url}/metrics`, { authorization: basic('prometheus', 'wrong') })).status, 401, 'wrong password');
  const ok = await scrape(`${reg.url}/metrics`, { authorization: basic('prometheus', 'scrape-me-please') });
  t.equal(ok.status, 200, 'the scraper gets in (without any registry credentials)');

  // The registry's own authentication is counted.
  await (await fetch(`${reg.url}/v2/`, { headers: { authorization: basic('alice', 'bad') } })).arrayBuffer();
  await (await fetch(`${reg.url}/v2/`, { headers: { authorization: basic('alice', 'alice-pw') } })).arrayBuffer();
  const f = (await scrape(`${reg.url}/metrics`, { authorization: basic('prometheus', 'scrape-me-please') })).families!;
  t.equal(valueOf(f, 'registry_auth_attempts_total', { scheme: 'basic', result: 'failure' }), 1, 'one failed login');
  t.equal(valueOf(f, 'registry_auth_attempts_total', { scheme: 'basic', result: 'success' }), 1, 'one good one');
  t.notMatch(ok.text, /scrape-me-please|alice-pw/, 'no secret in the series');
});

t.test('metrics.addr: a listener of its own that serves only /metrics; the main port has none', async (t) => {
  const port = await freePort();
  const reg = await startRegistry(t, { metrics: { enabled: true, addr: `127.0.0.1:${port}`, user: 'p', password: 'pw' } });
  t.equal((await fetch(`${reg.url}/metrics`)).status, 404, 'not on the main port');
  const m = `http://127.0.0.1:${port}`;
  t.equal((await scrape(`${m}/metrics`)).status, 401, 'credentials asked there too');
  const ok = await scrape(`${m}/metrics`, { authorization: basic('p', 'pw') });
  t.equal(ok.status, 200);
  t.ok(ok.families!.has('registry_http_requests_total'));
  t.equal((await fetch(`${m}/v2/`)).status, 404, 'nothing else is served there');
  t.equal((await fetch(`${m}/metrics`, { method: 'POST', headers: { authorization: basic('p', 'pw') } })).status, 405);
  const head = await fetch(`${m}/metrics`, { method: 'HEAD', headers: { authorization: basic('p', 'pw') } });
  t.equal(head.status, 200, 'HEAD');
  await reg.close();
  await t.rejects(fetch(`${m}/metrics`), 'closed with the registry');
});

t.test('bad metrics config stops the start naming the key', async (t) => {
  const dir = tempDir(t);
  const start = async (extra: Record<string, string>) => {
    const port = await freePort();
    const srv = await spawnServer(t, serverEnv(dir, port, extra), port, { waitReady: false });
    return { code: await srv.exited, stderr: srv.stderr() };
  };
  let r = await start({ REGISTRY_METRICS_ENABLED: 'true', REGISTRY_METRICS_USER: 'p' });
  t.equal(r.code, 2, 'a user without a password');
  t.match(r.stderr, /configuration error: metrics\.user: set metrics\.passwordFile/);
  r = await start({ REGISTRY_METRICS_ENABLED: 'true', REGISTRY_METRICS_ADDR: 'nowhere' });
  t.equal(r.code, 2);
  t.match(r.stderr, /configuration error: REGISTRY_METRICS_ADDR \(metrics\.addr\): expected host:port/);
  r = await start({ REGISTRY_METRICS_ENABLED: 'true', REGISTRY_METRICS_USER: 'p', REGISTRY_METRICS_PASSWORD_FILE: path.join(dir, 'missing') });
  t.equal(r.code, 2, 'an unreadable password file');
  t.match(r.stderr, /configuration error: metrics\.passwordFile: cannot read/);
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');

  const busy = createServer();
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
  t.teardown(() => busy.close());
  const taken = (busy.address() as { port: number }).port;
  r = await start({ REGISTRY_METRICS_ENABLED: 'true', REGISTRY_METRICS_ADDR: `127.0.0.1:${taken}` });
  t.not(r.code, 0, 'an address in use');
  t.match(r.stderr, /metrics\.addr: cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE/);
});
