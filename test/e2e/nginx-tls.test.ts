import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { Agent, request as httpsRequest } from 'node:https';
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { connect as http2Connect, type IncomingHttpHeaders as Http2Headers } from 'node:http2';
import path from 'node:path';
import { Readable } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { gunzipSync } from 'node:zlib';
import t, { type Test } from 'tap';
import { authConfig, basic } from '../helpers/auth';
import { containersEnv, type ToolResult } from '../helpers/containers';
import { startDockerd, type Dockerd } from '../helpers/dockerd';
import { makeCerts, startNginx, writeConfig, type Certs, type Nginx } from '../helpers/nginx';
import { layoutBlobs, makeOciLayout, readLayoutBlob, untar } from '../helpers/oci-layout';
import { freePort } from '../helpers/process';
import { startRegistry, tempDir, type TestRegistry } from '../helpers/server';
import { requireTools } from '../helpers/tools';
import { sha256 } from '../helpers/v2';

// Acceptance (issue 6): Debian's nginx runs the shipped nginx/registry.conf (temp copy, 127.0.0.1 ports, a
// fresh certificate from nginx/make-certs.sh) in front of a registry with http.trustProxy: 1 (nginx, the
// one hop) and authentication on (htpasswd user alice, token service enabled). Through https:// only:
//  - plain HTTP redirects to HTTPS; TLS 1.3 and 1.2, HTTP/2 by ALPN; Locations and the token realm are
//    absolute https:// URLs naming nginx; Docker-Distribution-Api-Version passes through; a forged
//    X-Forwarded-For never reaches the registry, so rotating it does not dodge the failed-login limit;
//  - skopeo pushes and pulls byte for byte with --dest-cert-dir/--src-cert-dir and credentials (and fails
//    on the unknown CA without them);
//  - docker (a private dockerd) logs in, pushes and pulls;
//  - a 1 GiB layer is pushed (POST + one streamed PATCH + PUT) and read back with no 413 and no timeout,
//    and it streams: the registry has most of it before the client has sent all of it.

const PASSWORD = 'wonderland-tls-7';
const GiB = 1024 * 1024 * 1024;
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const ACCEPT = [DOCKER_MANIFEST, OCI_MANIFEST].join(', ');

interface Front {
  nginx: Nginx;
  certs: Certs;
  /** A directory holding only ca.crt (containers/image reads *.crt there as CAs). */
  caDir: string;
  httpsPort: number;
  httpPort: number;
  /** 127.0.0.1:PORT of nginx's TLS server. */
  host: string;
  base: string;
  agent: Agent;
  /** The CA certificate (PEM). */
  ca: Buffer;
}

/** nginx in front of `reg` with the shipped config, on 127.0.0.1. */
async function startFront(t: Test, reg: TestRegistry, names: string[] = []): Promise<Front> {
  const dir = tempDir(t, 'nginx-tls-');
  const certs = makeCerts(path.join(dir, 'certs'), names);
  const caDir = path.join(dir, 'ca-only');
  mkdirSync(caDir);
  copyFileSync(certs.ca, path.join(caDir, 'ca.crt'));
  const httpsPort = await freePort();
  const httpPort = await freePort();
  const conf = writeConfig(dir, { upstreamPort: reg.port, https: httpsPort, http: httpPort });
  const nginx = await startNginx(t, dir, conf, httpsPort);
  const ca = readFileSync(certs.ca);
  const agent = new Agent({ ca, keepAlive: true });
  t.teardown(() => agent.destroy());
  const host = `127.0.0.1:${httpsPort}`;
  return { nginx, certs, caDir, httpsPort, httpPort, host, base: `https://${host}`, agent, ca };
}

