import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { containersEnv, type ContainersEnv, type ToolResult } from '../helpers/containers';
import { runProcess } from '../helpers/daemon';
import { startDockerd, type DockerResult } from '../helpers/dockerd';
import { layoutBlobs, makeOciLayout, readLayoutBlob, type OciLayoutResult } from '../helpers/oci-layout';
import { freePort, ROOT, serverEnv, spawnServer } from '../helpers/process';
import { tempDir } from '../helpers/server';
import { requireTools } from '../helpers/tools';

// Acceptance for the storage lifecycle with real clients against the real server process (dist/server.js,
// as `npm start` runs it) and the operator CLI (dist/cli/registry.js) on the same index and blob store:
//  1. quotas: skopeo pushes under a namespace quota until one push would cross it; that push is refused with
//     DENIED naming the quota and leaves no tag, the earlier images still pull byte for byte, `du` agrees with
//     itself and with the bytes pushed; a delete plus `gc` frees room and the refused push then succeeds;
//  2. retention: twelve tags pushed one after the other, keepLast 3 + keepTags v*: the dry run lists exactly
//     what the real run deletes, the newest three b-tags and the v-tags stay and still pull, also after gc;
//  3. repository deletion over HTTP (DELETE /v2/_registry/repositories/<name>) with docker: the repository no
//     longer pulls nor appears in the catalog, a repository sharing its layers is untouched (also after gc),
//     and the name can be pushed again.

const CLI = path.join(ROOT, 'dist/cli/registry.js');
const MiB = 1024 * 1024;

t.before(() => {
  if (!existsSync(CLI)) throw new Error('dist/cli/registry.js not built: run npm run build (npm test builds it)');
});

interface Server {
  url: string;
  host: string;
  dir: string;
  /** Run the CLI on this server's configuration, index and blobs (plus `extra` REGISTRY_* overrides). */
  cli(args: string[], extra?: Record<string, string>): Promise<ToolResult>;
  stderr(): string;
}

/** The real server process on a free port, configured by `config` (written as the file REGISTRY_CONFIG names). */
async function startServer(t: Test, prefix: string, config: Record<string, unknown>): Promise<Server> {
  const dir = tempDir(t, prefix);
  const configFile = path.join(dir, 'config.yml');
  // JSON is YAML: the same file the server and the CLI read.
  writeFileSync(configFile, JSON.stringify({ gc: { interval: 0 }, retention: { interval: 0 }, ...config }, null, 2));
  const port = await freePort();
  const env = serverEnv(dir, port, { REGISTRY_CONFIG: configFile, REGISTRY_STORAGE_LOCAL_FSYNC: 'false' });
  const srv = await spawnServer(t, env, port);
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REGISTRY_')));
  const cli = async (args: string[], extra: Record<string, string> = {}): Promise<ToolResult> => {
    const r = await runProcess(process.execPath, [CLI, ...args], { env: { ...clean, ...env, ...extra }, timeoutMs: 60_000 });
    return { code: r.code, out: r.stdoutBytes, stdout: r.stdout, stderr: r.stderr, ms: r.ms };
  };
  return { url: srv.url, host: `127.0.0.1:${port}`, dir, cli, stderr: srv.stderr };
}

/** Tool output for assertion diagnostics. */
const said = (r: ToolResult | DockerResult) => ({ code: r.code, stdout: r.stdout.slice(-2000), stderr: r.stderr.slice(-2000) });

interface Image {
  name: string;
  dir: string;
  layout: OciLayoutResult;
  /** Bytes of every blob the push stores: layers, config and manifest. */
  bytes: number;
}

function image(work: string, name: string, opts: { layers: number; layerBytes: number; seed: number }): Image {
  const dir = path.join(work, name);
  const layout = makeOciLayout(dir, { tag: name, ...opts });
  const bytes = layout.blobs.reduce((n, d) => n + readLayoutBlob(dir, d).length, 0);
  return { name, dir, layout, bytes };
}

async function push(env: ContainersEnv, img: Image, ref: string): Promise<ToolResult> {
  return env.skopeo(['copy', '--dest-tls-verify=false', `oci:${img.dir}:${img.name}`, `docker://${ref}`]);
}

