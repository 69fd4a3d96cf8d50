import { createRequire } from 'node:module';
import type { IncomingMessage } from 'node:http';
import t from 'tap';
import { startRegistry } from '../helpers/server';
import { imageChain, pushV1 } from '../helpers/v1';

// Acceptance: the npm docker-registry-client package's v1 client (lib/registry-client-v1.js) pulls an
// image pushed the Docker 1.x way: ping, image list (session + token), tags, tag -> id, ancestry,
// json and layer stream of every image, byte for byte.

// The package ships no types: the part of its v1 API used here. Callbacks are (err, result, res).
type Cb<T> = (err: Error | null, result: T, res: IncomingMessage & { body?: string }) => void;
interface RegistryClientV1 {
  version: number;
  token?: string;
  ping(cb: Cb<unknown>): void;
  search(opts: { term: string }, cb: Cb<{ num_results: number; query: string; results: { name: string; description: string | null }[] }>): void;
  listRepoImgs(cb: Cb<{ id: string; Tag?: string; checksum?: string }[]>): void;
  listRepoTags(cb: Cb<Record<string, string>>): void;
  getImgId(opts: { tag: string }, cb: Cb<string>): void;
  getImgAncestry(opts: { imgId: string }, cb: Cb<string[]>): void;
  getImgJson(opts: { imgId: string }, cb: Cb<Record<string, unknown>>): void;
  getImgLayerStream(opts: { imgId: string }, cb: (err: Error | null, stream: IncomingMessage) => void): void;
  close(): void;
}
interface Drc {
  createClientV1(opts: { name: string; scheme?: string; insecure?: boolean; log?: unknown; userAgent?: string }): RegistryClientV1;
}

const drc = require('docker-registry-client') as Drc;
// bunyan as the client itself loads it; 'fatal' keeps its JSON log lines out of the TAP stream.
const bunyan = createRequire(require.resolve('docker-registry-client'))('bunyan') as {
  createLogger(opts: { name: string; level: string }): unknown;
};

/** Call a callback-style client method; resolves with the result and the response. */
function call<T>(fn: (cb: Cb<T>) => void): Promise<{ result: T; res: IncomingMessage & { body?: string } }> {
  return new Promise((resolve, reject) => fn((err, result, res) => (err ? reject(err) : resolve({ result, res }))));
}

function layerBytes(client: RegistryClientV1, imgId: string): Promise<{ bytes: Buffer; res: IncomingMessage }> {
  return new Promise((resolve, reject) => {
    client.getImgLayerStream({ imgId }, (err, stream) => {
      if (err) return reject(err);
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('error', reject);
      stream.on('end', () => resolve({ bytes: Buffer.concat(chunks), res: stream }));
      stream.resume(); // the client hands the stream over paused
    });
  });
}

t.test('docker-registry-client v1 pulls an image pushed like Docker 1.x', async (t) => {
  const reg = await startRegistry(t);
  const chain = imageChain(3, { emptyAt: 1 });
  const top = chain[2]!;
  await pushV1(reg.url, 'acme/drc-app', 'latest', chain);
  await pushV1(reg.url, 'acme/drc-app', 'v1.0', chain.slice(0, 2));

  const client = drc.createClientV1({
    name: `${reg.host}/acme/drc-app`,
    scheme: 'http',
    insecure: true,
    log: bunyan.createLogger({ name: 'drc-test', level: 'fatal' }),
  });
  t.teardown(() => client.close());
  t.equal(client.version, 1, 'a v1 client');

  const ping = await call<unknown>((cb) => client.ping(cb));
  t.equal(ping.res.statusCode, 200, 'ping 200');
  t.same(ping.result, {}, 'ping body {}');
  t.equal(ping.res.headers['x-docker-registry-standalone'], 'True', 'standalone registry');

  const found = await call<{ num_results: number; query: string; results: { name: string; description: string | null }[] }>((cb) =>
    client.search({ term: 'drc' }, cb),
  );
  t.equal(found.result.query, 'drc', 'search echoes the query');
  t.same(found.result.results.map((r) => r.name), ['acme/drc-app'], 'search finds the repository');
  t.equal(found.result.num_results, 1, 'search counts one result');

  // The session step: GET /v1/repositories/<name>/images with X-Docker-Token: true.
  const imgs = await call<{ id: string }[]>((cb) => client.listRepoImgs(cb));
  t.equal(imgs.res.statusCode, 200, 'image list 200');
  t.same(imgs.result.map((i) => i.id).sort(), chain.map((i) => i.id).sort(), 'image list holds every pushed id');
  t.equal(imgs.res.headers['x-docker-endpoints'], reg.host, 'X-Docker-Endpoints names this registry');
  t.match(String(imgs.res.headers['x-docker-token']), /^signature=[a-f0-9]+,repository="acme\/drc-app",access=read$/, 'read token');

  const tags = await call<Record<string, string>>((cb) => client.listRepoTags(cb));
  t.same(tags.result, { latest: top.id, 'v1.0': chain[1]!.id }, 'tags');
  t.match(client.token ?? '', /access=read/, 'the client kept the token for registry calls');

  const id = await call<string>((cb) => client.getImgId({ tag: 'latest' }, cb));
  t.equal(id.result, top.id, 'tag -> image id');

  const ancestry = await call<string[]>((cb) => client.getImgAncestry({ imgId: top.id }, cb));
  t.same(ancestry.result, [...chain].reverse().map((i) => i.id), 'ancestry: image first, root last');

  for (const [i, img] of chain.entries()) {
    const json = await call<Record<string, unknown>>((cb) => client.getImgJson({ imgId: img.id }, cb));
    t.same(json.result, JSON.parse(img.json.toString('utf8')), `json ${i} parses to the pushed object`);
    t.ok(Buffer.from(json.res.body ?? '', 'utf8').equals(img.json), `json ${i} byte for byte`);
    t.equal(json.res.headers['x-docker-size'], String(img.layer.length), `X-Docker-Size ${i}`);
    t.equal(json.res.headers['x-docker-checksum-payload'], img.checksum, `X-Docker-Checksum-Payload ${i}`);

    const layer = await layerBytes(client, img.id);
    t.equal(layer.res.statusCode, 200, `layer ${i} 200`);
    t.equal(layer.bytes.length, img.layer.length, `layer ${i} length`);
    t.ok(layer.bytes.equals(img.layer), `layer ${i} byte for byte${i === 1 ? ' (empty tar)' : ''}`);
  }

  // Unknown things come back as errors with the registry's status, not as empty results.
  const missingTag = await call<string>((cb) => client.getImgId({ tag: 'nope' }, cb)).catch((e: { statusCode?: number }) => e);
  t.equal((missingTag as { statusCode?: number }).statusCode, 404, 'unknown tag: 404 error');
  const missingImg = await call<Record<string, unknown>>((cb) => client.getImgJson({ imgId: 'f'.repeat(64) }, cb)).catch(
    (e: { statusCode?: number }) => e,
  );
  t.equal((missingImg as { statusCode?: number }).statusCode, 404, 'unknown image json: 404 error');
});
