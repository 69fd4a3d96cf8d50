import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import t, { type Test } from 'tap';
import { containersEnv, type ToolResult } from '../helpers/containers';
import { OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, untar } from '../helpers/oci-layout';
import { startRegistry, tempDir } from '../helpers/server';
import { requireTools } from '../helpers/tools';
import { sha256 } from '../helpers/v2';

// Acceptance: Debian's buildah 1.28 builds an image from scratch (no Dockerfile, no RUN) and pushes it to the
// v2 API over plain HTTP in Docker schema2 and in OCI format (real-clients.md section 3); skopeo pulls each back
// to a dir: and the file added by buildah must come out of the layer unchanged.
// buildah 1.28 commits OCI by default and pushes in the format of the stored image, so the image is committed with
// --format docker: a plain `buildah push` then sends Docker schema2, and `--format oci` converts.

const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';
const DOCKER_LAYER = 'application/vnd.docker.image.rootfs.diff.tar.gzip';
const ACCEPT = `${OCI_MANIFEST}, ${DOCKER_MANIFEST}`;

const said = (r: ToolResult) => ({ code: r.code, stdout: r.stdout.slice(-2000), stderr: r.stderr.slice(-2000), ms: r.ms });

async function ok(t: Test, run: Promise<ToolResult>, what: string): Promise<ToolResult> {
  const r = await run;
  t.equal(r.code, 0, `${what} (${r.ms} ms)`, said(r));
  return r;
}

