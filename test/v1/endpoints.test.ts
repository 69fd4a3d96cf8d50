import { randomBytes } from 'node:crypto';
import t from 'tap';
import { startRegistry, type TestRegistry } from '../helpers/server';
import { http } from '../helpers/http';
import { imageChain, pushV1, type V1Image } from '../helpers/v1';

// Every v1 endpoint and every error case of the v1 issue, over real HTTP.

/** Image calls carry a v1 token naming their repository, as Docker 1.x sends it (unsigned: no authentication here). */
const IMAGES_REPO = 'test/images';
const imageToken = { authorization: `Token signature=unsigned,repository="${IMAGES_REPO}",access=write` };

const req = (reg: TestRegistry, method: string, path: string, body?: RequestInit['body'], headers: Record<string, string> = {}) =>
  http(reg.url, method, path, body, path.startsWith('/v1/images/') ? { ...imageToken, ...headers } : headers);

async function putImage(reg: TestRegistry, img: V1Image, opts: { checksum?: string } = {}) {
  const a = await req(reg, 'PUT', `/v1/images/${img.id}/json`, img.json);
  const b = await req(reg, 'PUT', `/v1/images/${img.id}/layer`, img.layer);
  const c = await req(reg, 'PUT', `/v1/images/${img.id}/checksum`, undefined, {
    'x-docker-checksum-payload': opts.checksum ?? img.checksum,
  });
  return [a.status, b.status, c.status];
}

t.test('ping', async (t) => {
  const reg = await startRegistry(t);
  for (const path of ['/_ping', '/v1/_ping']) {
    const r = await req(reg, 'GET', path);
    t.equal(r.status, 200, path);
    t.same(r.json, {});
    t.equal(r.headers.get('x-docker-registry-standalone'), 'True');
    t.equal(r.headers.get('cache-control'), 'no-cache');
    t.equal(r.headers.get('pragma'), 'no-cache');
    t.equal(r.headers.get('expires'), '-1');
  }
  const head = await req(reg, 'HEAD', '/v1/_ping');
  t.equal(head.status, 200, 'HEAD ping');
});

t.test('protocols.v1: false turns the v1 tree off', async (t) => {
  const reg = await startRegistry(t, { protocols: { v1: false } });
  t.equal((await req(reg, 'GET', '/v1/_ping')).status, 404);
  t.equal((await req(reg, 'GET', '/v1/search')).status, 404);
});