interface Res {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** One HTTPS request through nginx (certificate verified against the test CA). */
function call(front: Front, method: string, url: string, headers: Record<string, string> = {}, body?: Buffer): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(new URL(url, front.base), { method, headers, agent: front.agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Tool output for assertion diagnostics. */
const said = (r: ToolResult | { code: number | null; stdout: string; stderr: string }) => ({
  code: r.code,
  stdout: r.stdout.slice(-3000),
  stderr: r.stderr.slice(-3000),
});

/** What the registry (behind nginx) saw of the forwarding headers. */
function recordForwarded(reg: TestRegistry): { proto: Set<string>; hosts: Set<string>; forwardedFor: Set<string> } {
  const seen = { proto: new Set<string>(), hosts: new Set<string>(), forwardedFor: new Set<string>() };
  reg.app.server.prependListener('request', (req: IncomingMessage) => {
    seen.proto.add(String(req.headers['x-forwarded-proto']));
    seen.hosts.add(String(req.headers['x-forwarded-host']));
    seen.forwardedFor.add(String(req.headers['x-forwarded-for']));
  });
  return seen;
}

/** Total bytes of the files in a directory (the local driver's upload staging area). */
function dirBytes(dir: string): number {
  try {
    return readdirSync(dir).reduce((n, f) => n + statSync(path.join(dir, f)).size, 0);
  } catch {
    return 0;
  }
}

t.test('registry behind nginx (TLS, shipped config) with authentication', async (t) => {
  if (!requireTools(t, ['nginx', 'openssl'])) return;
  const auth = authConfig(t, { alice: PASSWORD }, { token: { enabled: true } });
  const reg = await startRegistry(t, { ...auth.overrides, http: { trustProxy: 1 } });
  const forwarded = recordForwarded(reg);
  const front = await startFront(t, reg);
  const alice = { authorization: basic('alice', PASSWORD) };

  await t.test('https basics: redirect, TLS versions, HTTP/2, headers, absolute https Locations, token realm', async (t) => {
    // Plain HTTP answers with a redirect to the same URL over HTTPS.
    const redirect = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: front.httpPort, path: '/v2/?x=1', method: 'GET' }, resolve);
      req.on('error', reject);
      req.end();
    });
    redirect.resume();
    t.equal(redirect.statusCode, 308, 'http:// answers 308');
    t.equal(redirect.headers.location, `https://127.0.0.1:${front.httpsPort}/v2/?x=1`, 'to the https:// URL');

    // TLS: 1.3 by default, 1.2 when the client offers no more, h2 by ALPN; the certificate verifies.
    const handshake = (opts: { maxVersion?: 'TLSv1.2'; ALPNProtocols?: string[] }) =>
      new Promise<{ protocol: string | null; alpn: string | false | null }>((resolve, reject) => {
        const s = tlsConnect({ host: '127.0.0.1', port: front.httpsPort, ca: front.ca, servername: 'localhost', ...opts }, () => {
          resolve({ protocol: s.getProtocol(), alpn: s.alpnProtocol ?? null });
          s.end();
        });
        s.on('error', reject);
      });
    t.same(await handshake({ ALPNProtocols: ['h2', 'http/1.1'] }), { protocol: 'TLSv1.3', alpn: 'h2' }, 'TLS 1.3, HTTP/2 selected by ALPN');
    t.equal((await handshake({ maxVersion: 'TLSv1.2' })).protocol, 'TLSv1.2', 'TLS 1.2 accepted');

    const anon = await call(front, 'GET', '/v2/');
    t.equal(anon.status, 401, 'anonymous /v2/ is challenged (by the registry, through nginx)');
    t.equal(anon.headers['www-authenticate'], `Bearer realm="https://${front.host}/token",service="registry"`, 'token realm is https:// on nginx');
    t.equal(anon.headers['docker-distribution-api-version'], 'registry/2.0', 'Docker-Distribution-Api-Version passes through on a 401');
    const ok = await call(front, 'GET', '/v2/', alice);
    t.equal(ok.status, 200, '/v2/ with Basic credentials');
    t.equal(ok.headers['docker-distribution-api-version'], 'registry/2.0', 'Docker-Distribution-Api-Version passes through');
    t.match(ok.headers['strict-transport-security'], /max-age=/, 'HSTS');

    const token = await call(front, 'GET', '/token?service=registry&scope=repository:tls/probe:pull,push', alice);
    t.equal(token.status, 200, '/token reachable through nginx');
    const bearer = { authorization: `Bearer ${JSON.parse(token.body.toString()).token as string}` };
    t.equal((await call(front, 'GET', '/v2/', bearer)).status, 200, 'and its token is accepted');

    for (const p of ['/v1/_ping', '/_ping', '/healthz', '/readyz']) t.equal((await call(front, 'GET', p)).status, 200, `${p} reachable anonymously`);
    t.equal((await call(front, 'GET', '/v1/users/', alice)).status, 200, '/v1/ reachable (login check)');
    t.equal((await call(front, 'GET', '/nothing-here')).status, 404, 'other paths: 404 from nginx');

    const start = await call(front, 'POST', '/v2/tls/probe/blobs/uploads/', bearer);
    t.equal(start.status, 202, 'upload started');
    t.match(start.headers.location, new RegExp(`^https://127\\.0\\.0\\.1:${front.httpsPort}/v2/tls/probe/blobs/uploads/[^/]+$`), 'upload Location is https:// on nginx');
    const data = randomBytes(1000);
    const put = await call(front, 'PUT', `${start.headers.location}?digest=${sha256(data)}`, { ...bearer, 'content-type': 'application/octet-stream' }, data);
    t.equal(put.status, 201, 'blob committed');
    t.equal(put.headers.location, `https://${front.host}/v2/tls/probe/blobs/${sha256(data)}`, 'blob Location is https:// on nginx');

    // The same over HTTP/2 (what browsers and most HTTP libraries negotiate; docker and skopeo use 1.1).
    const h2 = http2Connect(front.base, { ca: front.ca });
    t.teardown(() => h2.close());
    const h2call = (headers: Record<string, string>, body?: Buffer) =>
      new Promise<{ headers: Http2Headers; body: Buffer }>((resolve, reject) => {
        const st = h2.request(headers);
        const chunks: Buffer[] = [];
        let head: Http2Headers = {};
        st.on('response', (h) => (head = h));
        st.on('data', (c: Buffer) => chunks.push(c));
        st.on('end', () => resolve({ headers: head, body: Buffer.concat(chunks) }));
        st.on('error', reject);
        st.end(body);
      });
    const h2ping = await h2call({ ':method': 'GET', ':path': '/v2/', ...bearer });
    t.equal(h2ping.headers[':status'], 200, 'HTTP/2: GET /v2/ 200');
    t.equal(h2ping.headers['docker-distribution-api-version'], 'registry/2.0', 'HTTP/2: Docker-Distribution-Api-Version');
    const h2start = await h2call({ ':method': 'POST', ':path': '/v2/tls/probe/blobs/uploads/', ...bearer });
    t.equal(h2start.headers[':status'], 202, 'HTTP/2: upload started');
    const h2data = randomBytes(300_000);
    const h2loc = new URL(String(h2start.headers.location));
    t.equal(h2loc.origin, front.base, 'HTTP/2: Location is https:// on nginx (host from :authority)');
    const h2put = await h2call(
      { ':method': 'PUT', ':path': `${h2loc.pathname}?digest=${sha256(h2data)}`, 'content-type': 'application/octet-stream', ...bearer },
      h2data,
    );
    t.equal(h2put.headers[':status'], 201, 'HTTP/2: a 300 kB blob PUT through nginx');
    t.equal(h2put.headers['docker-content-digest'], sha256(h2data), 'HTTP/2: digest');

    t.same([...forwarded.proto], ['https'], 'the registry saw X-Forwarded-Proto https only');
    t.same([...forwarded.hosts], [front.host], 'and X-Forwarded-Host with the port');
    t.same([...forwarded.forwardedFor], ['127.0.0.1'], 'and X-Forwarded-For the client address');

    // Issue 22, item 4: nginx replaces a client-written X-Forwarded-For with the address it saw, and the
    // registry trusts that one hop: rotating the header does not dodge the failed-login limit.
    const guesses: number[] = [];
    for (let i = 0; i < 11; i++) {
      const forged = { authorization: basic('mallet', `guess-${i}`), 'x-forwarded-for': `198.51.100.${i + 1}` };
      guesses.push((await call(front, 'GET', '/v2/', forged)).status);
    }
    t.same(guesses, [...Array(10).fill(401), 429], 'rotating X-Forwarded-For through nginx: limited after 10 guesses');
    t.same([...forwarded.forwardedFor], ['127.0.0.1'], 'the registry never saw the client-written addresses');
  });

