import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { containersEnv } from '../helpers/containers';
import { startDockerd } from '../helpers/dockerd';
import { layoutBlobs, makeOciLayout, readLayoutBlob } from '../helpers/oci-layout';
import { startRegistry, tempDir, type TestRegistry } from '../helpers/server';
import { requireTools } from '../helpers/tools';

// Acceptance for garbage collection with real clients: skopeo pushes three images, one is deleted, a
// collection frees exactly its blobs (the bytes on disk shrink by what it alone held), and the other two
// still pull byte for byte with skopeo and with docker.

function storedBytes(reg: TestRegistry): Map<string, number> {
  const top = path.join(reg.dir, 'blobs', 'blobs', 'sha256');
  const out = new Map<string, number>();
  if (!existsSync(top)) return out;
  for (const d of readdirSync(top)) for (const f of readdirSync(path.join(top, d))) out.set(`sha256:${f}`, statSync(path.join(top, d, f)).size);
  return out;
}

t.test('skopeo push, delete, collect: the rest pulls byte for byte with skopeo and docker', async (t) => {
  if (!requireTools(t, ['skopeo', 'dockerd', 'docker'])) return;
  const local = process.env.TEST_STORAGE !== 's3';
  const reg = await startRegistry(t, { gc: { delay: 0, interval: 0 } });
  const env = await containersEnv(t);
  const work = tempDir(t, 'gc-e2e-');
  const images = ['keep1', 'keep2', 'gone'].map((name, i) => {
    const dir = path.join(work, name);
    return { name, dir, layout: makeOciLayout(dir, { tag: 'v1', layers: 2, layerBytes: 50_000, seed: 100 + i }) };
  });
  for (const img of images) {
    const r = await env.skopeo(['copy', '--dest-tls-verify=false', `oci:${img.dir}:v1`, `docker://${reg.host}/gc/${img.name}:v1`]);
    t.equal(r.code, 0, `skopeo push ${img.name}`, { stderr: r.stderr.slice(-1000) });
  }
  const gone = images[2]!;
  const before = storedBytes(reg);
  const del = await fetch(`${reg.url}/v2/gc/gone/manifests/${gone.layout.manifestDigest}`, { method: 'DELETE' });
  t.equal(del.status, 202, 'DELETE the manifest of gc/gone');

  const report = await reg.app.registry.gc.run();
  const goneBytes = gone.layout.blobs.reduce((n, d) => n + readLayoutBlob(gone.dir, d).length, 0);
  t.equal(report.blobs, gone.layout.blobs.length, 'its manifest, config and layers are collected');
  t.equal(report.bytes, goneBytes, 'their bytes');
  if (local) {
    const after = storedBytes(reg);
    const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
    t.equal(sum(before) - sum(after), goneBytes, 'the blob files on disk shrank by exactly those bytes');
    t.same(
      [...before.keys()].filter((d) => !after.has(d)).sort(),
      [...gone.layout.blobs].sort(),
      'exactly those files went',
    );
  }

  for (const img of images.slice(0, 2)) {
    const back = path.join(work, `${img.name}-back`);
    const r = await env.skopeo(['copy', '--src-tls-verify=false', `docker://${reg.host}/gc/${img.name}:v1`, `oci:${back}:v1`]);
    t.equal(r.code, 0, `skopeo pull ${img.name}`, { stderr: r.stderr.slice(-1000) });
    t.same(layoutBlobs(back), img.layout.blobs, `${img.name}: the same blobs`);
    for (const d of img.layout.blobs) t.ok(readLayoutBlob(back, d).equals(readLayoutBlob(img.dir, d)), `${img.name}: ${d.slice(7, 19)} byte-identical`);
  }
  const gonePull = await env.skopeo(['copy', '--src-tls-verify=false', `docker://${reg.host}/gc/gone:v1`, `oci:${path.join(work, 'gone-back')}:v1`]);
  t.not(gonePull.code, 0, 'the deleted image no longer pulls');

  const d = await startDockerd(t);
  for (const img of images.slice(0, 2)) {
    const ref = `${reg.host}/gc/${img.name}:v1`;
    const pull = await d.docker(['pull', ref]);
    t.equal(pull.code, 0, `docker pull ${img.name}`, { stderr: pull.stderr.slice(-1000) });
    const inspect = await d.docker(['image', 'inspect', '-f', '{{json .RepoDigests}}', ref]);
    t.match(inspect.stdout, img.layout.manifestDigest, `${img.name}: docker has the pushed manifest digest`);
  }
});
