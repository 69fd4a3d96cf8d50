import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import t, { type Test } from 'tap';
import { containersEnv, type ToolResult } from '../helpers/containers';
import { startDockerd } from '../helpers/dockerd';
import { untar } from '../helpers/oci-layout';
import { startRegistry, tempDir, type TestRegistry } from '../helpers/server';
import { requireTools } from '../helpers/tools';
import { pullV1, type PulledImage } from '../helpers/v1';
import { sha256 } from '../helpers/v2';

// Acceptance of the v2 -> v1 bridge with real pushers: an image pushed by `docker push` (dockerd 20.10, v2)
// and an OCI image pushed by buildah are pulled over v1 by the suite's Docker 1.x pull flow and by npm
// docker-registry-client's v1 API: every layer byte-identical to the v2 blobs, ancestry and JSON consistent.

type Cb<T> = (err: Error | null, result: T, res: IncomingMessage) => void;
interface RegistryClientV1 {
  listRepoImgs(cb: Cb<{ id: string }[]>): void;
  listRepoTags(cb: Cb<Record<string, string>>): void;
  getImgAncestry(opts: { imgId: string }, cb: Cb<string[]>): void;
  getImgJson(opts: { imgId: string }, cb: Cb<{ id: string; parent?: string }>): void;
  getImgLayerStream(opts: { imgId: string }, cb: (err: Error | null, stream: IncomingMessage) => void): void;
  close(): void;
}
const drc = require('docker-registry-client') as { createClientV1(opts: object): RegistryClientV1 };
const bunyan = createRequire(require.resolve('docker-registry-client'))('bunyan') as { createLogger(opts: object): unknown };
const call = <T>(fn: (cb: Cb<T>) => void) => new Promise<T>((resolve, reject) => fn((err, result) => (err ? reject(err) : resolve(result))));
const said = (r: { code: number | null; stdout: string; stderr: string }) => ({ code: r.code, stdout: r.stdout.slice(-2000), stderr: r.stderr.slice(-2000) });

interface V2Image {
  layers: string[];
}

/** The v2 image behind a tag, as a v2 client sees it. */
async function v2Image(reg: TestRegistry, repo: string, tag: string): Promise<V2Image> {
  const res = await fetch(`${reg.url}/v2/${repo}/manifests/${tag}`, {
    headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json' },
  });
  const m = (await res.json()) as { layers: { digest: string }[] };
  return { layers: m.layers.map((l) => l.digest) };
}

/** The v1 chain's layers (root first) are the v2 layers, plus gzipped empty tars for throwaway entries; parents chain. */
function checkChain(t: Test, chain: PulledImage[], v2: V2Image, what: string) {
  const real = chain.filter((c) => !(JSON.parse(c.json.toString()) as { throwaway?: boolean }).throwaway);
  t.same(real.map((c) => sha256(c.layer)), v2.layers, `${what}: every layer byte-identical to the v2 blob`);
  t.ok(
    chain.every((c, i) => {
      const j = JSON.parse(c.json.toString()) as { id: string; parent?: string };
      return j.id === c.id && j.parent === (i === 0 ? undefined : chain[i - 1]!.id);
    }),
    `${what}: each id's parent is the next in its ancestry`,
  );
}