/** skopeo copy back to a fresh OCI layout: the same blobs, each byte-identical to what was pushed. */
async function pullsBack(t: Test, env: ContainersEnv, img: Image, ref: string, into: string): Promise<void> {
  const r = await env.skopeo(['copy', '--src-tls-verify=false', `docker://${ref}`, `oci:${into}:${img.name}`]);
  t.equal(r.code, 0, `skopeo pull ${ref}`, said(r));
  if (r.code !== 0) return;
  t.same(layoutBlobs(into), img.layout.blobs, `${ref}: the same blobs (layers, config, manifest)`);
  const differ = img.layout.blobs.filter((d) => !readLayoutBlob(into, d).equals(readLayoutBlob(img.dir, d)));
  t.same(differ, [], `${ref}: every blob byte-identical`);
}

interface Du {
  rows: { repo: string; size: number; shared: number; unique: number; blobs: number }[];
  total: number;
  quotas: Map<string, { used: number; limit: number; pct: number }>;
}

/** `du --bytes`: the table, the total and the quota lines. */
async function du(t: Test, srv: Server): Promise<Du> {
  const r = await srv.cli(['du', '--bytes']);
  t.equal(r.code, 0, 'registry du --bytes exits 0', said(r));
  const lines = r.stdout.trimEnd().split('\n');
  t.match(lines[0] ?? '', /^REPOSITORY\s+SIZE\s+SHARED\s+UNIQUE\s+BLOBS$/, 'du table header');
  const out: Du = { rows: [], total: NaN, quotas: new Map() };
  for (const line of lines.slice(1)) {
    let m = /^(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$/.exec(line);
    if (m) {
      out.rows.push({ repo: m[1]!, size: Number(m[2]), shared: Number(m[3]), unique: Number(m[4]), blobs: Number(m[5]) });
      continue;
    }
    if ((m = /^total: (\d+) in \d+ repositor(?:y|ies)$/.exec(line))) {
      out.total = Number(m[1]);
      continue;
    }
    if ((m = /^quota (\S+): (\d+) of (\d+) used \((\d+)%\)$/.exec(line))) {
      out.quotas.set(m[1]!, { used: Number(m[2]), limit: Number(m[3]), pct: Number(m[4]) });
      continue;
    }
    t.fail(`unexpected du line ${JSON.stringify(line)}`, { stdout: r.stdout });
  }
  t.equal(out.total, out.rows.reduce((n, row) => n + row.size, 0), 'du total is the sum of the table', { stdout: r.stdout });
  return out;
}

const sizeOf = (d: Du, repo: string) => d.rows.find((r) => r.repo === repo)?.size ?? 0;

async function json(url: string, init?: RequestInit): Promise<{ status: number; body: any }> {
  const res = await fetch(url, init);
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, body };
}