t.test('image json, layer, checksum, ancestry', async (t) => {
  const reg = await startRegistry(t);
  const [root, child] = imageChain(2);

  t.test('guards before anything exists', async (t) => {
    let r = await req(reg, 'GET', '/v1/images/nothex/json');
    t.equal(r.status, 404);
    t.same(r.json, { error: 'Invalid image ID' });
    r = await req(reg, 'GET', `/v1/images/${root!.id}/json`);
    t.same([r.status, r.json], [404, { error: 'Image not found' }]);
    r = await req(reg, 'PUT', `/v1/images/${root!.id}/layer`, root!.layer);
    t.same([r.status, r.json], [404, { error: 'Image not found' }], 'layer before json');
    r = await req(reg, 'PUT', `/v1/images/${root!.id}/checksum`, undefined, { 'x-docker-checksum-payload': root!.checksum });
    t.same([r.status, r.json], [404, { error: 'Image not found' }], 'checksum before json');
    r = await req(reg, 'PUT', `/v1/images/${'a'.repeat(63)}/json`, root!.json);
    t.same([r.status, r.json], [404, { error: 'Invalid image ID' }], '63 hex chars');
    r = await req(reg, 'GET', `/v1/images/${'A'.repeat(64)}/layer`);
    t.equal(r.status, 404, 'upper-case id');
  });

  t.test('PUT json validation', async (t) => {
    const url = `/v1/images/${root!.id}/json`;
    let r = await req(reg, 'PUT', url, '{not json');
    t.same([r.status, r.json], [400, { error: 'Invalid JSON' }]);
    r = await req(reg, 'PUT', url, '');
    t.same([r.status, r.json], [400, { error: 'Invalid JSON' }], 'empty body');
    r = await req(reg, 'PUT', url, '[1,2]');
    t.same([r.status, r.json], [400, { error: 'Invalid JSON' }], 'array');
    r = await req(reg, 'PUT', url, '{"parent": null}');
    t.same([r.status, r.json], [400, { error: "Missing key `id' in JSON" }]);
    r = await req(reg, 'PUT', url, JSON.stringify({ id: child!.id }));
    t.same([r.status, r.json], [400, { error: 'JSON data contains invalid id' }], 'id differs from URL');
    r = await req(reg, 'PUT', `/v1/images/${child!.id}/json`, child!.json);
    t.same([r.status, r.json], [400, { error: 'Image depends on a non existing parent' }]);
    r = await req(reg, 'PUT', url, Buffer.alloc(5 * 1024 * 1024, 0x20));
    t.equal(r.status, 413, 'body over http.maxJsonBody');
    t.match(r.json, { error: /too large|larger/ });
  });

  t.test('checksum before layer, mismatch, then success', async (t) => {
    let r = await req(reg, 'PUT', `/v1/images/${root!.id}/json`, root!.json);
    t.same([r.status, r.json], [200, true]);
    r = await req(reg, 'PUT', `/v1/images/${root!.id}/checksum`, undefined, { 'x-docker-checksum-payload': root!.checksum });
    t.equal(r.status, 400, 'checksum before layer is a clear 400, not a 500');
    t.match(r.json, { error: /layer/i });
    r = await req(reg, 'PUT', `/v1/images/${root!.id}/checksum`);
    t.equal(r.status, 412, 'no X-Docker-Checksum-Payload');
    r = await req(reg, 'PUT', `/v1/images/${root!.id}/checksum`, undefined, { 'x-docker-checksum-payload': '' });
    t.same([r.status, r.json], [400, { error: "Missing Image's checksum" }]);
    r = await req(reg, 'PUT', `/v1/images/${root!.id}/layer`, root!.layer);
    t.same([r.status, r.json], [200, true]);

    // In progress: invisible everywhere.
    for (const what of ['json', 'layer', 'ancestry']) {
      r = await req(reg, 'GET', `/v1/images/${root!.id}/${what}`);
      t.same([r.status, r.json], [400, { error: 'Image is being uploaded, retry later' }], `in-progress ${what}`);
    }
    r = await req(reg, 'PUT', `/v1/images/${root!.id}/checksum`, undefined, {
      'x-docker-checksum-payload': 'sha256:' + '0'.repeat(64),
    });
    t.same([r.status, r.json], [400, { error: 'Checksum mismatch' }]);
    r = await req(reg, 'GET', `/v1/images/${root!.id}/json`);
    t.equal(r.status, 400, 'still invisible after a mismatch');

    r = await req(reg, 'PUT', `/v1/images/${root!.id}/checksum`, undefined, { 'x-docker-checksum-payload': root!.checksum });
    t.same([r.status, r.json], [200, true]);
    r = await req(reg, 'PUT', `/v1/images/${root!.id}/checksum`, undefined, { 'x-docker-checksum-payload': root!.checksum });
    t.same([r.status, r.json], [409, { error: 'Cannot set this image checksum' }]);
    r = await req(reg, 'PUT', `/v1/images/${root!.id}/json`, root!.json);
    t.same([r.status, r.json], [409, { error: 'Image already exists' }]);
    r = await req(reg, 'PUT', `/v1/images/${root!.id}/layer`, root!.layer);
    t.same([r.status, r.json], [409, { error: 'Image already exists' }]);
  });

  t.test('GET json and layer headers', async (t) => {
    t.same(await putImage(reg, child!), [200, 200, 200]);
    let r = await req(reg, 'GET', `/v1/images/${child!.id}/json`);
    t.equal(r.status, 200);
    t.ok(r.buf.equals(child!.json), 'exact JSON bytes');
    t.equal(r.headers.get('x-docker-size'), String(child!.layer.length));
    t.equal(r.headers.get('x-docker-checksum-payload'), child!.checksum);
    t.equal(r.headers.get('cache-control'), 'public, max-age=31536000');
    t.equal(r.headers.get('last-modified'), 'Thu, 01 Jan 1970 00:00:00 GMT');
    t.ok(Date.parse(r.headers.get('expires')!) > Date.now() + 364 * 24 * 3600 * 1000);

    r = await req(reg, 'GET', `/v1/images/${child!.id}/ancestry`);
    t.same(r.json, [child!.id, root!.id]);

    r = await req(reg, 'GET', `/v1/images/${child!.id}/layer`);
    t.equal(r.status, 200);
    t.ok(r.buf.equals(child!.layer));
    t.equal(r.headers.get('accept-ranges'), 'bytes');
    t.equal(r.headers.get('content-type'), 'application/octet-stream');
    t.equal(r.headers.get('content-length'), String(child!.layer.length));

    r = await req(reg, 'HEAD', `/v1/images/${child!.id}/layer`);
    t.equal(r.status, 200);
    t.equal(r.headers.get('content-length'), String(child!.layer.length), 'HEAD has the length');
    t.equal(r.buf.length, 0);

    r = await req(reg, 'GET', `/v1/images/${child!.id}/json`, undefined, { 'if-modified-since': 'Thu, 01 Jan 1970 00:00:00 GMT' });
    t.equal(r.status, 304, 'If-Modified-Since on a complete image');
    r = await req(reg, 'GET', `/v1/images/${'f'.repeat(64)}/json`, undefined, { 'if-modified-since': 'x' });
    t.equal(r.status, 404, 'but never 304 for a missing image');
  });

  t.test('layer ranges (RFC 9110)', async (t) => {
    const size = child!.layer.length;
    const url = `/v1/images/${child!.id}/layer`;
    let r = await req(reg, 'GET', url, undefined, { range: 'bytes=10-19' });
    t.equal(r.status, 206);
    t.equal(r.headers.get('content-range'), `bytes 10-19/${size}`);
    t.ok(r.buf.equals(child!.layer.subarray(10, 20)));
    r = await req(reg, 'GET', url, undefined, { range: `bytes=100-${size}` });
    t.equal(r.status, 206, 'Docker asks for end = size (one past): clamped');
    t.equal(r.headers.get('content-range'), `bytes 100-${size - 1}/${size}`);
    t.equal(r.buf.length, size - 100);
    r = await req(reg, 'GET', url, undefined, { range: 'bytes=0-0' });
    t.same([r.status, r.buf.length], [206, 1], 'a one-byte range is fine');
    r = await req(reg, 'GET', url, undefined, { range: 'bytes=-5' });
    t.ok(r.buf.equals(child!.layer.subarray(size - 5)), 'suffix range');
    r = await req(reg, 'GET', url, undefined, { range: `bytes=${size}-` });
    t.equal(r.status, 416, 'range past the end');
    t.equal(r.headers.get('content-range'), `bytes */${size}`);
    t.match(r.json, { error: /outside the blob/ }, 'in the v1 error body');
    r = await req(reg, 'GET', url, undefined, { range: 'bytes=20-10' });
    t.equal(r.status, 416, 'end before start');
    r = await req(reg, 'GET', url, undefined, { range: 'items=1-2' });
    t.equal(r.status, 200, 'unknown unit ignored');
  });

  t.test('an empty layer', async (t) => {
    const img = { ...imageChain(1)[0]! };
    img.layer = Buffer.alloc(0);
    img.checksum = (await import('../helpers/v1')).payloadChecksum(img.json, img.layer);
    t.same(await putImage(reg, img), [200, 200, 200]);
    const r = await req(reg, 'GET', `/v1/images/${img.id}/layer`);
    t.same([r.status, r.buf.length, r.headers.get('content-length')], [200, 0, '0']);
  });
});

