import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { indexRows } from '../helpers/index-db';
import t from 'tap';
import { bridgeCommand } from '../../src/cli/bridge';
import { fakeIo } from '../cli/fake-io';
import { startRegistry } from '../helpers/server';
import { imageChain, payloadChecksum, pushV1, pullV1, tarOf } from '../helpers/v1';

// The v1 -> v2 bridge over HTTP, in process: a chain pushed with the Docker 1.x flow is a Docker schema 2
// image over v2 (config from Docker 1.10's migration formula, layers as stored), stable across pulls and
// restarts; it follows its v1 tag; a v2 push of the same name wins for v2 clients; bad layers answer a clear
// MANIFEST_UNKNOWN. Real clients (dockerd, skopeo, umoci) are in test/e2e/bridge-v1-to-v2.test.ts.

const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const ACCEPT = `${DOCKER_MANIFEST}, application/vnd.oci.image.manifest.v1+json`;
const sha256 = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex');

interface Manifest {
  mediaType: string;
  config: { mediaType: string; digest: string; size: number };
  layers: { mediaType: string; digest: string; size: number }[];
}

async function getManifest(base: string, repo: string, ref: string, method = 'GET') {
  const res = await fetch(`${base}/v2/${repo}/manifests/${ref}`, { method, headers: { accept: ACCEPT } });
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, digest: res.headers.get('docker-content-digest'), type: res.headers.get('content-type'), body };
}

t.test('a v1 chain (gzip, empty, plain tar layer) is a Docker schema 2 image over v2', async (t) => {
  let reg = await startRegistry(t);
  const chain = imageChain(3, { kinds: ['gzip', 'empty', 'tar'] });
  await pushV1(reg.url, 'acme/app', 'latest', chain);

  const m = await getManifest(reg.url, 'acme/app', 'latest');
  t.equal(m.status, 200, 'GET manifests/<v1 tag> 200');
  t.equal(m.type, DOCKER_MANIFEST, 'Docker schema 2');
  t.equal(m.digest, sha256(m.body), 'Docker-Content-Digest is the digest of the bytes');
  const manifest = JSON.parse(m.body.toString()) as Manifest;
  t.equal(manifest.config.mediaType, 'application/vnd.docker.container.image.v1+json');
  t.same(
    manifest.layers,
    [
      { mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: chain[0]!.layer.length, digest: sha256(chain[0]!.layer) },
      { mediaType: 'application/vnd.docker.image.rootfs.diff.tar', size: chain[2]!.layer.length, digest: sha256(chain[2]!.layer) },
    ],
    'the stored v1 layers, empty one skipped, media type by their bytes',
  );

  const cfgRes = await fetch(`${reg.url}/v2/acme/app/blobs/${manifest.config.digest}`);
  t.equal(cfgRes.status, 200, 'config blob served');
  const configBytes = Buffer.from(await cfgRes.arrayBuffer());
  t.equal(sha256(configBytes), manifest.config.digest);
  const config = JSON.parse(configBytes.toString());
  t.same(Object.keys(config), [...Object.keys(config)].sort(), 'config keys sorted (Go map order)');
  t.notOk('id' in config || 'parent' in config || 'Size' in config, 'no id, parent, Size');
  t.equal(config.architecture, 'amd64');
  t.equal(config.os, 'linux');
  t.same(config.rootfs, {
    type: 'layers',
    diff_ids: [sha256(gunzipSync(chain[0]!.layer)), sha256(chain[2]!.layer)],
  }, 'diff_ids: sha256 of the uncompressed tars');
  t.same(
    config.history,
    [
      { created: '2015-01-01T00:00:00Z', created_by: '/bin/sh -c #0' },
      { created: '2015-01-01T00:00:00Z', created_by: '/bin/sh -c #1', empty_layer: true },
      { created: '2015-01-01T00:00:00Z', created_by: '/bin/sh -c #2' },
    ],
    'history root first, the empty layer marked',
  );
  for (const l of manifest.layers) {
    const r = await fetch(`${reg.url}/v2/acme/app/blobs/${l.digest}`);
    t.equal(sha256(Buffer.from(await r.arrayBuffer())), l.digest, `layer ${l.digest} served`);
  }

  const head = await getManifest(reg.url, 'acme/app', 'latest', 'HEAD');
  t.equal(head.digest, m.digest, 'HEAD gives the same digest');
  const byDigest = await getManifest(reg.url, 'acme/app', m.digest!);
  t.equal(byDigest.status, 200, 'GET by digest');
  t.same(byDigest.body, m.body);
  const tags = (await (await fetch(`${reg.url}/v2/acme/app/tags/list`)).json()) as { tags: string[] };
  t.same(tags.tags, ['latest'], 'tags/list lists the bridged tag');
  const cat = (await (await fetch(`${reg.url}/v2/_catalog`)).json()) as { repositories: string[] };
  t.ok(cat.repositories.includes('acme/app'), '_catalog lists the repository');

  reg = await reg.restart();
  const again = await getManifest(reg.url, 'acme/app', 'latest');
  t.equal(again.digest, m.digest, 'same digest after a restart');

  // v1 clients still see exactly what they pushed.
  const pulled = await pullV1(reg.url, 'acme/app', 'latest');
  t.same(pulled.map((p) => p.layer), chain.map((c) => c.layer), 'v1 pull unchanged');
});