  await t.test('skopeo pushes and pulls byte for byte over https (--dest-cert-dir, --dest-creds)', async (t) => {
    if (!requireTools(t, ['skopeo'])) return;
    const env = await containersEnv(t);
    const work = tempDir(t, 'skopeo-tls-');
    const src = path.join(work, 'src');
    const back = path.join(work, 'back');
    const img = makeOciLayout(src, { tag: 'v1', layers: 2, layerBytes: 300_000, seed: 61 });
    const ref = `docker://${front.host}/tls/skopeo:v1`;

    const untrusted = await env.skopeo(['copy', '--dest-creds', `alice:${PASSWORD}`, `oci:${src}:v1`, ref]);
    t.not(untrusted.code, 0, 'without the CA, skopeo refuses the certificate');
    t.match(untrusted.stderr, /x509|certificate/, 'for the unknown authority', said(untrusted));

    const push = await env.skopeo(['copy', '--dest-cert-dir', front.caDir, '--dest-creds', `alice:${PASSWORD}`, `oci:${src}:v1`, ref]);
    t.equal(push.code, 0, `skopeo copy oci: -> docker://${front.host} (${push.ms} ms)`, said(push));
    const m = await call(front, 'GET', '/v2/tls/skopeo/manifests/v1', { ...alice, accept: ACCEPT });
    t.equal(m.status, 200, 'manifest served through nginx');
    t.ok(m.body.equals(img.manifest), 'the exact manifest bytes of the layout');

    const pull = await env.skopeo(['copy', '--src-cert-dir', front.caDir, '--src-creds', `alice:${PASSWORD}`, ref, `oci:${back}:v1`]);
    t.equal(pull.code, 0, `skopeo copy docker:// -> oci: (${pull.ms} ms)`, said(pull));
    t.same(layoutBlobs(back), img.blobs, 'same blob set after the round trip');
    for (const digest of img.blobs) {
      t.ok(readLayoutBlob(back, digest).equals(readLayoutBlob(src, digest)), `blob ${digest.slice(7, 19)} byte-identical`);
    }
  });

