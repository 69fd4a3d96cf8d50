import Database from 'better-sqlite3';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { containersEnv, type ContainersEnv, type ToolResult } from '../helpers/containers';
import { runProcess } from '../helpers/daemon';
import { startDockerd, type Dockerd, type DockerResult } from '../helpers/dockerd';
import { makeOciLayout, OCI_INDEX, OCI_MANIFEST, readLayoutBlob, type OciLayoutResult } from '../helpers/oci-layout';
import { freePort, ROOT, serverEnv, spawnServer, type ServerProcess } from '../helpers/process';
import { tempDir } from '../helpers/server';
import { requireTools } from '../helpers/tools';
import { imageChain, pullV1, pushV1, type V1Image } from '../helpers/v1';
import { buildImage, pushImage, sha256 } from '../helpers/v2';

// Acceptance for rebuilding the index from storage, with real clients against the real server process
// (dist/server.js, as `npm start` runs it) and the operator CLI (dist/cli/registry.js rebuild-index):
//  - a mixed set is pushed: skopeo pushes an OCI image (a tag moved onto it leaves the image it named untagged;
//    another tagged image is deleted with `skopeo delete`) and copies it into another repository inside the
//    registry, a Docker schema 2 image (--format v2s2) and a multi-arch OCI index (--all from an OCI layout
//    holding the index); docker pushes a FROM-scratch build; the test helpers push what no client here
//    does: two referrers of the OCI image (artifactType, subject, annotations) and v1 chains the Docker 1.x way
//    (three tags in two repositories); a search description, which no API sets (it comes from an earlier
//    index), is written into the index while the server is stopped and reaches the journal when it starts again;
//  - what clients see is recorded: every image pulled with skopeo into a `dir:` (manifests exactly as served,
//    Docker schema 2 included; `oci:` would convert them), tags/list, _catalog, referrers, v1 tags, image lists,
//    search (HTTP and `docker search`), and v1 pulls;
//  - the server stops, index.db (-wal, -shm) is deleted; the server then refuses to start; `rebuild-index`
//    recreates the index from storage alone; the server starts on it and every answer is as before: skopeo
//    pulls the same bytes, `docker pull` gets the same digests and image ids, the v1 flow the same bytes;
//    and a push after the rebuild works.
// Storage: local, or S3 (s3rver, one bucket kept across the restarts) with TEST_STORAGE=s3 (npm run test:s3).

const CLI = path.join(ROOT, 'dist/cli/registry.js');
const S3 = process.env.TEST_STORAGE === 's3';

t.before(() => {
  if (!existsSync(CLI)) throw new Error('dist/cli/registry.js not built: run npm run build (npm test builds it)');
});

/** Tool output for assertion diagnostics. */
const said = (r: ToolResult | DockerResult) => ({ code: r.code, stdout: r.stdout.slice(-2000), stderr: r.stderr.slice(-2000) });

/** The real server on one port, data dir and storage, started and stopped as often as the test needs. */
interface Registry {
  host: string;
  url: string;
  dir: string;
  indexPath: string;
  start(opts?: { waitReady?: boolean }): Promise<ServerProcess>;
  cli(args: string[]): Promise<ToolResult>;
}

async function registry(t: Test): Promise<Registry> {
  const dir = tempDir(t, 'rebuild-e2e-');
  let storage: Record<string, unknown> = { driver: 'local', local: { root: path.join(dir, 'blobs'), fsync: false } };
  if (S3) {
    const { startS3rver } = await import('../helpers/s3rver');
    storage = (await startS3rver(t)).overrides.storage as Record<string, unknown>;
  }
  const configFile = path.join(dir, 'config.yml');
  // JSON is YAML: the one file the server and the CLI read. No background gc (referrers are untagged).
  writeFileSync(configFile, JSON.stringify({ gc: { interval: 0 }, retention: { interval: 0 }, storage }, null, 2));
  const port = await freePort();
  const env = serverEnv(dir, port, { REGISTRY_CONFIG: configFile });
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REGISTRY_')));
  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    dir,
    indexPath: env.REGISTRY_INDEX_PATH!,
    start: (opts) => spawnServer(t, env, port, opts),
    cli: async (args) => {
      const r = await runProcess(process.execPath, [CLI, ...args], { env: { ...clean, ...env }, timeoutMs: 120_000 });
      return { code: r.code, out: r.stdoutBytes, stdout: r.stdout, stderr: r.stderr, ms: r.ms };
    },
  };
}