t.test('the bridged tag follows its v1 tag; a v2 push of the name wins; deleting the v1 tag removes only a bridged one', async (t) => {
  const reg = await startRegistry(t);
  const a = imageChain(2);
  const b = imageChain(2);
  await pushV1(reg.url, 'acme/move', 'v1', a);
  const first = await getManifest(reg.url, 'acme/move', 'v1');
  t.equal(first.status, 200);
  await pushV1(reg.url, 'acme/move', 'v1', b);
  // Made eagerly at the v1 tag PUT: visible in tags/list and by HEAD at once.
  const moved = await getManifest(reg.url, 'acme/move', 'v1', 'HEAD');
  t.not(moved.digest, first.digest, 'the v2 tag moved with the v1 tag');
  const layers = (JSON.parse((await getManifest(reg.url, 'acme/move', 'v1')).body.toString()) as Manifest).layers;
  t.equal(layers[0]!.digest, sha256(b[0]!.layer), 'and names the new chain');

  // The same chain in another repository gives the same digest (no machine- or time-dependent bytes).
  await pushV1(reg.url, 'other/move', 'v1', b);
  t.equal((await getManifest(reg.url, 'other/move', 'v1')).digest, moved.digest, 'same chain, same digest');

  // A v2 push of the same tag name: v2 clients get it, v1 clients keep the v1 tag.
  const cfg = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
  const up = await fetch(`${reg.url}/v2/acme/move/blobs/uploads/?digest=${sha256(cfg)}`, { method: 'POST', body: cfg });
  t.equal(up.status, 201);
  const native = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: DOCKER_MANIFEST, config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: cfg.length, digest: sha256(cfg) }, layers: [] }));
  const put = await fetch(`${reg.url}/v2/acme/move/manifests/v1`, { method: 'PUT', headers: { 'content-type': DOCKER_MANIFEST }, body: native });
  t.equal(put.status, 201, 'v2 push of the same tag');
  t.equal((await getManifest(reg.url, 'acme/move', 'v1')).digest, sha256(native), 'v2 clients see the v2 push');
  await pushV1(reg.url, 'acme/move', 'v1', a);
  t.equal((await getManifest(reg.url, 'acme/move', 'v1')).digest, sha256(native), 'a v1 tag move does not replace a pushed v2 tag');
  const v1tags = (await (await fetch(`${reg.url}/v1/repositories/acme/move/tags`)).json()) as Record<string, string>;
  t.equal(v1tags.v1, a[1]!.id, 'v1 clients see the v1 tag');
  const del = await fetch(`${reg.url}/v1/repositories/acme/move/tags/v1`, { method: 'DELETE' });
  t.equal(del.status, 200);
  t.equal((await getManifest(reg.url, 'acme/move', 'v1')).status, 200, 'deleting the v1 tag leaves the pushed v2 tag');

  // A bridged tag goes with its v1 tag.
  t.equal((await getManifest(reg.url, 'other/move', 'v1')).status, 200);
  await fetch(`${reg.url}/v1/repositories/other/move/tags/v1`, { method: 'DELETE' });
  t.equal((await getManifest(reg.url, 'other/move', 'v1')).status, 404, 'deleting the v1 tag removes the bridged v2 tag');
});

t.test('a layer zlib cannot keep up with is analyzed from storage after its PUT; the bridged pull waits for it', async (t) => {
  const reg = await startRegistry(t);
  // 512 MiB of zeros in one file, sent as 4 MiB gzip members: ~0.5 MiB to send, 512 MiB to inflate.
  const zeros = 512 << 20;
  const head = tarOf([{ name: 'zeros', data: Buffer.alloc(0) }]).subarray(0, 512);
  head.write(zeros.toString(8).padStart(11, '0') + '\0', 124);
  head.write('        ', 148);
  let sum = 0;
  for (const b of head) sum += b;
  head.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  const member = gzipSync(Buffer.alloc(4 << 20));
  const layer = Buffer.concat([gzipSync(head), ...Array.from({ length: zeros / (4 << 20) }, () => member), gzipSync(Buffer.alloc(1024))]);
  const diff = createHash('sha256').update(head);
  for (let i = 0; i < zeros / (4 << 20); i++) diff.update(Buffer.alloc(4 << 20));
  diff.update(Buffer.alloc(1024));
  const [img] = imageChain(1);
  const json = img!.json;
  await pushV1(reg.url, 'acme/big', 'latest', [{ ...img!, layer, checksum: payloadChecksum(json, layer) }]);
  const m = await getManifest(reg.url, 'acme/big', 'latest');
  t.equal(m.status, 200, 'bridged');
  const config = JSON.parse(Buffer.from(await (await fetch(`${reg.url}/v2/acme/big/blobs/${(JSON.parse(m.body.toString()) as Manifest).config.digest}`)).arrayBuffer()).toString());
  t.same(config.rootfs.diff_ids, ['sha256:' + diff.digest('hex')], 'the diff id of 512 MiB inflated, whichever way it was found');
});