t.test('buildah: from scratch, add, config, commit, push (Docker schema2 and OCI), pull back with skopeo', async (t) => {
  if (!requireTools(t, ['buildah', 'skopeo'])) return;
  const reg = await startRegistry(t);
  const env = await containersEnv(t);
  const work = tempDir(t, 'buildah-');
  t.comment(`storage driver ${env.storageDriver}, blob-info cache isolation: ${env.isolation}`);

  const content = Buffer.from(`hello from buildah ${randomBytes(8).toString('hex')}\n`);
  const hello = path.join(work, 'hello.txt');
  writeFileSync(hello, content);

  const name = `e2e-${randomBytes(4).toString('hex')}`;
  const from = await ok(t, env.buildah(['from', '--name', name, 'scratch']), 'buildah from scratch');
  t.equal(from.stdout.trim(), name, 'working container named as asked');
  await ok(t, env.buildah(['add', name, hello, '/hello.txt']), 'buildah add');
  await ok(t, env.buildah(['config', '--cmd', '/hello.txt', '--label', 'made-by=e2e', name]), 'buildah config --cmd');
  const image = 'localhost/e2e-built:v1';
  await ok(t, env.buildah(['commit', '--format', 'docker', name, image]), 'buildah commit --format docker');
  await ok(t, env.buildah(['rm', name]), 'buildah rm');

  const variants = [
    { tag: 'docker', args: [] as string[], manifest: DOCKER_MANIFEST, config: DOCKER_CONFIG, layer: DOCKER_LAYER },
    { tag: 'oci', args: ['--format', 'oci'], manifest: OCI_MANIFEST, config: OCI_CONFIG, layer: OCI_LAYER_GZIP },
  ];
  const diffIds: string[] = [];
  for (const v of variants) {
    const ref = `${reg.host}/buildah/img:${v.tag}`;
    const digestFile = path.join(work, `${v.tag}.digest`);
    await ok(t, env.buildah(['push', '--tls-verify=false', ...v.args, '--digestfile', digestFile, image, `docker://${ref}`]), `buildah push ${v.args.join(' ') || '(default format)'}`);
    const pushedDigest = readFileSync(digestFile, 'utf8').trim();

    const res = await fetch(`${reg.url}/v2/buildah/img/manifests/${v.tag}`, { headers: { accept: ACCEPT } });
    const body = Buffer.from(await res.arrayBuffer());
    t.equal(res.status, 200, `${v.tag}: manifest served`);
    t.equal(res.headers.get('content-type'), v.manifest, `${v.tag}: Content-Type ${v.manifest}`);
    t.equal(res.headers.get('docker-content-digest'), pushedDigest, `${v.tag}: Docker-Content-Digest equals buildah's digest`);
    t.equal(sha256(body), pushedDigest, `${v.tag}: digest of the served bytes`);
    const head = await fetch(`${reg.url}/v2/buildah/img/manifests/${pushedDigest}`, { method: 'HEAD', headers: { accept: ACCEPT } });
    t.equal(head.status, 200, `${v.tag}: HEAD by digest`);
    t.equal(head.headers.get('content-type'), v.manifest, `${v.tag}: HEAD Content-Type`);
    t.equal(head.headers.get('content-length'), String(body.length), `${v.tag}: HEAD Content-Length`);

    const doc = JSON.parse(body.toString('utf8'));
    t.equal(doc.schemaVersion, 2, `${v.tag}: schemaVersion 2`);
    t.equal(doc.mediaType, v.manifest, `${v.tag}: body mediaType`);
    t.equal(doc.config.mediaType, v.config, `${v.tag}: config media type`);
    t.equal(doc.layers.length, 1, `${v.tag}: one layer (the added file)`);
    t.equal(doc.layers[0].mediaType, v.layer, `${v.tag}: layer media type`);

    const cfgRes = await fetch(`${reg.url}/v2/buildah/img/blobs/${doc.config.digest}`);
    const cfgBytes = Buffer.from(await cfgRes.arrayBuffer());
    t.equal(cfgRes.status, 200, `${v.tag}: config blob served`);
    t.equal(sha256(cfgBytes), doc.config.digest, `${v.tag}: config blob content`);
    const cfg = JSON.parse(cfgBytes.toString('utf8'));
    t.same(cfg.config.Cmd, ['/hello.txt'], `${v.tag}: config Cmd from buildah config --cmd`);
    t.equal(cfg.config.Labels?.['made-by'], 'e2e', `${v.tag}: config label`);
    t.equal(cfg.rootfs.diff_ids.length, 1, `${v.tag}: one diff id`);
    diffIds.push(cfg.rootfs.diff_ids[0]);

    // Pull back with another client and look inside the layer.
    const out = path.join(work, `pulled-${v.tag}`);
    await ok(t, env.skopeo(['copy', '--src-tls-verify=false', `docker://${ref}`, `dir:${out}`]), `${v.tag}: skopeo copy docker:// -> dir:`);
    t.ok(readFileSync(path.join(out, 'manifest.json')).equals(body), `${v.tag}: dir: manifest.json byte-identical to what the registry serves`);
    const files = readdirSync(out).filter((f) => /^[0-9a-f]{64}$/.test(f)).sort();
    t.same(files, [doc.config.digest, doc.layers[0].digest].map((d: string) => d.slice('sha256:'.length)).sort(), `${v.tag}: config and layer pulled`);
    const layer = readFileSync(path.join(out, doc.layers[0].digest.slice('sha256:'.length)));
    t.equal(sha256(layer), doc.layers[0].digest, `${v.tag}: layer bytes match the manifest digest`);
    const entries = untar(layer);
    t.ok(entries.has('hello.txt'), `${v.tag}: the layer holds /hello.txt`, { entries: [...entries.keys()] });
    t.ok(entries.get('hello.txt')?.equals(content), `${v.tag}: with the exact content that was added`);
    t.equal(sha256(gunzipSync(layer)), diffIds[diffIds.length - 1], `${v.tag}: layer unpacks to the diff id in the config`);
  }
  // buildah rewrites the config for OCI (a new config digest), but the filesystem layer is the same.
  t.equal(diffIds[0], diffIds[1], 'both formats carry the same uncompressed layer');

  const tags = await fetch(`${reg.url}/v2/buildah/img/tags/list`);
  t.same(((await tags.json()) as { tags: string[] }).tags.sort(), ['docker', 'oci'], 'both tags listed');
});