/**
 * An OCI layout whose index.json names an image index (tag `tag`) over one image per architecture:
 * what `skopeo copy --all oci:DIR:TAG` pushes as a multi-arch image.
 */
function multiArchLayout(dir: string, tag: string, arches: string[], seed: number) {
  const images = arches.map((arch, i) => {
    const sub = `${dir}-${arch}`;
    return { arch, dir: sub, layout: makeOciLayout(sub, { tag: arch, layers: 1, layerBytes: 3000, seed: seed + i, arch }) };
  });
  const blobs = path.join(dir, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  for (const img of images) for (const d of img.layout.blobs) writeFileSync(path.join(blobs, d.slice(7)), readLayoutBlob(img.dir, d));
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: images.map((i) => ({ mediaType: OCI_MANIFEST, digest: i.layout.manifestDigest, size: i.layout.manifest.length, platform: { architecture: i.arch, os: 'linux' } })),
    }),
  );
  const indexDigest = sha256(index);
  writeFileSync(path.join(blobs, indexDigest.slice(7)), index);
  writeFileSync(
    path.join(dir, 'index.json'),
    JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: OCI_INDEX, digest: indexDigest, size: index.length, annotations: { 'org.opencontainers.image.ref.name': tag } }] }),
  );
  writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  return { index, indexDigest, images };
}

/** Every file `skopeo copy --all docker://REF dir:INTO` wrote (manifests, configs, layers), by name. */
async function skopeoPull(t: Test, env: ContainersEnv, ref: string, into: string): Promise<Map<string, Buffer>> {
  mkdirSync(path.dirname(into), { recursive: true });
  const r = await env.skopeo(['copy', '--all', '--src-tls-verify=false', `docker://${ref}`, `dir:${into}`]);
  t.equal(r.code, 0, `skopeo pull ${ref}`, said(r));
  if (r.code !== 0) return new Map();
  return new Map(
    readdirSync(into)
      .sort()
      .map((f) => [f, readFileSync(path.join(into, f))]),
  );
}

/** The same file names with the same bytes. */
function sameFiles(t: Test, got: Map<string, Buffer>, want: Map<string, Buffer>, what: string): void {
  t.same([...got.keys()], [...want.keys()], `${what}: the same files`);
  const differ = [...want].filter(([f, b]) => !got.get(f)?.equals(b)).map(([f]) => f);
  t.same(differ, [], `${what}: every file byte-identical (${want.size} files)`);
}

const hex = (digest: string) => digest.replace(/^sha256:/, '');

async function getJson(url: string): Promise<{ status: number; body: any }> {
  const res = await fetch(url);
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, body };
}

const REPOS = ['mix/oci', 'mix/copy', 'mix/docker', 'mix/multi', 'mix/built'];
const V1_REPOS = ['v1ns/app', 'v1ns/tool'];
const SIG = 'application/vnd.example.signature';
const SBOM = 'application/vnd.example.sbom+json';
const DESCRIPTION = 'Toolbox rebuilt from storage';

/** Everything the API answers about the set apart from image bytes: compared before and after the rebuild. */
async function answers(url: string, subject: string) {
  const out: Record<string, unknown> = {};
  out.catalog = await getJson(`${url}/v2/_catalog`);
  for (const r of REPOS) out[`tags ${r}`] = await getJson(`${url}/v2/${r}/tags/list`);
  out.referrers = await getJson(`${url}/v2/mix/oci/referrers/${subject}`);
  out['referrers of sig'] = await getJson(`${url}/v2/mix/oci/referrers/${subject}?artifactType=${encodeURIComponent(SIG)}`);
  for (const r of V1_REPOS) {
    out[`v1 tags ${r}`] = await getJson(`${url}/v1/repositories/${r}/tags`);
    out[`v1 images ${r}`] = await getJson(`${url}/v1/repositories/${r}/images`);
  }
  for (const q of ['v1ns', 'toolbox', 'mix', 'nothing-like-this']) out[`search ${q}`] = await getJson(`${url}/v1/search?q=${q}`);
  return out;
}