t.test('concurrent PUTs of the same layer', async (t) => {
  const reg = await startRegistry(t);
  const [img] = imageChain(1, { layerBytes: 2 * 1024 * 1024 });
  await req(reg, 'PUT', `/v1/images/${img!.id}/json`, img!.json);
  const results = await Promise.all(
    Array.from({ length: 4 }, () => req(reg, 'PUT', `/v1/images/${img!.id}/layer`, img!.layer)),
  );
  t.same(results.map((r) => r.status), [200, 200, 200, 200]);
  const r = await req(reg, 'PUT', `/v1/images/${img!.id}/checksum`, undefined, { 'x-docker-checksum-payload': img!.checksum });
  t.equal(r.status, 200);
  const layer = await req(reg, 'GET', `/v1/images/${img!.id}/layer`);
  t.ok(layer.buf.equals(img!.layer), 'one intact copy');
  t.equal((reg.app.registry.index as unknown as { db?: unknown }) !== undefined, true);
});

t.test('tags and repositories', async (t) => {
  const reg = await startRegistry(t);
  const chain = imageChain(2);
  await pushV1(reg.url, 'ns/repo', 'latest', chain);
  const top = chain[1]!.id;

  let r = await req(reg, 'GET', '/v1/repositories/ns/repo/tags');
  t.same(r.json, { latest: top });
  r = await req(reg, 'GET', '/v1/repositories/ns/repo/tags/latest');
  t.same([r.status, r.json], [200, top]);
  r = await req(reg, 'GET', '/v1/repositories/ns/repo/tags/nope');
  t.same([r.status, r.json], [404, { error: 'Tag not found' }]);
  r = await req(reg, 'GET', '/v1/repositories/ns/missing/tags');
  t.same([r.status, r.json], [404, { error: 'Repository not found' }]);

  r = await req(reg, 'GET', '/v1/repositories/ns/repo/tags/latest/json');
  t.match(r.json, { arch: 'amd64', os: 'linux', docker_version: '1.5.0', docker_go_version: 'go1.4.1', kernel: '3.13.0-24-generic' });
  t.type((r.json as { last_update: unknown }).last_update, 'number');
  r = await req(reg, 'GET', '/v1/repositories/ns/repo/tags/other/json');
  t.same(r.json, { arch: 'amd64', docker_go_version: null, docker_version: null, kernel: null, last_update: null, os: 'linux' });
  r = await req(reg, 'GET', '/v1/repositories/ns/repo/json');
  t.match(r.json, { docker_version: '1.5.0' }, 'repository json is the latest tag json');

  r = await req(reg, 'PUT', '/v1/repositories/ns/repo/tags/-bad', JSON.stringify(top));
  t.equal(r.status, 400, 'invalid tag');
  t.match(r.json, { error: /Invalid tag name/ });
  r = await req(reg, 'PUT', `/v1/repositories/ns/repo/tags/${'x'.repeat(129)}`, JSON.stringify(top));
  t.equal(r.status, 400, 'tag too long');
  r = await req(reg, 'PUT', '/v1/repositories/ns/repo/tags/v1', '{"id":1}');
  t.same([r.status, r.json], [400, { error: 'Invalid data' }]);
  r = await req(reg, 'PUT', '/v1/repositories/ns/repo/tags/v1', JSON.stringify('f'.repeat(64)));
  t.same([r.status, r.json], [404, { error: 'Image not found' }]);
  r = await req(reg, 'PUT', '/v1/repositories/ns/repo/tags/v1', JSON.stringify(chain[0]!.id));
  t.same([r.status, r.json], [200, true]);

  r = await req(reg, 'DELETE', '/v1/repositories/ns/repo/tags/v1');
  t.same([r.status, r.json], [200, true]);
  r = await req(reg, 'DELETE', '/v1/repositories/ns/repo/tags/v1');
  t.same([r.status, r.json], [404, { error: 'Tag not found: v1' }]);

  r = await req(reg, 'GET', '/v1/repositories/ns/repo/properties');
  t.same(r.json, { access: 'public' });
  r = await req(reg, 'PUT', '/v1/repositories/ns/repo/properties', '{"access":"private"}');
  t.equal(r.status, 200);
  r = await req(reg, 'GET', '/v1/repositories/ns/repo/properties');
  t.same(r.json, { access: 'private' });
  r = await req(reg, 'PUT', '/v1/repositories/ns/repo/properties', '{}');
  t.equal(r.status, 400, 'missing access is a 400, not a 500');

  r = await req(reg, 'GET', '/v1/repositories/ns/repo/images');
  t.same(r.json, chain.map((c) => ({ id: c.id })));
  t.equal(r.headers.get('x-docker-endpoints'), reg.host);
  r = await req(reg, 'DELETE', '/v1/repositories/ns/repo/images');
  t.equal(r.status, 204);
  r = await req(reg, 'PUT', '/v1/repositories/ns/repo/auth');
  t.same([r.status, r.json], [200, 'OK']);

  r = await req(reg, 'DELETE', '/v1/repositories/ns/repo/');
  t.same([r.status, r.json], [200, true]);
  r = await req(reg, 'GET', '/v1/repositories/ns/repo/tags');
  t.equal(r.status, 404, 'repository gone');
  r = await req(reg, 'DELETE', '/v1/repositories/ns/repo');
  t.same([r.status, r.json], [404, { error: 'Repository not found' }]);
  r = await http(reg.url, 'GET', `/v1/images/${top}/json`);
  t.equal(r.status, 404, "a repository's images go with it (each repository has its own)");

  await pushV1(reg.url, 'ns/again', 'latest', chain);
  r = await req(reg, 'DELETE', '/v1/repositories/ns/again/tags');
  t.same([r.status, r.json], [200, true], 'DELETE .../tags deletes the repository');
});