t.test('layers with no v2 form: MANIFEST_UNKNOWN with a message, never a 500 or a wrong manifest', async (t) => {
  const reg = await startRegistry(t);
  await pushV1(reg.url, 'acme/bad', 'latest', imageChain(2, { kinds: ['gzip', 'random'] }));
  const r = await getManifest(reg.url, 'acme/bad', 'latest');
  t.equal(r.status, 404);
  const err = JSON.parse(r.body.toString()) as { errors: { code: string; message: string }[] };
  t.equal(err.errors[0]!.code, 'MANIFEST_UNKNOWN');
  t.match(err.errors[0]!.message, /not a tar archive/, 'the message names the reason');
  t.equal((await getManifest(reg.url, 'acme/bad', 'latest', 'HEAD')).status, 404, 'HEAD 404 too');
  const list = (await (await fetch(`${reg.url}/v2/acme/bad/tags/list`)).json()) as { tags: string[] };
  t.same(list.tags, [], 'no v2 tag');

  // An xz layer (v1 accepted any bytes): left out of v2, said so.
  const xz = imageChain(1);
  const layer = Buffer.concat([Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), tarOf([])]);
  const { payloadChecksum } = await import('../helpers/v1');
  xz[0] = { ...xz[0]!, layer, checksum: payloadChecksum(xz[0]!.json, layer) };
  await pushV1(reg.url, 'acme/xz', 'latest', xz);
  const x = await getManifest(reg.url, 'acme/xz', 'latest');
  t.equal(x.status, 404);
  t.match(x.body.toString(), /xz-compressed, which no Docker v2 layer media type carries/);
});

t.test('protocols.bridge: false leaves v1 tags out of v2; turned on, older layers are analyzed on first use', async (t) => {
  const off = await startRegistry(t, { protocols: { bridge: false } });
  const chain = imageChain(2, { kinds: ['gzip', 'tar'] });
  await pushV1(off.url, 'acme/off', 'latest', chain);
  t.equal((await getManifest(off.url, 'acme/off', 'latest')).status, 404);
  t.same(await indexRows(off.app.registry.index).all('SELECT layer_format, diff_id FROM v1_images'), [{ layer_format: null, diff_id: null }, { layer_format: null, diff_id: null }], 'not analyzed with the bridge off');
  await off.close();

  const on = await startRegistry(t, { storage: off.config.storage }, off.dir); // the same storage (and s3rver) again
  const m = await getManifest(on.url, 'acme/off', 'latest');
  t.equal(m.status, 200, 'bridged on the first pull, from the stored layers');
  const manifest = JSON.parse(m.body.toString()) as Manifest;
  t.same(manifest.layers.map((l) => l.digest), chain.map((c) => sha256(c.layer)));
});

t.test('bridge backfill: analyzes older layers and bridges every v1 tag, with a progress line', async (t) => {
  const off = await startRegistry(t, { protocols: { bridge: false } });
  await pushV1(off.url, 'acme/a', 'v1', imageChain(2, { kinds: ['gzip', 'empty'] }));
  await pushV1(off.url, 'acme/b', 'v1', imageChain(1, { kinds: ['random'] }));
  await off.close();
  const io = fakeIo();
  const config = { ...off.config, protocols: { ...off.config.protocols, bridge: true } };
  const code = await bridgeCommand(['backfill'], io, { loadConfig: () => config });
  t.equal(code, 0, 'exit 0', { stdout: io.stdout.text(), stderr: io.stderr.text() });
  t.match(io.stdout.text(), /no v2 form: acme\/b:v1: .*not a tar archive/, 'the tag with no v2 form, and why');
  t.match(io.stdout.text(), /bridge backfill: 3 layers analyzed \(1 gzip, 1 empty, 1 invalid\); 1 v1 tag bridged to v2, 1 without a v2 form/);
  t.match(io.stderr.text(), /bridge backfill layers: 3/, 'progress');
  t.equal(await bridgeCommand(['nope'], fakeIo(), { loadConfig: () => config }), 2, 'usage');

  const on = await startRegistry(t, { storage: off.config.storage }, off.dir); // the same storage (and s3rver) again
  const tags = (await (await fetch(`${on.url}/v2/acme/a/tags/list`)).json()) as { tags: string[] };
  t.same(tags.tags, ['v1'], 'listed before any pull');
  t.equal((await getManifest(on.url, 'acme/a', 'v1')).status, 200);
  const again = fakeIo();
  await bridgeCommand(['backfill'], again, { loadConfig: () => config });
  t.match(again.stdout.text(), /0 layers analyzed; 1 v1 tag bridged/, 'a second run has nothing left to analyze');
});
