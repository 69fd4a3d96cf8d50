import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { startDockerd, type Dockerd, type DockerResult } from '../helpers/dockerd';
import { runProcess } from '../helpers/daemon';
import { freePort, ROOT, startArgs, startCommand } from '../helpers/process';
import { tempDir } from '../helpers/server';
import { requireTools } from '../helpers/tools';
import { buildImage, pushImage } from '../helpers/v2';

// Acceptance (issue 6): the image is built from our Dockerfile, unchanged, by Debian's dockerd (classic
// builder), run, and used: push and pull against the running container, /healthz, the image's HEALTHCHECK,
// a non-root process, data on the /data volume across a stop/start, a clean exit on SIGTERM.
//
// Docker Hub is unreachable here, so the test makes the two base images the Dockerfile names by ARG, the
// way the official ones are made: a minimal Debian 12 (mmdebstrap, from the Debian mirror) plus this
// machine's Node (the binary running this test, installed as /usr/local/bin/node like the node images):
//   BASE_IMAGE  (node:20-bookworm-slim's role): minbase + node
//   BUILD_IMAGE (node:20-bookworm's role):      minbase + python3 make g++ + node, npm and Node's headers
//     (node-gyp builds better-sqlite3 against them; nodejs.org and GitHub, where node-gyp and
//     prebuild-install would download from, are not reachable) and this machine's CA bundle for npm
//     (the npm registry is reached through whatever TLS setup this machine has).
// The build stage runs `npm ci` against the npm registry: `docker build --network host` (the test
// dockerd has no bridge). Everything lives in temp dirs and in the test dockerd's data root.
// Storage driver: overlay2 where the kernel has overlayfs and the temp dir is not itself on overlayfs,
// else the helper's vfs. vfs copies the whole root file system for every Dockerfile instruction, which
// here turned a ~3 minute build into ~8 minutes. dockerd takes $DOCKER_DRIVER over --storage-driver, and
// startDockerd passes this process's environment on (E2E_DOCKER_STORAGE_DRIVER=vfs forces vfs).

const OVERLAYFS_MAGIC = 0x794c7630;

function storageDriver(): string {
  if (process.env.E2E_DOCKER_STORAGE_DRIVER) return process.env.E2E_DOCKER_STORAGE_DRIVER;
  try {
    if (!/\toverlay$/m.test(readFileSync('/proc/filesystems', 'utf8'))) return 'vfs';
    if (statfsSync(tmpdir()).type === OVERLAYFS_MAGIC || statfsSync('/tmp').type === OVERLAYFS_MAGIC) return 'vfs';
  } catch {
    return 'vfs';
  }
  return 'overlay2';
}

const SUITE = 'bookworm';
const MIRROR = process.env.E2E_DEBIAN_MIRROR || 'http://deb.debian.org/debian';
const MIN = 60_000;

interface Run {
  code: number | null;
  out: string;
  ms: number;
}

async function run(cmd: string, args: string[], timeoutMs: number): Promise<Run> {
  const r = await runProcess(cmd, args, { timeoutMs });
  return { code: r.code, out: r.stdout + r.stderr, ms: r.ms };
}

const sh = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** The machine's Node installation: binary, npm, headers (Debian/NodeSource layout: /usr/bin/node, /usr/lib/node_modules/npm, /usr/include/node). */
function hostNode(): { node: string; npm: string; headers: string } {
  const prefix = path.dirname(path.dirname(process.execPath));
  return { node: process.execPath, npm: path.join(prefix, 'lib', 'node_modules', 'npm'), headers: path.join(prefix, 'include', 'node') };
}

/**
 * mmdebstrap a minimal Debian into a tarball and `docker import` it as `tag`. `hooks` run after the
 * packages are installed, with the root directory in "$1".
 */