t.test('index endpoints', async (t) => {
  const reg = await startRegistry(t);
  let r = await req(reg, 'PUT', '/v1/repositories/a/b/', 'not json');
  t.same([r.status, r.json], [400, { error: 'Error Decoding JSON' }]);
  r = await req(reg, 'PUT', '/v1/repositories/a/b/', '{"id":"x"}');
  t.same([r.status, r.json], [400, { error: 'Invalid data' }]);
  r = await req(reg, 'PUT', '/v1/repositories/a/b/', '[{"id":"zz"}]');
  t.same([r.status, r.json], [404, { error: 'Invalid image ID' }]);
  r = await req(reg, 'GET', '/v1/repositories/a/b/images');
  t.same([r.status, r.json], [404, { error: 'images not found' }]);

  const id = randomBytes(32).toString('hex');
  r = await req(reg, 'PUT', '/v1/repositories/a/b', JSON.stringify([{ id, Tag: 'latest' }]), { 'x-docker-token': 'true' });
  t.equal(r.status, 200, 'without the trailing slash too');
  t.equal(r.headers.get('x-docker-endpoints'), reg.host);
  t.match(r.headers.get('x-docker-token'), /^signature=\w+,repository="a\/b",access=write$/);
  t.equal(r.headers.get('www-authenticate'), `Token ${r.headers.get('x-docker-token')}`);
  r = await req(reg, 'PUT', '/v1/repositories/a/b/images', '[]', { 'x-docker-token': 'true' });
  t.equal(r.status, 204);
  r = await req(reg, 'GET', '/v1/repositories/a/b/images', undefined, {
    'x-docker-token': 'true',
    authorization: 'Token signature=abc,repository="a/b",access=read',
  });
  t.same([r.status, r.json], [200, [{ id }]]);
  t.match(r.headers.get('x-docker-token'), /access=read$/);

  r = await req(reg, 'GET', '/v1/repositories/a/b/c/d/tags');
  t.equal(r.status, 404, 'multi-level names are names too');
  for (const bad of ['UPPER', 'a/-x', '%2e%2e/etc', 'a/b_', 'a/..b', 'a/b%2f..%2f..%2fc']) {
    r = await req(reg, 'GET', `/v1/repositories/${bad}/tags`);
    t.ok(r.status === 400 || r.status === 404, `${bad} refused (${r.status})`);
    t.type((r.json as { error?: string })?.error, 'string');
  }
});