/** `docker search` as dockerd asks it (GET /v1/search): name and description per line. */
async function dockerSearch(t: Test, d: Dockerd, host: string, term: string): Promise<string> {
  const r = await d.docker(['search', '--no-trunc', '--format', '{{.Name}}|{{.Description}}', `${host}/${term}`]);
  t.equal(r.code, 0, `docker search ${term}`, said(r));
  return r.stdout;
}

async function v1Pulls(t: Test, url: string, tags: [string, string, V1Image[]][]): Promise<void> {
  for (const [repo, tag, chain] of tags) {
    const pulled = await pullV1(url, repo, tag);
    t.same(pulled.map((p) => p.id), chain.map((i) => i.id), `v1 pull ${repo}:${tag}: the chain, root first`);
    const differ = chain.filter((img, i) => !pulled[i]?.json.equals(img.json) || !pulled[i]?.layer.equals(img.layer)).map((i) => i.id);
    t.same(differ, [], `v1 pull ${repo}:${tag}: every json and layer byte for byte`);
  }
}

t.test(`rebuild-index with real clients (${S3 ? 's3' : 'local'} storage): every image pulls as before`, async (t) => {
  if (!requireTools(t, ['skopeo', 'dockerd', 'docker'])) return;
  const started = Date.now();
  const reg = await registry(t);
  const env = await containersEnv(t);
  // One dockerd for the whole test, started while skopeo pushes.
  const dockerd = startDockerd(t);
  dockerd.catch(() => undefined);
  const work = tempDir(t, 'rebuild-e2e-work-');
  let srv = await reg.start();
  const h = reg.host;
  const skopeo = async (args: string[], what: string) => {
    const r = await env.skopeo(args);
    t.equal(r.code, 0, what, said(r));
    return r;
  };
  const push = (src: string, ref: string, extra: string[] = []) =>
    skopeo(['copy', '--dest-tls-verify=false', ...extra, src, `docker://${h}/${ref}`], `skopeo push ${ref} ${extra.join(' ')}`.trim());

  // --- The mixed set. ---
  const layout = (name: string, seed: number, layers = 2): { dir: string; layout: OciLayoutResult } => {
    const dir = path.join(work, name);
    return { dir, layout: makeOciLayout(dir, { tag: name, layers, layerBytes: 5000, seed }) };
  };
  // OCI: mix/oci:stable first names `first` (kept, untagged, pulled by digest), then moves onto `app`; mix/oci:old is
  // pushed and deleted.
  const app = layout('app', 901);
  const first = layout('first', 902, 1);
  const old = layout('old', 903, 1);
  await push(`oci:${first.dir}:first`, 'mix/oci:stable');
  await push(`oci:${app.dir}:app`, 'mix/oci:v1');
  await push(`oci:${app.dir}:app`, 'mix/oci:stable');
  await push(`oci:${old.dir}:old`, 'mix/oci:old');
  await skopeo(['delete', '--tls-verify=false', `docker://${h}/mix/oci:old`], 'skopeo delete mix/oci:old (its manifest)');
  // A copy inside the registry: the blobs are linked into mix/copy (mounted or uploaded again).
  await skopeo(['copy', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${h}/mix/oci:v1`, `docker://${h}/mix/copy:v1`], 'skopeo copy mix/oci:v1 -> mix/copy:v1');
  // Docker schema 2, converted by skopeo.
  const dk = layout('dk', 904);
  await push(`oci:${dk.dir}:dk`, 'mix/docker:v1', ['--format', 'v2s2']);
  // Multi-arch: the index and both images in one push.
  const multi = multiArchLayout(path.join(work, 'multi'), 'multi', ['amd64', 'arm64'], 905);
  await push(`oci:${path.join(work, 'multi')}:multi`, 'mix/multi:latest', ['--all']);
  const servedIndex = await fetch(`${reg.url}/v2/mix/multi/manifests/latest`, { headers: { accept: OCI_INDEX } });
  t.equal(servedIndex.headers.get('docker-content-digest'), multi.indexDigest, 'skopeo pushed the index as it is in the layout');

  // Referrers of mix/oci:v1, pushed by digest (untagged) as signing tools do.
  const subject = { digest: app.layout.manifestDigest, size: app.layout.manifest.length, mediaType: OCI_MANIFEST };
  const sig = buildImage({ layers: 1, layerBytes: 300, subject, artifactType: SIG });
  const sbom = buildImage({ layers: 1, layerBytes: 700, subject, artifactType: SBOM, annotations: { 'org.opencontainers.image.created': '2024-05-01T00:00:00Z' } });
  for (const a of [sig, sbom]) t.equal(await pushImage(reg.url, 'mix/oci', a.manifestDigest, a), a.manifestDigest, `referrer ${a.manifestDigest.slice(7, 19)} pushed`);

  // v1, the Docker 1.x way: two tags on one chain (one on its parent), and another repository.
  const chain = imageChain(3, { emptyAt: 1 });
  const tool = imageChain(1);
  await pushV1(reg.url, 'v1ns/app', 'latest', chain);
  await pushV1(reg.url, 'v1ns/app', 'v1.0', chain.slice(0, 2));
  await pushV1(reg.url, 'v1ns/tool', 'latest', tool);
  const v1Tags: [string, string, V1Image[]][] = [
    ['v1ns/app', 'latest', chain],
    ['v1ns/app', 'v1.0', chain.slice(0, 2)],
    ['v1ns/tool', 'latest', tool],
  ];

  // docker: a FROM-scratch build pushed.
  const d = await dockerd;
  const ctx = path.join(work, 'ctx');
  mkdirSync(ctx);
  writeFileSync(path.join(ctx, 'hello.txt'), 'rebuilt from storage\n');
  writeFileSync(path.join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY hello.txt /hello.txt\nCMD ["/hello.txt"]\n');
  const built = `${h}/mix/built:v1`;
  const build = await d.docker(['build', '-t', built, ctx], { env: { DOCKER_BUILDKIT: '0' } });
  t.equal(build.code, 0, 'docker build FROM scratch', said(build));
  const dockerPush = await d.docker(['push', built]);
  t.equal(dockerPush.code, 0, 'docker push mix/built:v1', said(dockerPush));
  const builtDigest = /v1: digest: (sha256:[0-9a-f]{64})/.exec(dockerPush.stdout)?.[1];
  t.ok(builtDigest, 'docker printed the pushed digest', said(dockerPush));
  const builtId = (await d.docker(['image', 'inspect', '-f', '{{.Id}}', built])).stdout.trim();
  t.match(builtId, /^sha256:[0-9a-f]{64}$/, 'the built image id');
  t.equal((await d.docker(['rmi', built])).code, 0, 'docker rmi mix/built:v1: the pull below goes to the registry');

  // A search description: no API sets one (they come from indexes of earlier versions); written into the index
  // with the server stopped, it reaches the journal when the server starts again.
  t.equal(await srv.stop(), 0, 'the server stops');
  const db = new Database(reg.indexPath);
  t.equal(db.prepare('UPDATE repositories SET description = ? WHERE name = ?').run(DESCRIPTION, 'v1ns/tool').changes, 1, 'description of v1ns/tool set');
  db.close();
  srv = await reg.start();

  // --- Before: what clients see. ---
  const refs: [string, string][] = [
    ['mix/oci:v1', 'oci-v1'],
    ['mix/oci:stable', 'oci-stable'],
    [`mix/oci@${first.layout.manifestDigest}`, 'oci-untagged'],
    ['mix/copy:v1', 'copy-v1'],
    ['mix/docker:v1', 'docker-v1'],
    ['mix/multi:latest', 'multi'],
    ['mix/built:v1', 'built'],
    [`mix/oci@${sig.manifestDigest}`, 'sig'],
    [`mix/oci@${sbom.manifestDigest}`, 'sbom'],
  ];
  const before = new Map<string, Map<string, Buffer>>();
  for (const [ref, name] of refs) before.set(ref, await skopeoPull(t, env, `${h}/${ref}`, path.join(work, 'before', name)));
  // What was pushed is what is served: the layouts' blobs, the index, the artifacts.
  const appFiles = before.get('mix/oci:v1')!;
  t.ok(appFiles.get('manifest.json')?.equals(app.layout.manifest), 'mix/oci:v1: the manifest skopeo pushed');
  t.ok(before.get('mix/copy:v1')!.get('manifest.json')?.equals(app.layout.manifest), 'mix/copy:v1: the same manifest');
  t.same(app.layout.blobs.filter((b) => b !== app.layout.manifestDigest && !appFiles.get(hex(b))?.equals(readLayoutBlob(app.dir, b))), [], 'mix/oci:v1: its config and layers');
  const multiFiles = before.get('mix/multi:latest')!;
  t.ok(multiFiles.get('manifest.json')?.equals(multi.index), 'mix/multi:latest: the index');
  for (const img of multi.images) t.ok(multiFiles.get(`${hex(img.layout.manifestDigest)}.manifest.json`)?.equals(img.layout.manifest), `mix/multi: the ${img.arch} manifest`);
  t.ok(before.get(`mix/oci@${sig.manifestDigest}`)!.get('manifest.json')?.equals(sig.manifest), 'the signature artifact');
  t.equal(sha256(before.get('mix/built:v1')!.get('manifest.json') ?? Buffer.alloc(0)), builtDigest, 'mix/built:v1: the manifest docker pushed');
  const dockerManifest = JSON.parse(before.get('mix/docker:v1')!.get('manifest.json')?.toString() ?? '{}') as { mediaType?: string; config?: { digest: string } };
  t.equal(dockerManifest.mediaType, 'application/vnd.docker.distribution.manifest.v2+json', 'mix/docker:v1 is Docker schema 2');

  const seen = await answers(reg.url, app.layout.manifestDigest);
  const failed = Object.entries(seen).filter(([, a]) => (a as { status: number }).status !== 200);
  t.same(failed, [], `all ${Object.keys(seen).length} answers are 200`);
  t.same((seen.catalog as { body: unknown }).body, { repositories: [...REPOS, ...V1_REPOS].sort() }, 'the catalog lists every repository (v1 ones through the bridge)');
  t.same((seen['tags mix/oci'] as { body: { tags: string[] } }).body.tags, ['stable', 'v1'], 'mix/oci: stable and v1 (old deleted)');
  const referrers = (seen.referrers as { body: { manifests: { digest: string; artifactType: string; annotations?: unknown }[] } }).body.manifests;
  t.same(
    referrers.map((m) => [m.digest, m.artifactType]).sort(),
    [[sig.manifestDigest, SIG], [sbom.manifestDigest, SBOM]].sort(),
    'referrers: the signature and the SBOM',
  );
  t.same((seen['search toolbox'] as { body: { results: unknown[] } }).body.results.map((r: any) => [r.name, r.description]), [['v1ns/tool', DESCRIPTION]], 'v1 search finds the description');
  t.same(Object.keys((seen['v1 tags v1ns/app'] as { body: object }).body).sort(), ['latest', 'v1.0'], 'v1 tags');
  const searchBefore = { v1ns: await dockerSearch(t, d, h, 'v1ns'), toolbox: await dockerSearch(t, d, h, 'toolbox') };
  t.match(searchBefore.toolbox, `v1ns/tool|${DESCRIPTION}`, 'docker search shows the description');
  await v1Pulls(t, reg.url, v1Tags);
  const old404 = await fetch(`${reg.url}/v2/mix/oci/manifests/${old.layout.manifestDigest}`, { method: 'HEAD' });
  t.equal(old404.status, 404, 'the deleted manifest is gone');

  // --- Lose the index. ---
  t.equal(await srv.stop(), 0, 'the server stops');
  for (const s of ['', '-wal', '-shm']) rmSync(reg.indexPath + s, { force: true });
  const refused = await reg.start({ waitReady: false });
  t.equal(await refused.exited, 2, 'the server refuses to start without its index over storage that holds data');
  t.match(refused.stderr(), /the index .*index\.db \(index\.path\) is missing, but the storage holds a registry's data\. Rebuild the index from storage with `npm run registry -- rebuild-index`/, 'and says how to rebuild it');
  t.notOk(existsSync(reg.indexPath), 'it created no index');

  const rebuilt = await reg.cli(['rebuild-index']);
  t.equal(rebuilt.code, 0, `registry rebuild-index exits 0 (${rebuilt.ms} ms)`, said(rebuilt));
  // 9 tags: the 6 pushed over v2 and the 3 the bridge made from the v1 tags
  t.match(rebuilt.stdout, /^rebuild-index: 7 repositories, 9 tags, \d+ manifests, \d+ blobs, 4 v1 images, 3 v1 tags from \d+ records? in \d+ segments?; no problems; in /m, 'its summary', said(rebuilt));
  t.notMatch(rebuilt.stdout, /^problem:/m, 'no problem reported');
  t.ok(existsSync(reg.indexPath), 'index.db is back');
  if (S3) t.notOk(existsSync(path.join(reg.dir, 'blobs')), 'nothing went to local storage: the journal and the blobs were all on S3');
  t.comment(rebuilt.stdout.trim().split('\n').pop());

  // --- After: the same answers, the same bytes. ---
  srv = await reg.start();
  t.same(await answers(reg.url, app.layout.manifestDigest), seen, 'tags, catalog, referrers, v1 tags, v1 image lists and search answer as before');
  t.equal((await fetch(`${reg.url}/v2/mix/oci/manifests/${old.layout.manifestDigest}`, { method: 'HEAD' })).status, 404, 'the deleted manifest stays deleted');
  for (const [ref, name] of refs) sameFiles(t, await skopeoPull(t, env, `${h}/${ref}`, path.join(work, 'after', name)), before.get(ref)!, `skopeo ${ref}`);
  t.same({ v1ns: await dockerSearch(t, d, h, 'v1ns'), toolbox: await dockerSearch(t, d, h, 'toolbox') }, searchBefore, 'docker search as before');
  await v1Pulls(t, reg.url, v1Tags);

  // docker pull: the served manifest digest, the image id (the config digest) and the layers docker verified.
  const configOf = (files: Map<string, Buffer>, manifest = 'manifest.json') => (JSON.parse(files.get(manifest)!.toString()) as { config: { digest: string } }).config.digest;
  const amd = multi.images.find((i) => i.arch === 'amd64')!;
  const pulls: [string, string, string][] = [
    ['mix/oci:v1', app.layout.manifestDigest, app.layout.configDigest],
    ['mix/docker:v1', sha256(before.get('mix/docker:v1')!.get('manifest.json')!), configOf(before.get('mix/docker:v1')!)],
    ['mix/multi:latest', multi.indexDigest, configOf(multiFiles, `${hex(amd.layout.manifestDigest)}.manifest.json`)],
    ['mix/built:v1', builtDigest ?? '', builtId],
  ];
  for (const [ref, digest, id] of pulls) {
    const r = await d.docker(['pull', `${h}/${ref}`]);
    t.equal(r.code, 0, `docker pull ${ref}`, said(r));
    t.match(r.stdout, `Digest: ${digest}`, `${ref}: the digest as pushed`, said(r));
    const info = (JSON.parse((await d.docker(['image', 'inspect', `${h}/${ref}`])).stdout || '[]') as { Id: string; RepoDigests: string[] }[])[0];
    t.equal(info?.Id, id, `${ref}: the image id as before`);
    t.same(info?.RepoDigests, [`${h}/${ref.split(':')[0]}@${digest}`], `${ref}: repo digest`);
  }

  // The rebuilt index takes writes: skopeo pushes a new image and it is listed.
  const later = layout('later', 906, 1);
  await push(`oci:${later.dir}:later`, 'mix/later:v1');
  t.same((await getJson(`${reg.url}/v2/_catalog`)).body, { repositories: [...REPOS, ...V1_REPOS, 'mix/later'].sort() }, 'a push after the rebuild is listed');
  t.equal(await srv.stop(), 0, 'the server stops');
  t.comment(`${S3 ? 's3' : 'local'} storage: ${((Date.now() - started) / 1000).toFixed(1)} s`);
});