t.test('quota: skopeo pushes until the quota, the crossing push is refused and nothing of it stays tagged; gc frees room', async (t) => {
  if (!requireTools(t, ['skopeo'])) return;
  const LIMIT = 3 * MiB;
  const srv = await startServer(t, 'lc-quota-', { quotas: [{ repository: 'quota/**', limit: '3MiB' }] });
  const env = await containersEnv(t);
  const work = tempDir(t, 'lc-quota-work-');
  // Incompressible layers: A and B take about 1 MiB each, C 1.5 MiB: A + B + C crosses 3 MiB, B + C does not.
  const a = image(work, 'a', { layers: 1, layerBytes: MiB, seed: 501 });
  const b = image(work, 'b', { layers: 2, layerBytes: MiB / 2, seed: 502 });
  const c = image(work, 'c', { layers: 1, layerBytes: 1.5 * MiB, seed: 503 });
  t.ok(a.bytes + b.bytes <= LIMIT && a.bytes + b.bytes + c.bytes > LIMIT && b.bytes + c.bytes <= LIMIT, 'image sizes fit the plan', {
    a: a.bytes,
    b: b.bytes,
    c: c.bytes,
  });

  for (const [img, repo] of [[a, 'quota/a:1'], [b, 'quota/b:1']] as const) {
    const r = await push(env, img, `${srv.host}/${repo}`);
    t.equal(r.code, 0, `push ${repo} (under the quota)`, said(r));
  }
  let usage = await du(t, srv);
  t.equal(sizeOf(usage, 'quota/a'), a.bytes, 'du: quota/a is charged exactly the bytes of image A (layers, config, manifest)');
  t.equal(sizeOf(usage, 'quota/b'), b.bytes, 'du: quota/b is charged exactly the bytes of image B');
  t.same(usage.quotas.get('quota/**'), { used: a.bytes + b.bytes, limit: LIMIT, pct: Math.floor(((a.bytes + b.bytes) / LIMIT) * 100) }, 'du: quota line');

  // The same image again in the same repository costs nothing: each blob counts once per repository.
  const again = await push(env, a, `${srv.host}/quota/a:again`);
  t.equal(again.code, 0, 'push image A again as quota/a:again', said(again));
  usage = await du(t, srv);
  t.equal(usage.quotas.get('quota/**')?.used, a.bytes + b.bytes, 'a second tag on the same blobs adds no bytes');

  // The push that would cross the limit.
  const refused = await push(env, c, `${srv.host}/quota/c:1`);
  t.not(refused.code, 0, 'push quota/c:1 (would exceed the quota) fails', said(refused));
  t.match(refused.stderr, 'quota exceeded for quota/**', 'skopeo reports the quota the push exceeded', said(refused));
  t.match(refused.stderr, /denied/i, 'as DENIED', said(refused));
  t.comment(`skopeo: ${refused.stderr.trim().split('\n').pop()}`);
  const inspectC = await env.skopeo(['inspect', '--tls-verify=false', '--no-tags', `docker://${srv.host}/quota/c:1`]);
  t.not(inspectC.code, 0, 'the refused image has no tag: skopeo inspect quota/c:1 fails', said(inspectC));
  t.equal((await fetch(`${srv.url}/v2/quota/c/manifests/${c.layout.manifestDigest}`, { method: 'HEAD' })).status, 404, 'nor a manifest by digest');

  // Refused while skopeo is still sending a chunk (layers of 1 MiB, uploaded 4 at a time): every refusal must
  // reach the client as DENIED with the quota message, never as a connection cut under its feet. Repeated,
  // because whether the answer is read before the connection goes is a race.
  const big = image(work, 'big', { layers: 4, layerBytes: MiB, seed: 504 });
  const outcomes: Record<string, number> = {};
  const bigRepos: string[] = [];
  for (let i = 0; i < 12; i++) {
    const r = await push(env, big, `${srv.host}/quota/big${i}:1`);
    bigRepos.push(`quota/big${i}`);
    const what =
      r.code === 0
        ? 'pushed (over the quota!)'
        : r.stderr.includes('quota exceeded for quota/**')
          ? 'denied: quota exceeded'
          : /broken pipe/.test(r.stderr)
            ? 'write: broken pipe (no answer seen)'
            : /connection reset/.test(r.stderr)
              ? 'connection reset (no answer seen)'
              : r.stderr.trim().slice(-200);
    outcomes[what] = (outcomes[what] ?? 0) + 1;
  }
  t.same(outcomes, { 'denied: quota exceeded': 12 }, 'each of 12 refused pushes tells skopeo the quota was exceeded (not a broken pipe)');
  const bigTags = await Promise.all(bigRepos.map(async (r) => (await fetch(`${srv.url}/v2/${r}/manifests/1`, { method: 'HEAD' })).status));
  t.same(new Set(bigTags), new Set([404]), 'none of them left a tag');

  // The images pushed before are intact.
  await pullsBack(t, env, a, `${srv.host}/quota/a:1`, path.join(work, 'a-back'));
  await pullsBack(t, env, b, `${srv.host}/quota/b:1`, path.join(work, 'b-back'));

  // du agrees with itself: the quota's use is the sum of the table rows it covers.
  usage = await du(t, srv);
  const quotaRows = usage.rows.filter((r) => r.repo.startsWith('quota/'));
  const usedBefore = usage.quotas.get('quota/**')?.used ?? NaN;
  t.equal(usedBefore, quotaRows.reduce((n, r) => n + r.size, 0), 'du: quota used = sum of the quota/* rows', { rows: quotaRows });
  t.ok(usedBefore <= LIMIT, 'the refused push did not take the quota past its limit', { used: usedBefore, limit: LIMIT });
  // Blobs of the refused image that fitted (its config, say) stay linked until gc: never the refused layer.
  const cLayer = readLayoutBlob(c.dir, c.layout.layerDigests[0]!).length;
  t.ok(sizeOf(usage, 'quota/c') < cLayer, 'quota/c is not charged for the refused layer', { quotaC: sizeOf(usage, 'quota/c'), layer: cLayer });

  // Free room: delete image A (both its tags: DELETE by digest), collect at once, untagged manifests too.
  const del = await fetch(`${srv.url}/v2/quota/a/manifests/${a.layout.manifestDigest}`, { method: 'DELETE' });
  t.equal(del.status, 202, 'DELETE manifest of quota/a');
  const gc = await srv.cli(['gc'], { REGISTRY_GC_DELAY: '0', REGISTRY_GC_UNTAGGED: 'delete' });
  t.equal(gc.code, 0, 'registry gc exits 0', said(gc));
  t.match(gc.stdout, /^gc: removed \d+ blobs?/m, 'gc summary', said(gc));
  usage = await du(t, srv);
  const usedAfter = usage.quotas.get('quota/**')?.used ?? NaN;
  t.ok(usedAfter < usedBefore, 'du: quota use went down', { before: usedBefore, after: usedAfter });
  t.equal(usedAfter, b.bytes, 'du: only image B is left charged (A deleted, the refused push\'s leftovers collected)', {
    rows: usage.rows,
  });
  t.equal(sizeOf(usage, 'quota/a'), 0, 'du: quota/a is charged nothing');
  const inspectA = await env.skopeo(['inspect', '--tls-verify=false', '--no-tags', `docker://${srv.host}/quota/a:1`]);
  t.not(inspectA.code, 0, 'quota/a:1 is gone', said(inspectA));

  // Now the refused push fits.
  const retry = await push(env, c, `${srv.host}/quota/c:1`);
  t.equal(retry.code, 0, 'push quota/c:1 again: now under the quota, it succeeds', said(retry));
  await pullsBack(t, env, c, `${srv.host}/quota/c:1`, path.join(work, 'c-back'));
  await pullsBack(t, env, b, `${srv.host}/quota/b:1`, path.join(work, 'b-back2'));
  usage = await du(t, srv);
  t.equal(usage.quotas.get('quota/**')?.used, b.bytes + c.bytes, 'du: quota use is B + C');
  t.equal(sizeOf(usage, 'quota/c'), c.bytes, 'du: quota/c is charged exactly image C');

  // A copy inside the registry (skopeo mounts blobs it knows are in quota/b, or uploads them) counts again in
  // the new repository: B twice plus C crosses the limit, so it is refused too.
  const copy = await env.skopeo(['copy', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${srv.host}/quota/b:1`, `docker://${srv.host}/quota/b2:1`]);
  t.not(copy.code, 0, 'skopeo copy quota/b:1 -> quota/b2:1 (B counted again) fails', said(copy));
  t.match(copy.stderr, 'quota exceeded for quota/**', 'with the quota message', said(copy));
  t.equal((await fetch(`${srv.url}/v2/quota/b2/manifests/1`, { method: 'HEAD' })).status, 404, 'quota/b2:1 does not exist');
  usage = await du(t, srv);
  const bLayers = Math.min(...b.layout.layerDigests.map((l) => readLayoutBlob(b.dir, l).length));
  t.ok(sizeOf(usage, 'quota/b2') < bLayers, 'quota/b2 is charged for none of B\'s layers', { quotaB2: sizeOf(usage, 'quota/b2') });
  t.ok((usage.quotas.get('quota/**')?.used ?? Infinity) <= LIMIT, 'the quota is not exceeded', { quota: usage.quotas.get('quota/**') });

  // Two pushes at once, each fitting in what is left but not both: one is refused, the limit holds.
  const free = LIMIT - (usage.quotas.get('quota/**')?.used ?? LIMIT);
  const racers = ['x', 'y'].map((n, i) => image(work, n, { layers: 1, layerBytes: Math.floor(free * 0.6), seed: 510 + i }));
  t.ok(racers.every((r) => r.bytes < free) && racers[0]!.bytes + racers[1]!.bytes > free, 'each racer fits alone, not both', { free });
  const raced = await Promise.all(racers.map((r) => push(env, r, `${srv.host}/quota/${r.name}:1`)));
  t.equal(raced.filter((r) => r.code === 0).length, 1, 'exactly one of two concurrent pushes succeeds', { results: raced.map(said) });
  for (const r of raced.filter((r) => r.code !== 0)) t.match(r.stderr, 'quota exceeded for quota/**', 'the other is refused by the quota', said(r));
  usage = await du(t, srv);
  t.ok((usage.quotas.get('quota/**')?.used ?? Infinity) <= LIMIT, 'concurrent pushes did not pass the limit together', { quota: usage.quotas.get('quota/**') });
});

const DELETION = /^(would delete|deleted) tag ([^:\s]+):(\S+) \((sha256:[0-9a-f]{64})\): (.+)$/;

function deletions(stdout: string): { tag: string; repo: string; digest: string; reason: string }[] {
  return stdout
    .split('\n')
    .map((line) => DELETION.exec(line))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ repo: m[2]!, tag: m[3]!, digest: m[4]!, reason: m[5]! }));
}