t.test('users (login as Docker 1.x does it)', async (t) => {
  const reg = await startRegistry(t);
  let r = await req(reg, 'POST', '/v1/users/', JSON.stringify({ username: 'u', password: 'p', email: 'e@x', auth: '' }));
  t.equal(r.status, 401, 'no self-registration: Docker goes on to GET /v1/users/');
  r = await req(reg, 'GET', '/v1/users/', undefined, { authorization: 'Basic ' + Buffer.from('u:p').toString('base64') });
  t.same([r.status, r.json], [200, 'OK'], 'an open registry accepts the login');
  r = await req(reg, 'GET', '/v1/users');
  t.equal(r.status, 200);
});

t.test('search', async (t) => {
  const reg = await startRegistry(t);
  for (const name of ['acme/widget', 'acme/gadget', 'other/widget-pro', 'zeta/thing']) {
    await req(reg, 'PUT', `/v1/repositories/${name}/`, '[]');
  }
  let r = await req(reg, 'GET', '/v1/search?q=widget');
  t.same(r.json, {
    num_pages: 1,
    num_results: 2,
    page: 1,
    page_size: 25,
    query: 'widget',
    results: [
      { description: '', is_automated: false, is_official: false, is_trusted: false, name: 'acme/widget', star_count: 0 },
      { description: '', is_automated: false, is_official: false, is_trusted: false, name: 'other/widget-pro', star_count: 0 },
    ],
  });
  r = await req(reg, 'GET', '/v1/search?q=WIDG');
  t.equal((r.json as { num_results: number }).num_results, 2, 'case-insensitive');
  r = await req(reg, 'GET', '/v1/search?q=ac');
  t.equal((r.json as { num_results: number }).num_results, 2, 'short terms work');
  r = await req(reg, 'GET', '/v1/search');
  t.equal((r.json as { num_results: number }).num_results, 4, 'no q lists everything');
  r = await req(reg, 'GET', '/v1/search?q=%25');
  t.equal((r.json as { num_results: number }).num_results, 0, 'LIKE wildcards are literal');
  r = await req(reg, 'GET', '/v1/search?q=&n=3&page=2');
  t.match(r.json, { num_pages: 2, num_results: 4, page: 2, page_size: 3, results: [{ name: 'zeta/thing' }] });
  r = await req(reg, 'GET', '/v1/search?n=0');
  t.equal(r.status, 400);
  r = await req(reg, 'GET', '/v1/search?n=101');
  t.equal(r.status, 400);
  r = await req(reg, 'GET', '/v1/search?page=x');
  t.equal(r.status, 400);
});

t.test('unknown paths answer JSON 404', async (t) => {
  const reg = await startRegistry(t);
  const r = await req(reg, 'GET', '/v1/nothing/here');
  t.same([r.status, r.json], [404, { error: 'Not found' }]);
});