async function debianBase(t: Test, d: Dockerd, dir: string, tag: string, include: string[], hooks: string[]): Promise<number> {
  const tar = path.join(dir, `${tag.replace(/[^a-z0-9]+/g, '-')}.tar`);
  const strap = await run(
    'mmdebstrap',
    [
      '--variant=minbase',
      '--format=tar',
      '--aptopt=APT::Install-Recommends "false"',
      ...['doc', 'man', 'info', 'locale'].map((p) => `--dpkgopt=path-exclude=/usr/share/${p}/*`),
      ...(include.length ? [`--include=${include.join(',')}`] : []),
      ...hooks.map((h) => `--customize-hook=${h}`),
      SUITE,
      tar,
      MIRROR,
    ],
    6 * MIN,
  );
  if (strap.code !== 0) throw new Error(`mmdebstrap for ${tag} exited ${strap.code}:\n${strap.out.slice(-4000)}`);
  const imp = await d.docker(
    ['import', '--change', 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', '--change', 'CMD ["node"]', tar, tag],
    { timeoutMs: 5 * MIN },
  );
  if (imp.code !== 0) throw new Error(`docker import ${tag}: ${imp.stderr}`);
  t.comment(`${tag}: mmdebstrap ${(strap.ms / 1000).toFixed(0)} s, import ${imp.stdout.trim().slice(0, 19)}`);
  return strap.ms;
}

const said = (r: DockerResult) => ({ code: r.code, stdout: r.stdout.slice(-4000), stderr: r.stderr.slice(-4000) });

async function waitFor<T>(what: string, ms: number, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

t.test('the Dockerfile builds with Debian dockerd, and the image runs the registry', async (t) => {
  if (!requireTools(t, ['dockerd', 'docker', 'mmdebstrap'])) return;
  const host = hostNode();
  for (const p of [host.npm, host.headers]) {
    if (!existsSync(p)) {
      t.fail(`this machine's Node installation lacks ${p} (needed for the test's build base image)`);
      return;
    }
  }
  const t0 = Date.now();
  const work = tempDir(t, 'dockerfile-');
  const id = randomBytes(4).toString('hex');
  const runtimeBase = `tsregistry-test/node-slim:${id}`;
  const buildBase = `tsregistry-test/node-build:${id}`;
  const image = `tsregistry-test/registry:${id}`;

  const driver = storageDriver();
  const savedDriver = process.env.DOCKER_DRIVER;
  process.env.DOCKER_DRIVER = driver;
  let d: Dockerd;
  try {
    d = await startDockerd(t);
  } finally {
    if (savedDriver === undefined) delete process.env.DOCKER_DRIVER;
    else process.env.DOCKER_DRIVER = savedDriver;
  }
  const info = (await d.docker(['info', '-f', '{{.Driver}}'])).stdout.trim();
  t.comment(`dockerd storage driver: ${info}`);
  if (info !== driver) t.comment(`(asked for ${driver} through DOCKER_DRIVER)`);

  // Both bases at once (two mmdebstraps in parallel).
  const caBundle = '/etc/ssl/certs/ca-certificates.crt';
  const npmrc = ['nodedir=/usr/local', ...(existsSync(caBundle) ? ['cafile=/usr/local/share/host-ca-certificates.crt'] : [])].join('\\n');
  const installNode = `cp ${sh(host.node)} "$1/usr/local/bin/node"`;
  const bases = await Promise.all([
    debianBase(t, d, work, runtimeBase, [], [installNode]),
    debianBase(t, d, work, buildBase, ['python3', 'make', 'g++'], [
      installNode,
      `mkdir -p "$1/usr/local/lib/node_modules" "$1/usr/local/include" "$1/usr/local/etc" "$1/usr/local/share"`,
      `cp -a ${sh(host.npm)} "$1/usr/local/lib/node_modules/npm"`,
      `ln -s ../lib/node_modules/npm/bin/npm-cli.js "$1/usr/local/bin/npm"`,
      `ln -s ../lib/node_modules/npm/bin/npx-cli.js "$1/usr/local/bin/npx"`,
      `cp -a ${sh(host.headers)} "$1/usr/local/include/node"`,
      ...(existsSync(caBundle) ? [`cp ${caBundle} "$1/usr/local/share/host-ca-certificates.crt"`] : []),
      `printf '${npmrc}\\n' > "$1/usr/local/etc/npmrc"`,
    ]),
  ]);
  const tBases = Date.now();
  t.comment(`base images ready after ${((tBases - t0) / 1000).toFixed(0)} s (mmdebstrap ${bases.map((ms) => (ms / 1000).toFixed(0)).join(' s and ')} s, in parallel)`);

  const build = await d.docker(
    ['build', '--network', 'host', '--build-arg', `BASE_IMAGE=${runtimeBase}`, '--build-arg', `BUILD_IMAGE=${buildBase}`, '-t', image, ROOT],
    { env: { DOCKER_BUILDKIT: '0' }, timeoutMs: 10 * MIN },
  );
  const tBuild = Date.now();
  t.equal(build.code, 0, `docker build of ./Dockerfile (${((tBuild - tBases) / 1000).toFixed(0)} s)`, said(build));
  if (build.code !== 0) return;

  // What the image declares.
  const cfg = JSON.parse((await d.docker(['image', 'inspect', '-f', '{{json .Config}}', image])).stdout) as {
    User: string;
    ExposedPorts: Record<string, unknown>;
    Volumes: Record<string, unknown>;
    Env: string[];
    Healthcheck?: { Test: string[] };
    Cmd: string[];
    WorkingDir: string;
  };
  t.equal(cfg.User, 'registry', 'USER registry');
  t.same(Object.keys(cfg.ExposedPorts ?? {}), ['5000/tcp'], 'EXPOSE 5000');
  t.same(Object.keys(cfg.Volumes ?? {}), ['/data'], 'VOLUME /data');
  t.equal(cfg.Healthcheck?.Test[0], 'CMD', 'a HEALTHCHECK');
  t.same(cfg.Cmd, ['node', ...startArgs()], 'CMD runs what npm start runs (node flags included)');
  for (const [name, value] of Object.entries(startCommand().env)) t.ok(cfg.Env.includes(`${name}=${value}`), `ENV ${name}=${value}, as npm start sets it`);
  for (const e of ['REGISTRY_HTTP_ADDR=0.0.0.0:5000', 'REGISTRY_STORAGE_LOCAL_ROOT=/data/blobs', 'REGISTRY_INDEX_PATH=/data/index.db', 'REGISTRY_AUTH_TOKEN_SECRET_FILE=/data/token.key']) {
    t.ok(cfg.Env.includes(e), `ENV ${e}`);
  }

  // Run it: host network (the test daemon has no bridge), on a free loopback port chosen by REGISTRY_HTTP_ADDR.
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const name = `tsregistry-test-${id}`;
  const started = await d.docker(['run', '-d', '--name', name, '--network', 'host', '-e', `REGISTRY_HTTP_ADDR=127.0.0.1:${port}`, '--health-interval', '1s', image]);
  t.equal(started.code, 0, 'docker run -d', said(started));
  t.teardown(async () => {
    await d.docker(['rm', '-f', '-v', name]);
  });
  const logs = async () => {
    const r = await d.docker(['logs', name]);
    return (r.stdout + r.stderr).slice(-4000);
  };

  const live = await waitFor('/healthz', 30_000, async () => {
    const r = await fetch(`${url}/healthz`);
    return r.status === 200 ? ((await r.json()) as unknown) : undefined;
  }).catch(async (err) => {
    t.fail(String(err), { logs: await logs() });
    return undefined;
  });
  if (live === undefined) return;
  t.same(live, { status: 'ok' }, '/healthz answers from the container');
  t.equal((await fetch(`${url}/readyz`)).status, 200, '/readyz: index and storage on /data answer');
  const health = await waitFor('the HEALTHCHECK to pass', 30_000, async () => {
    const s = (await d.docker(['inspect', '-f', '{{.State.Health.Status}}', name])).stdout.trim();
    return s === 'healthy' ? s : undefined;
  }).catch(async () => (await d.docker(['inspect', '-f', '{{json .State.Health}}', name])).stdout);
  t.equal(health, 'healthy', "docker reports the image's HEALTHCHECK healthy");

  // The process runs as uid/gid 10001, not root (read from the host's /proc).
  const pid = Number((await d.docker(['inspect', '-f', '{{.State.Pid}}', name])).stdout.trim());
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  t.match(status, /^Uid:\s+10001\s+10001\s+10001\s+10001$/m, 'the registry process runs as uid 10001');
  t.match(status, /^Gid:\s+10001\s+10001\s+10001\s+10001$/m, 'and gid 10001');

  // What the image holds: the build output and production dependencies only.
  const probe = await d.docker([
    'exec',
    name,
    'node',
    '-e',
    `const fs = require('fs'); console.log(JSON.stringify(Object.fromEntries(['dist/server.js', 'package.json', 'config.yml', 'node_modules/fastify', 'node_modules/better-sqlite3/build/Release/better_sqlite3.node', 'node_modules/typescript', 'node_modules/tap', 'src', 'test', 'tsconfig.json', '.git'].map((p) => [p, fs.existsSync(p)]))))`,
  ]);
  t.same(
    JSON.parse(probe.stdout || '{}'),
    {
      'dist/server.js': true,
      'package.json': true,
      'config.yml': true,
      'node_modules/fastify': true,
      'node_modules/better-sqlite3/build/Release/better_sqlite3.node': true,
      'node_modules/typescript': false,
      'node_modules/tap': false,
      src: false,
      test: false,
      'tsconfig.json': false,
      '.git': false,
    },
    'dist, production node_modules (with the compiled addon), package.json, config.yml; no sources or dev dependencies',
    said(probe),
  );

  // Push to and pull from the running container.
  const img = buildImage({ layers: 2, layerBytes: 50_000 });
  const digest = await pushImage(url, 'deploy/app', 'v1', img);
  t.equal(digest, img.manifestDigest, 'pushed an image (v2 API)');
  const pullAll = async (what: string) => {
    const m = await fetch(`${url}/v2/deploy/app/manifests/v1`, { headers: { accept: img.mediaType } });
    const body = Buffer.from(await m.arrayBuffer());
    t.equal(m.status, 200, `${what}: manifest 200`);
    t.ok(body.equals(img.manifest), `${what}: manifest bytes identical`);
    for (const b of [img.config, ...img.layers]) {
      const r = await fetch(`${url}/v2/deploy/app/blobs/${b.digest}`);
      const data = Buffer.from(await r.arrayBuffer());
      t.ok(r.status === 200 && data.equals(b.data), `${what}: blob ${b.digest.slice(7, 19)} identical`);
    }
  };
  await pullAll('pull');
  const files = await d.docker(['exec', name, 'sh', '-c', 'stat -c "%u %n" /data/index.db /data/blobs']);
  t.match(files.stdout, /^10001 \/data\/index\.db\n10001 \/data\/blobs$/m, 'index and blobs on the /data volume, owned by the registry user', said(files));

  // docker stop (SIGTERM): a clean exit; docker start: the same data.
  const stop = await d.docker(['stop', '-t', '40', name], { timeoutMs: MIN });
  t.equal(stop.code, 0, 'docker stop');
  t.equal((await d.docker(['inspect', '-f', '{{.State.ExitCode}}', name])).stdout.trim(), '0', 'exit code 0 on SIGTERM');
  t.equal((await d.docker(['start', name])).code, 0, 'docker start');
  await waitFor('/readyz after restart', 30_000, async () => ((await fetch(`${url}/readyz`)).status === 200 ? true : undefined));
  await pullAll('after a restart');
  t.notMatch(await logs(), /"level":(50|60)/, 'no error lines in the container log');

  // The docker-compose.yml setup on the same data: trustProxy, users in /data/htpasswd, token service on.
  // As the README says: the first user is added with the image's CLI in a one-off container
  // (`docker compose run --rm registry node dist/cli/user.js add alice`), then the registry starts.
  t.equal((await d.docker(['stop', '-t', '40', name], { timeoutMs: MIN })).code, 0, 'docker stop');
  const composeEnv = ['-e', 'REGISTRY_HTTP_TRUST_PROXY=1', '-e', 'REGISTRY_AUTH_HTPASSWD_PATH=/data/htpasswd', '-e', 'REGISTRY_AUTH_TOKEN_ENABLED=true'];
  const add = await d.docker(['run', '--rm', '-i', '--network', 'none', '--volumes-from', name, ...composeEnv, image, 'node', 'dist/cli/user.js', 'add', 'alice'], {
    input: 'compose-secret-1\n',
  });
  t.equal(add.code, 0, 'node dist/cli/user.js add alice (one-off container, as the registry user)', said(add));
  const port2 = await freePort();
  const url2 = `http://127.0.0.1:${port2}`;
  const name2 = `${name}-auth`;
  const started2 = await d.docker(['run', '-d', '--name', name2, '--network', 'host', '--volumes-from', name, '-e', `REGISTRY_HTTP_ADDR=127.0.0.1:${port2}`, ...composeEnv, image]);
  t.equal(started2.code, 0, 'docker run with the compose environment, on the same /data', said(started2));
  t.teardown(async () => {
    await d.docker(['rm', '-f', name2]);
  });
  const ready2 = await waitFor('/readyz of the second container', 30_000, async () => ((await fetch(`${url2}/readyz`)).status === 200 ? true : undefined)).catch(
    async (err) => {
      const r = await d.docker(['logs', name2]);
      t.fail(String(err), { logs: (r.stdout + r.stderr).slice(-4000) });
      return false;
    },
  );
  if (!ready2) return;
  const anon = await fetch(`${url2}/v2/`, { headers: { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'registry.example.com' } });
  t.equal(anon.status, 401, 'anonymous: 401');
  t.equal(
    anon.headers.get('www-authenticate'),
    'Bearer realm="https://registry.example.com/token",service="registry"',
    'Bearer challenge with the https realm from X-Forwarded-* (trustProxy)',
  );
  const authz = { authorization: `Basic ${Buffer.from('alice:compose-secret-1').toString('base64')}` };
  const m2 = await fetch(`${url2}/v2/deploy/app/manifests/v1`, { headers: { ...authz, accept: img.mediaType } });
  t.equal(m2.status, 200, 'alice reads the image pushed through the first container');
  t.ok(Buffer.from(await m2.arrayBuffer()).equals(img.manifest), 'same manifest bytes');
  t.comment(`total ${((Date.now() - t0) / 1000).toFixed(0)} s: bases ${((tBases - t0) / 1000).toFixed(0)} s, build ${((tBuild - tBases) / 1000).toFixed(0)} s, run and checks ${((Date.now() - tBuild) / 1000).toFixed(0)} s`);
});