  await t.test('docker logs in, pushes and pulls over https', async (t) => {
    if (!requireTools(t, ['dockerd', 'docker'])) return;
    const d = await startDockerd(t);
    await dockerRoundTrip(t, d, front, 'tls/docker');
    // 127.0.0.0/8 is an insecure registry range for dockerd (always, whatever the flags): it speaks TLS
    // there but skips verification. Servers in tests bind to loopback only, so certificate verification
    // is proven with skopeo (--dest-cert-dir) above, not with docker.
  });

  await t.test('a 1 GiB layer streams through nginx: no 413, no timeout, same sha256 back', async (t) => {
    const token = await call(front, 'GET', '/token?service=registry&scope=repository:tls/big:pull,push', alice);
    const bearer = `Bearer ${JSON.parse(token.body.toString()).token as string}`;
    const start = await call(front, 'POST', '/v2/tls/big/blobs/uploads/', { authorization: bearer });
    t.equal(start.status, 202, 'POST uploads 202');
    const uploadUrl = start.headers.location!;
    t.match(uploadUrl, new RegExp(`^https://${front.host.replace(/\./g, '\\.')}/`), 'Location is https:// on nginx');

    // Deterministic incompressible bytes (AES-CTR keystream), produced and hashed on the fly.
    const cipher = createCipheriv('aes-256-ctr', randomBytes(32), randomBytes(16));
    const zeros = Buffer.alloc(1024 * 1024);
    const hash = createHash('sha256');
    const staging = path.join(reg.config.storage.local.root, 'uploads');
    let sent = 0;
    let stagedWhenThreeQuartersSent = -1;
    const body = new Readable({
      read() {
        if (sent >= GiB) return void this.push(null);
        if (stagedWhenThreeQuartersSent < 0 && sent >= 0.75 * GiB) stagedWhenThreeQuartersSent = dirBytes(staging);
        const chunk = cipher.update(zeros);
        hash.update(chunk);
        sent += chunk.length;
        this.push(chunk);
      },
    });
    const t0 = Date.now();
    const patch = await new Promise<Res>((resolve, reject) => {
      const req = httpsRequest(
        uploadUrl,
        {
          method: 'PATCH',
          agent: front.agent,
          headers: { authorization: bearer, 'content-type': 'application/octet-stream', 'content-length': String(GiB), 'content-range': `0-${GiB - 1}` },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
        },
      );
      req.on('error', reject);
      body.pipe(req);
    });
    const upMs = Date.now() - t0;
    t.equal(patch.status, 202, `PATCH of 1 GiB: 202 (not 413) in ${(upMs / 1000).toFixed(1)} s`, { body: patch.body.toString() });
    t.equal(patch.headers.range, `0-${GiB - 1}`, 'the registry has every byte');
    t.ok(
      stagedWhenThreeQuartersSent > 0.5 * GiB,
      `streamed, not buffered by nginx: ${(stagedWhenThreeQuartersSent / 2 ** 20).toFixed(0)} MiB staged when the client had sent 768 MiB`,
    );
    const digest = `sha256:${hash.digest('hex')}`;
    const put = await call(front, 'PUT', `${patch.headers.location}${patch.headers.location!.includes('?') ? '&' : '?'}digest=${digest}`, { authorization: bearer });
    t.equal(put.status, 201, 'PUT ?digest= 201');
    t.equal(put.headers['docker-content-digest'], digest, 'Docker-Content-Digest');
    t.equal(put.headers.location, `https://${front.host}/v2/tls/big/blobs/${digest}`, 'blob Location is https:// on nginx');

    const t1 = Date.now();
    const got = await new Promise<{ status: number; length: string | undefined; bytes: number; digest: string }>((resolve, reject) => {
      const req = httpsRequest(new URL(`/v2/tls/big/blobs/${digest}`, front.base), { agent: front.agent, headers: { authorization: bearer } }, (res) => {
        const h = createHash('sha256');
        let bytes = 0;
        res.on('data', (c: Buffer) => {
          h.update(c);
          bytes += c.length;
        });
        res.on('end', () => resolve({ status: res.statusCode!, length: res.headers['content-length'], bytes, digest: `sha256:${h.digest('hex')}` }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    const downMs = Date.now() - t1;
    t.equal(got.status, 200, `GET 200 in ${(downMs / 1000).toFixed(1)} s`);
    t.equal(got.length, String(GiB), 'Content-Length 1 GiB');
    t.equal(got.bytes, GiB, 'every byte arrived');
    t.equal(got.digest, digest, 'same sha256');
    t.notMatch(front.nginx.errors(), /too large body|timed out|buffered to a temporary file/, 'nginx logged no size limit, timeout or body spooling', {
      errors: front.nginx.errors().slice(-3000),
    });
  });
});

/** docker login, build FROM scratch, push, check the registry's copy, rmi, pull: all through nginx. */
async function dockerRoundTrip(t: Test, d: Dockerd, front: Front, repo: string): Promise<void> {
  const accessBefore = front.nginx.access().length;
  const login = await d.docker(['login', '-u', 'alice', '--password-stdin', front.host], { input: PASSWORD });
  t.equal(login.code, 0, `docker login ${front.host}`, said(login));
  t.match(login.stdout, /Login Succeeded/);

  const ctx = tempDir(t, 'docker-tls-ctx-');
  const hello = `hello over TLS ${randomBytes(8).toString('hex')}\n`;
  writeFileSync(path.join(ctx, 'hello.txt'), hello);
  writeFileSync(path.join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY hello.txt /hello.txt\nCMD ["/hello.txt"]\n');
  const ref = `${front.host}/${repo}:v1`;
  const build = await d.docker(['build', '-t', ref, ctx], { env: { DOCKER_BUILDKIT: '0' } });
  t.equal(build.code, 0, 'docker build', said(build));

  const push = await d.docker(['push', ref]);
  t.equal(push.code, 0, `docker push ${ref}`, said(push));
  const digest = /v1: digest: (sha256:[a-f0-9]{64})/.exec(push.stdout)?.[1];
  t.ok(digest, 'docker printed the pushed digest', said(push));

  const alice = { authorization: basic('alice', PASSWORD) };
  const m = await call(front, 'GET', `/v2/${repo}/manifests/v1`, { ...alice, accept: ACCEPT });
  t.equal(m.status, 200, 'the registry serves the pushed manifest');
  t.equal(sha256(m.body), digest, 'with the digest docker printed');
  const layer = (JSON.parse(m.body.toString()) as { layers: { digest: string }[] }).layers[0]!.digest;
  const blob = await call(front, 'GET', `/v2/${repo}/blobs/${layer}`, alice);
  t.equal(sha256(blob.body), layer, 'layer bytes match their digest');
  t.equal(untar(gunzipSync(blob.body)).get('hello.txt')?.toString(), hello, 'the layer holds hello.txt');

  t.equal((await d.docker(['rmi', ref])).code, 0, 'docker rmi');
  const pull = await d.docker(['pull', ref]);
  t.equal(pull.code, 0, `docker pull ${ref}`, said(pull));
  t.match(pull.stdout, `Digest: ${digest}`, 'pulled the pushed digest');
  const inspect = await d.docker(['image', 'inspect', '--format', '{{json .RepoDigests}}', ref]);
  t.same(JSON.parse(inspect.stdout || 'null'), [`${front.host}/${repo}@${digest}`], 'repo digest after pull');

  // nginx saw docker's requests over TLS, including the token exchange.
  const lines = front.nginx.access().slice(accessBefore).filter((l) => l.includes('"docker/'));
  t.ok(lines.length > 5, `nginx logged docker's requests (${lines.length})`);
  t.ok(lines.every((l) => / TLSv1\.[23]$/.test(l)), 'every one over TLS 1.2/1.3', { lines });
  t.ok(lines.some((l) => / "GET \/token\?[^"]*" 200 /.test(l)), 'docker fetched a token at /token', { lines });
  t.ok(lines.some((l) => / "PUT \/v2\/[^"]*\/manifests\/v1 HTTP\/[\d.]+" 201 /.test(l)), 'pushed the manifest (201)', { lines });
}