async function tagList(url: string, repo: string): Promise<string[]> {
  const r = await json(`${url}/v2/${repo}/tags/list`);
  return r.status === 200 ? [...((r.body as { tags?: string[] }).tags ?? [])].sort() : [`HTTP ${r.status}`];
}

t.test('retention: keepLast 3 + keepTags v*: the dry run lists exactly what the run deletes; kept tags pull', async (t) => {
  if (!requireTools(t, ['skopeo'])) return;
  const srv = await startServer(t, 'lc-ret-', { retention: { interval: 0, policies: [{ repository: 'ret/**', keepLast: 3, keepTags: ['v*'] }] } });
  const env = await containersEnv(t);
  const work = tempDir(t, 'lc-ret-work-');
  // Pushed one after the other in this order: push time order. The v-tags are older than the newest three.
  const order = ['b1', 'b2', 'b3', 'v1.0', 'b4', 'b5', 'b6', 'v1.1', 'b7', 'b8', 'b9', 'b10'];
  const images = new Map(order.map((tag, i) => [tag, image(work, tag, { layers: 1, layerBytes: 2048, seed: 700 + i })]));
  for (const tag of order) {
    const r = await push(env, images.get(tag)!, `${srv.host}/ret/app:${tag}`);
    t.equal(r.code, 0, `push ret/app:${tag}`, said(r));
  }
  t.same(await tagList(srv.url, 'ret/app'), [...order].sort(), 'all twelve tags listed');
  const kept = ['b10', 'b8', 'b9', 'v1.0', 'v1.1'];
  const doomed = ['b1', 'b2', 'b3', 'b4', 'b5', 'b6', 'b7'];

  const dry = await srv.cli(['retention', '--dry-run']);
  t.equal(dry.code, 0, 'registry retention --dry-run exits 0', said(dry));
  const announced = deletions(dry.stdout);
  t.same(announced.map((d) => d.tag).sort(), doomed, 'the dry run lists b1..b7', said(dry));
  t.ok(announced.every((d) => d.repo === 'ret/app' && d.digest === images.get(d.tag)?.layout.manifestDigest), 'each with its repository and manifest digest', {
    announced,
  });
  t.ok(announced.every((d) => /not among the newest 3/.test(d.reason)), 'reason: not among the newest 3', { announced });
  t.match(dry.stdout, /^would delete tag /m, 'dry-run lines say "would delete"');
  t.match(dry.stdout, /^retention --dry-run: would delete 7 tags and 7 untagged manifests in 1 repository; /m, 'dry-run summary', said(dry));
  t.same(await tagList(srv.url, 'ret/app'), [...order].sort(), 'the dry run deleted nothing');

  const real = await srv.cli(['retention']);
  t.equal(real.code, 0, 'registry retention exits 0', said(real));
  const done = deletions(real.stdout);
  t.match(real.stdout, /^deleted tag /m, 'real-run lines say "deleted"');
  t.same(
    done.map((d) => `${d.repo}:${d.tag}@${d.digest}`).sort(),
    announced.map((d) => `${d.repo}:${d.tag}@${d.digest}`).sort(),
    'the run deletes exactly the tags (and digests) the dry run listed',
    said(real),
  );
  const manifestLines = (s: string) => s.split('\n').filter((l) => / manifest ret\/app@/.test(l)).map((l) => l.replace(/^(would delete|deleted) /, '')).sort();
  t.same(manifestLines(real.stdout), manifestLines(dry.stdout), 'and the same untagged manifests');
  t.equal(manifestLines(real.stdout).length, 7, 'seven manifests no tag reaches any more');
  t.match(real.stdout, /^retention: deleted 7 tags and 7 untagged manifests in 1 repository; /m, 'summary', said(real));
  t.same(await tagList(srv.url, 'ret/app'), kept, 'tags/list: the three newest b-tags and v1.0, v1.1');
  for (const tag of doomed) {
    const r = await fetch(`${srv.url}/v2/ret/app/manifests/${images.get(tag)!.layout.manifestDigest}`, { method: 'HEAD' });
    t.equal(r.status, 404, `${tag}'s manifest is gone`);
  }
  const gone = await env.skopeo(['inspect', '--tls-verify=false', '--no-tags', `docker://${srv.host}/ret/app:b1`]);
  t.not(gone.code, 0, 'skopeo inspect ret/app:b1 fails', said(gone));

  const second = await srv.cli(['retention']);
  t.equal(second.code, 0, 'a second run exits 0', said(second));
  t.same(deletions(second.stdout), [], 'and deletes nothing more');

  for (const tag of kept) await pullsBack(t, env, images.get(tag)!, `${srv.host}/ret/app:${tag}`, path.join(work, `${tag}-back`));
  const gc = await srv.cli(['gc'], { REGISTRY_GC_DELAY: '0' });
  t.equal(gc.code, 0, 'registry gc exits 0', said(gc));
  for (const tag of kept) await pullsBack(t, env, images.get(tag)!, `${srv.host}/ret/app:${tag}`, path.join(work, `${tag}-back-after-gc`));
  const usage = await du(t, srv);
  t.equal(sizeOf(usage, 'ret/app'), kept.reduce((n, tag) => n + images.get(tag)!.bytes, 0), 'du after gc: ret/app is charged exactly the kept images');
});