async function drcPull(t: Test, reg: TestRegistry, repo: string, tag: string, v2: V2Image) {
  const client = drc.createClientV1({ name: `${reg.host}/${repo}`, scheme: 'http', insecure: true, log: bunyan.createLogger({ name: 'drc', level: 'fatal' }) });
  t.teardown(() => client.close());
  const tags = await call<Record<string, string>>((cb) => client.listRepoTags(cb));
  const top = tags[tag];
  t.ok(top, `drc: ${tag} listed`);
  const ancestry = await call<string[]>((cb) => client.getImgAncestry({ imgId: top! }, cb));
  const chain: PulledImage[] = [];
  for (const id of [...ancestry].reverse()) {
    const json = await call<{ id: string; parent?: string }>((cb) => client.getImgJson({ imgId: id }, cb));
    const layer = await new Promise<Buffer>((resolve, reject) =>
      client.getImgLayerStream({ imgId: id }, (err, stream) => {
        if (err) return reject(err);
        const parts: Buffer[] = [];
        stream.on('data', (c: Buffer) => parts.push(c)).on('end', () => resolve(Buffer.concat(parts))).on('error', reject);
        stream.resume();
      }),
    );
    chain.push({ id, json: Buffer.from(JSON.stringify(json)), layer, size: layer.length });
  }
  checkChain(t, chain, v2, 'docker-registry-client');
  const imgs = await call<{ id: string }[]>((cb) => client.listRepoImgs(cb));
  t.ok(ancestry.every((id) => imgs.some((i) => i.id === id)), 'drc: the image list names the chain');
}

t.test('docker push (v2) and a buildah OCI image, pulled over v1', async (t) => {
  if (!requireTools(t, ['dockerd', 'docker', 'buildah'])) return;
  const reg = await startRegistry(t);
  const dir = tempDir(t, 'bridge-v2v1-');
  const content = Buffer.from(`pushed over v2 ${randomBytes(8).toString('hex')}\n`);

  await t.test('docker push', async (t) => {
    const d = await startDockerd(t);
    const ctx = path.join(dir, 'ctx');
    mkdirSync(ctx);
    writeFileSync(path.join(ctx, 'hello.txt'), content);
    writeFileSync(path.join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY hello.txt /hello.txt\nCMD ["/hello.txt"]\n');
    const ref = `${reg.host}/modern/docker:v1`;
    const build = await d.docker(['build', '-t', ref, ctx], { env: { DOCKER_BUILDKIT: '0' } });
    t.equal(build.code, 0, 'docker build', said(build));
    const push = await d.docker(['push', ref]);
    t.equal(push.code, 0, 'docker push', said(push));
    const v2 = await v2Image(reg, 'modern/docker', 'v1');
    const chain = await pullV1(reg.url, 'modern/docker', 'v1');
    checkChain(t, chain, v2, 'Docker 1.x pull flow');
    t.ok(chain.length > v2.layers.length, 'the CMD step is a throwaway entry, as distribution made it');
    t.same(untar(chain.find((c) => untar(c.layer).has('hello.txt'))!.layer).get('hello.txt'), content, 'the file comes through');
    const top = JSON.parse(chain[chain.length - 1]!.json.toString()) as { config: { Cmd: string[] } };
    t.same(top.config.Cmd, ['/hello.txt'], 'the top image carries the config');
    await drcPull(t, reg, 'modern/docker', 'v1', v2);
  });

  await t.test('buildah OCI image', async (t) => {
    const env = await containersEnv(t);
    const check = (r: ToolResult, what: string) => t.equal(r.code, 0, what, said(r));
    const hello = path.join(dir, 'hello-buildah.txt');
    writeFileSync(hello, content);
    const name = `bridge-${randomBytes(4).toString('hex')}`;
    check(await env.buildah(['from', '--name', name, 'scratch']), 'buildah from scratch');
    check(await env.buildah(['add', name, hello, '/hello.txt']), 'buildah add');
    check(await env.buildah(['config', '--cmd', '/hello.txt', name]), 'buildah config');
    check(await env.buildah(['commit', '--format', 'oci', name, 'localhost/bridge:oci']), 'buildah commit --format oci');
    check(await env.buildah(['rm', name]), 'buildah rm');
    check(await env.buildah(['push', '--tls-verify=false', '--format', 'oci', 'localhost/bridge:oci', `docker://${reg.host}/modern/buildah:oci`]), 'buildah push --format oci');
    const v2 = await v2Image(reg, 'modern/buildah', 'oci');
    const chain = await pullV1(reg.url, 'modern/buildah', 'oci');
    checkChain(t, chain, v2, 'Docker 1.x pull flow');
    await drcPull(t, reg, 'modern/buildah', 'oci', v2);
  });
});