t.test('repository deletion over HTTP with docker: gone from pulls and the catalog; a repository sharing its layers stays', async (t) => {
  if (!requireTools(t, ['dockerd', 'docker'])) return;
  const srv = await startServer(t, 'lc-del-', { quotas: [{ repository: 'full/**', limit: 100 }] });
  const d = await startDockerd(t);
  const work = tempDir(t, 'lc-del-work-');
  const ctx = path.join(work, 'ctx');
  mkdirSync(ctx);
  writeFileSync(path.join(ctx, 'hello.txt'), `repository deletion ${Date.now()} ${Math.random()}\n`);
  writeFileSync(path.join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY hello.txt /hello.txt\nCMD ["/hello.txt"]\n');
  const app = `${srv.host}/del/app:v1`;
  const keep = `${srv.host}/del/keep:v1`;

  const build = await d.docker(['build', '-t', app, ctx], { env: { DOCKER_BUILDKIT: '0' } });
  t.equal(build.code, 0, 'docker build FROM scratch', said(build));
  const pushApp = await d.docker(['push', app]);
  t.equal(pushApp.code, 0, 'docker push del/app:v1', said(pushApp));
  t.equal((await d.docker(['tag', app, keep])).code, 0, 'docker tag as del/keep:v1');
  const pushKeep = await d.docker(['push', keep]);
  t.equal(pushKeep.code, 0, 'docker push del/keep:v1 (its layer is shared with del/app)', said(pushKeep));
  const digest = /v1: digest: (sha256:[0-9a-f]{64})/.exec(pushApp.stdout)?.[1];
  t.ok(digest, 'docker printed the pushed digest', said(pushApp));
  t.equal((await d.docker(['rmi', app, keep])).code, 0, 'docker rmi both: pulls below go to the registry');

  let catalog = await json(`${srv.url}/v2/_catalog`);
  t.same(catalog.body.repositories, ['del/app', 'del/keep'], 'the catalog lists both before the deletion');

  // No authentication configured: anyone may delete.
  const del = await json(`${srv.url}/v2/_registry/repositories/del/app`, { method: 'DELETE' });
  t.equal(del.status, 202, 'DELETE /v2/_registry/repositories/del/app: 202', { body: del.body });
  t.same(
    del.body,
    { name: 'del/app', deleted: { tags: 1, manifests: 1, blobs: 3, v1Tags: 0, v1Images: 0, uploads: 0 } },
    'it reports the tag, the manifest and the three blob links (layer, config, manifest) it deleted',
  );

  const pullApp = await d.docker(['pull', app]);
  t.not(pullApp.code, 0, 'docker pull del/app:v1 fails', said(pullApp));
  t.match(pullApp.stderr, /not found|unknown/i, 'as not found', said(pullApp));
  catalog = await json(`${srv.url}/v2/_catalog`);
  t.same(catalog.body.repositories, ['del/keep'], 'the catalog no longer lists del/app');
  const usage = await du(t, srv);
  t.same(usage.rows.map((r) => r.repo), ['del/keep'], 'du: del/app is charged nothing any more (before any gc)');
  const tags = await json(`${srv.url}/v2/del/app/tags/list`);
  t.equal(tags.status, 404, 'tags/list of del/app: 404');
  t.equal(tags.body?.errors?.[0]?.code, 'NAME_UNKNOWN', 'NAME_UNKNOWN', { body: tags.body });
  const again = await json(`${srv.url}/v2/_registry/repositories/del/app`, { method: 'DELETE' });
  t.equal(again.status, 404, 'deleting it again: 404');
  t.equal(again.body?.errors?.[0]?.code, 'NAME_UNKNOWN', 'NAME_UNKNOWN', { body: again.body });

  // The bytes del/keep shares with the deleted repository survive a collection.
  const gc = await srv.cli(['gc'], { REGISTRY_GC_DELAY: '0' });
  t.equal(gc.code, 0, 'registry gc exits 0', said(gc));
  const pullKeep = await d.docker(['pull', keep]);
  t.equal(pullKeep.code, 0, 'docker pull del/keep:v1 after the deletion and gc', said(pullKeep));
  t.match(pullKeep.stdout, `Digest: ${digest}`, 'the same manifest digest', said(pullKeep));

  // The name is free again.
  t.equal((await d.docker(['tag', keep, app])).code, 0, 'docker tag del/keep:v1 as del/app:v1');
  const repush = await d.docker(['push', app]);
  t.equal(repush.code, 0, 'docker push del/app:v1 into the deleted name', said(repush));
  t.equal((await d.docker(['rmi', app])).code, 0, 'docker rmi del/app:v1');
  const repull = await d.docker(['pull', app]);
  t.equal(repull.code, 0, 'docker pull del/app:v1 after pushing it again', said(repull));
  t.match(repull.stdout, `Digest: ${digest}`, 'the same manifest digest', said(repull));
  catalog = await json(`${srv.url}/v2/_catalog`);
  t.same(catalog.body.repositories, ['del/app', 'del/keep'], 'the catalog lists del/app again');

  // docker against a quota: full/** may hold 100 bytes, less than any blob of the image.
  const full = `${srv.host}/full/app:v1`;
  t.equal((await d.docker(['tag', app, full])).code, 0, 'docker tag as full/app:v1');
  const started = Date.now();
  const refused = await d.docker(['push', full]);
  t.not(refused.code, 0, 'docker push full/app:v1 (over its quota) fails', said(refused));
  t.match(refused.stdout + refused.stderr, 'quota exceeded for full/**', 'docker shows the quota message', said(refused));
  t.notMatch(refused.stdout, /Retrying in/, 'docker does not retry a DENIED push', said(refused));
  t.ok(Date.now() - started < 15_000, 'and gives up at once', { ms: Date.now() - started });
  t.comment(`docker: ${(refused.stdout + refused.stderr).trim().split('\n').pop()}`);
  t.equal((await json(`${srv.url}/v2/full/app/tags/list`)).status, 404, 'full/app has no tags');
});
