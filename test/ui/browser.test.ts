import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import type { Page } from 'puppeteer-core';
import { Csrf } from '../../src/ui/csrf';
import { SessionCodec } from '../../src/ui/session';
import { authConfig, basic } from '../helpers/auth';
import { launchBrowser, openTab, type Tab } from '../helpers/browser';
import { containersEnv } from '../helpers/containers';
import { makeOciLayout, OCI_CONFIG, OCI_INDEX, OCI_LAYER_GZIP, OCI_MANIFEST } from '../helpers/oci-layout';
import { freePort, serverEnv, spawnServer } from '../helpers/process';
import { tempDir } from '../helpers/server';
import { requireTools } from '../helpers/tools';
import { imageChain, pushV1, tarOf } from '../helpers/v1';
import { blobOf, buildImage, pushBlob, pushImage, putManifest, sha256 } from '../helpers/v2';
import { gzipSync } from 'node:zlib';
import { randomBytes } from 'node:crypto';

/** Page globals, for the functions run in the browser (the project compiles without the DOM library). */
declare const document: any, window: any, navigator: any; // eslint-disable-line @typescript-eslint/no-explicit-any

// Acceptance of the web UI (issue 29) in a real headless Chromium against the real server (`npm start`'s
// command): content pushed by skopeo (OCI, Docker, multi-arch), by v2 HTTP and by the v1 protocol; then a
// restart with users and access rules, and the UI driven as anonymous, alice (may delete in team/**),
// bob (may pull team/app only) and dave (wrong passwords). Screenshots of each page at desktop and phone
// width go to .tap/ui-screenshots/.

const XSS = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">';
const MANY = 300;

const RULES = [
  { repository: 'public/**', who: ['$anonymous', '$authenticated'], actions: ['pull'] },
  { repository: 'team/**', who: ['alice'], actions: ['pull', 'push', 'delete'] },
  { repository: 'many/**', who: ['alice'], actions: ['pull'] },
  { repository: 'team/app', who: ['bob'], actions: ['pull'] },
  { repository: 'secret/**', who: ['carol'], actions: ['pull', 'push', 'delete'] },
];

/** An OCI image whose config carries env, entrypoint, labels and history, and whose manifest carries annotations. */
function richImage() {
  const tars = [0, 1].map((i) => tarOf([{ name: `f${i}`, data: randomBytes(3000 + i * 5000) }]));
  const layers = tars.map((tar) => blobOf(gzipSync(tar), OCI_LAYER_GZIP));
  const config = blobOf(
    Buffer.from(
      JSON.stringify({
        created: '2026-01-02T03:04:05Z',
        architecture: 'amd64',
        os: 'linux',
        config: { Env: ['PATH=/usr/bin', 'GREETING=hello'], Entrypoint: ['/bin/hello'], Cmd: ['--loud'], Labels: { 'org.example.evil': XSS, maintainer: 'ops' } },
        rootfs: { type: 'layers', diff_ids: tars.map((x) => sha256(x)) },
        history: [
          { created: '2026-01-02T03:04:00Z', created_by: '/bin/sh -c #(nop) ADD file:base in /' },
          { created: '2026-01-02T03:04:01Z', created_by: '/bin/sh -c #(nop) ENV GREETING=hello', empty_layer: true },
          { created: '2026-01-02T03:04:02Z', created_by: `RUN make install # ${XSS}` },
        ],
      }),
    ),
    OCI_CONFIG,
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: config.digest, size: config.data.length },
      layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.data.length })),
      annotations: { 'org.opencontainers.image.description': XSS },
    }),
  );
  return { config, layers, manifest, manifestDigest: sha256(manifest), mediaType: OCI_MANIFEST };
}

/** A multi-arch OCI layout (amd64 + arm64 under one index tagged `tag`), for skopeo copy --all. */
function multiArchLayout(dir: string, tag: string) {
  const parts = ['amd64', 'arm64'].map((arch, i) => {
    const d = path.join(dir, arch);
    return { arch, dir: d, img: makeOciLayout(d, { tag: arch, layers: 2, layerBytes: 5000, seed: 40 + i, arch }) };
  });
  const out = path.join(dir, 'multi');
  const blobs = path.join(out, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  for (const p of parts) for (const f of readdirSync(path.join(p.dir, 'blobs', 'sha256'))) copyFileSync(path.join(p.dir, 'blobs', 'sha256', f), path.join(blobs, f));
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: parts.map((p) => ({ mediaType: OCI_MANIFEST, digest: p.img.manifestDigest, size: p.img.manifest.length, platform: { architecture: p.arch, os: 'linux' } })),
    }),
  );
  writeFileSync(path.join(blobs, sha256(index).slice(7)), index);
  writeFileSync(
    path.join(out, 'index.json'),
    JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: OCI_INDEX, digest: sha256(index), size: index.length, annotations: { 'org.opencontainers.image.ref.name': tag } }] }),
  );
  writeFileSync(path.join(out, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  return { dir: out, indexDigest: sha256(index), parts };
}

async function inParallel<T>(items: T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

/** Text of every element matching `selector`. */
const texts = (page: Page, selector: string) => page.$$eval(selector, (els) => els.map((e) => (e.textContent ?? '').trim()));

async function login(tab: Tab, base: string, user: string, password: string): Promise<void> {
  await tab.page.goto(`${base}/ui/login`);
  await tab.page.type('#username', user);
  await tab.page.type('#password', password);
  await Promise.all([tab.page.waitForNavigation(), tab.page.click('button[type=submit].primary')]);
}

t.test('web UI in a real browser', async (t) => {
  if (!requireTools(t, ['skopeo'])) return;
  const browser = await launchBrowser(t);
  if (!browser) return;
  const dir = tempDir(t, 'ui-browser-');
  const port = await freePort();
  const uiKey = path.join(dir, 'ui-session.key');
  const base = `http://127.0.0.1:${port}`;
  const host = `127.0.0.1:${port}`;

  // ---- content, pushed with authentication off ----
  const seeding = Date.now();
  let server = await spawnServer(t, serverEnv(dir, port, { REGISTRY_UI_SESSION_SECRET_FILE: uiKey }), port);
  const env = await containersEnv(t);
  const work = tempDir(t, 'ui-layouts-');
  const skopeo = async (args: string[]) => {
    const r = await env.skopeo(args);
    if (r.code !== 0) throw new Error(`skopeo ${args.join(' ')}: ${r.stderr}`);
  };
  const app = makeOciLayout(path.join(work, 'app'), { tag: 'v1', layers: 3, layerBytes: 6000, seed: 11 });
  await skopeo(['copy', '--dest-tls-verify=false', `oci:${path.join(work, 'app')}:v1`, `docker://${host}/team/app:v1`]);
  await skopeo(['copy', '--dest-tls-verify=false', `oci:${path.join(work, 'app')}:v1`, `docker://${host}/team/app:v2`]);
  const dock = makeOciLayout(path.join(work, 'dock'), { tag: 'v1', layers: 2, seed: 22 });
  await skopeo(['copy', '--dest-tls-verify=false', '--format', 'v2s2', `oci:${path.join(work, 'dock')}:v1`, `docker://${host}/team/docker:v1`]);
  void dock;
  const multi = multiArchLayout(path.join(work, 'multi'), 'latest');
  await skopeo(['copy', '--all', '--dest-tls-verify=false', `oci:${multi.dir}:latest`, `docker://${host}/team/multi:latest`]);

  const rich = richImage();
  const richDigest = await pushImage(base, 'public/hello', 'latest', rich);
  const sbom = buildImage({ layers: 1, artifactType: 'application/spdx+json', subject: { digest: rich.manifestDigest, size: rich.manifest.length, mediaType: OCI_MANIFEST } });
  await pushImage(base, 'public/hello', sbom.manifestDigest, sbom);
  await pushImage(base, 'team/other', 'latest', buildImage());
  await pushImage(base, 'secret/x', 'latest', buildImage());
  const chain = imageChain(3);
  await pushV1(base, 'team/legacy', 'latest', chain);
  // Many repositories, each with a config of its own size (sort by size) and one shared layer (mounted).
  const shared = blobOf(gzipSync(tarOf([{ name: 's', data: randomBytes(1000) }])), OCI_LAYER_GZIP);
  await pushBlob(base, 'many/seed', shared);
  await inParallel(
    Array.from({ length: MANY }, (_, i) => i),
    6,
    async (i) => {
      const repo = `many/r${String(i).padStart(3, '0')}`;
      const config = blobOf(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', pad: 'x'.repeat((i * 37) % 1000) })), OCI_CONFIG);
      await pushBlob(base, repo, config);
      const m = await fetch(`${base}/v2/${repo}/blobs/uploads/?mount=${shared.digest}&from=many/seed`, { method: 'POST' });
      if (m.status !== 201) throw new Error(`mount: ${m.status}`);
      const manifest = Buffer.from(
        JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: OCI_CONFIG, digest: config.digest, size: config.data.length }, layers: [{ mediaType: OCI_LAYER_GZIP, digest: shared.digest, size: shared.data.length }] }),
      );
      const r = await putManifest(base, repo, 'latest', manifest, OCI_MANIFEST);
      if (r.status !== 201) throw new Error(`manifest: ${r.status}`);
    },
  );
  t.comment(`seeded in ${Date.now() - seeding} ms`);
  await server.stop();

  // ---- the same data, with users and rules ----
  const auth = authConfig(t, { alice: 'alice-pw', bob: 'bob-pw', dave: 'dave-pw', carol: 'carol-pw' });
  const authEnv = {
    REGISTRY_UI_SESSION_SECRET_FILE: uiKey,
    REGISTRY_AUTH_HTPASSWD_PATH: auth.htpasswd,
    REGISTRY_AUTH_TOKEN_SECRET_FILE: path.join(auth.dir, 'token.key'),
    REGISTRY_AUTH_RULES: JSON.stringify(RULES),
    REGISTRY_AUTH_FAILED_LOGINS_LIMIT: '3',
  };
  server = await spawnServer(t, serverEnv(dir, port, authEnv), port);
  const secret = Buffer.from(readFileSync(uiKey, 'utf8').trim(), 'base64');
  const allProblems: string[] = [];
  const tabs: Tab[] = [];
  const tab = async (label: string) => {
    const x = await openTab(browser, label);
    tabs.push(x);
    return x;
  };

  await t.test('headers: strict CSP, nosniff, same-origin referrer on every UI response', async (t) => {
    for (const p of ['/ui/', '/ui/login', '/ui/r/public/hello', '/ui/nope', '/ui/r/secret/x']) {
      const r = await fetch(`${base}${p}`);
      t.equal(
        r.headers.get('content-security-policy'),
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        `${p}: CSP`,
      );
      t.equal(r.headers.get('x-content-type-options'), 'nosniff');
      t.equal(r.headers.get('referrer-policy'), 'same-origin');
      t.match(r.headers.get('content-type'), /^text\/html/);
    }
  });

  await t.test('anonymous: only what $anonymous may pull', async (t) => {
    const anon = await tab('anonymous');
    await anon.page.goto(`${base}/ui/`);
    t.same(await texts(anon.page, 'td.name > a'), ['public/hello'], 'the list holds the public repository only');
    await anon.screenshot('repositories-anonymous');
    // Keyboard: the first Tab reaches "Skip to content", Enter moves to the main content, the next Tab its first link.
    await anon.page.keyboard.press('Tab');
    t.equal(await anon.page.evaluate(() => document.activeElement?.textContent), 'Skip to content');
    await anon.page.keyboard.press('Enter');
    await anon.page.keyboard.press('Tab');
    t.equal(await anon.page.evaluate(() => document.activeElement?.closest('main') !== null), true, 'then into the page');
    await Promise.all([anon.page.waitForNavigation(), anon.page.click('td.name > a')]);
    t.match(await anon.page.title(), /public\/hello/);
    t.equal(await anon.page.$('a.button.danger'), null, 'no delete button without the right');
    for (const hidden of ['/ui/r/team/app', '/ui/r/secret/x', '/ui/r/no/such']) {
      const r = await anon.page.goto(`${base}${hidden}`);
      t.equal(r?.status(), 404, `${hidden}: 404`);
    }
  });

  await t.test('sign-in: wrong passwords, then the failed-login limit, as the API', async (t) => {
    const d = await tab('dave');
    for (let i = 0; i < 3; i++) {
      await d.page.goto(`${base}/ui/login`);
      await d.page.type('#username', 'dave');
      await d.page.type('#password', 'wrong');
      const [res] = await Promise.all([d.page.waitForNavigation(), d.page.click('button[type=submit].primary')]);
      t.equal(res?.status(), 401, `attempt ${i + 1}: 401`);
      t.match(await texts(d.page, '.notice.error'), ['Wrong user name or password.']);
    }
    await d.screenshot('login-failed');
    await d.page.goto(`${base}/ui/login`);
    await d.page.type('#username', 'dave');
    await d.page.type('#password', 'dave-pw');
    const [res] = await Promise.all([d.page.waitForNavigation(), d.page.click('button[type=submit].primary')]);
    t.equal(res?.status(), 429, 'the right password is refused too while the limit holds');
    t.ok(res?.headers()['retry-after'], 'with Retry-After');
    const api = await fetch(`${base}/v2/_catalog`, { headers: { authorization: basic('dave', 'dave-pw') } });
    t.equal(api.status, 429, 'the API shares the limiter');
    const cookies = await d.page.cookies();
    t.notOk(cookies.some((c) => c.name === 'registry_session' && c.value.length > 0 && JSON.parse(Buffer.from(c.value.split('.')[0]!, 'base64url').toString()).u), 'no user session');
    t.notOk(server.stdout().includes('dave-pw') || server.stdout().includes('wrong'), 'no password in the log');
  });

  const alice = await tab('alice');
  await t.test('alice signs in; the session cookie is HttpOnly, SameSite=Strict, on the UI path', async (t) => {
    await alice.page.goto(`${base}/ui/r/team/app`);
    t.equal((await alice.page.goto(`${base}/ui/r/team/app`))?.status(), 404, 'before signing in: not found');
    await alice.page.goto(`${base}/ui/login?next=/r/team/app`);
    await alice.page.type('#username', 'alice');
    await alice.page.type('#password', 'alice-pw');
    await Promise.all([alice.page.waitForNavigation(), alice.page.click('button[type=submit].primary')]);
    t.match(alice.page.url(), /\/ui\/r\/team\/app$/, 'back where she came from');
    t.match(await texts(alice.page, 'header .who b'), ['alice']);
    const c = (await alice.page.cookies()).find((x) => x.name === 'registry_session')!;
    t.ok(c.httpOnly, 'HttpOnly');
    t.equal(c.sameSite, 'Strict');
    t.equal(c.path, '/ui');
    t.notOk(alice.page.url().includes('alice-pw'), 'no password in the URL');
  });

  await t.test('repositories: search and sort', async (t) => {
    await alice.page.goto(`${base}/ui/`);
    const first = await texts(alice.page, 'td.name > a');
    t.equal(first.length, 50, 'a page of 50');
    t.notOk(first.some((n) => n.startsWith('secret/')), 'no secret repository');
    await alice.screenshot('repositories');
    await alice.page.type('#q', 'multi');
    await Promise.all([alice.page.waitForNavigation(), alice.page.keyboard.press('Enter')]);
    t.same(await texts(alice.page, 'td.name > a'), ['team/multi'], 'search finds by name');
    await alice.page.goto(`${base}/ui/?q=secret`);
    t.same(await texts(alice.page, 'td.name > a'), [], 'search never finds what she may not pull');
    await alice.screenshot('search');
  });

  await t.test('pagination and sort at a few hundred repositories', async (t) => {
    for (const sort of ['name', 'pushed', 'size']) {
      const seen: string[] = [];
      const keys: number[] = [];
      let url: string | undefined = `${base}/ui/?sort=${sort}`;
      let pages = 0;
      while (url) {
        const started = Date.now();
        const res = await alice.page.goto(url);
        t.ok(Date.now() - started < 5000, `${sort} page ${pages + 1} loads`);
        t.match(res?.headers()['server-timing'], /app;dur=/);
        seen.push(...(await texts(alice.page, 'td.name > a')));
        const attr = sort === 'pushed' ? 'data-pushed' : 'data-bytes';
        keys.push(...(await alice.page.$$eval(`td[${attr}]`, (els, a) => els.map((e) => Number(e.getAttribute(a as string))), attr)));
        url = (await alice.page.$eval('a[rel=next]', (a) => (a as unknown as { href: string }).href).catch(() => undefined)) as string | undefined;
        pages++;
      }
      const total = MANY + 1 + 6; // many/*, many/seed, team/{app,docker,multi,other,legacy}, public/hello
      t.equal(seen.length, total, `${sort}: every repository once`);
      t.equal(new Set(seen).size, seen.length, `${sort}: no repository twice`);
      t.equal(pages, Math.ceil(total / 50), `${sort}: ${pages} pages`);
      if (sort === 'name') t.same(seen, [...seen].sort(), 'name order');
      else t.ok(keys.every((k, i) => i === 0 || keys[i - 1]! >= k), `${sort}: descending`);
      if (sort === 'size') t.equal(seen[seen.length - 1], 'many/seed', 'the smallest last');
    }
  });

  await t.test('repository page: tags of both protocols, pull command, copy button', async (t) => {
    await alice.page.goto(`${base}/ui/r/team/app`);
    t.same((await texts(alice.page, 'td.name > a')).sort(), ['v1', 'v2']);
    const cmd = await alice.page.$eval('.pull input', (i) => (i as unknown as { value: string }).value);
    t.match(cmd, new RegExp(`^docker pull ${host}/team/app:v[12]$`));
    const context = alice.page.browserContext();
    await context.overridePermissions(base, ['clipboard-read', 'clipboard-write', 'clipboard-sanitized-write']);
    await alice.page.click('.pull button[data-copy]');
    await alice.page.waitForFunction(() => document.querySelector('.pull button[data-copy]')?.textContent === 'Copied');
    t.equal(await alice.page.evaluate(() => navigator.clipboard.readText()), cmd, 'the copy button copies the pull command');
    await alice.screenshot('repository');

    await alice.page.goto(`${base}/ui/r/team/legacy`);
    t.same(await texts(alice.page, 'td.name'), ['latest v2 API, from v1', 'latest v1 API'], 'the v1 tag, marked, and its v2 form from the bridge');
    await alice.page.goto(`${base}/ui/r/team/app`);
    t.same(await texts(alice.page, 'td.name .badge'), ['v2 API', 'v2 API'], 'v2 tags, marked');
    await alice.page.goto(`${base}/ui/r/team/multi`);
    t.match((await texts(alice.page, 'tbody td'))[2], /linux\/amd64, linux\/arm64/, 'the platforms of the index');
  });

  await t.test('image page: layers and history as pushed, referrers; escaped labels and annotations', async (t) => {
    const res = await alice.page.goto(`${base}/ui/r/team/app/-/tag/v1`);
    t.equal(res?.status(), 200);
    const layout = JSON.parse(app.manifest.toString()) as { layers: { size: number; digest: string }[] };
    const sizes = await alice.page.$$eval('table.layers td[data-bytes]', (els) => els.map((e) => Number(e.getAttribute('data-bytes'))));
    t.same(sizes, layout.layers.map((l) => l.size), 'layer sizes as pushed');
    t.same(await texts(alice.page, 'table.history td.hist code'), ['makeOciLayout', 'makeOciLayout', 'makeOciLayout'], 'history');
    t.match(await alice.page.$eval('pre.raw code', (e) => e.textContent), app.manifest.toString(), 'the raw manifest');
    await alice.screenshot('image');

    await alice.page.goto(`${base}/ui/r/public/hello/-/manifest/${richDigest}`);
    t.equal(await alice.page.evaluate(() => window.__xss), undefined, 'no script from the data ran');
    t.equal(await alice.page.$$eval('script', (s) => s.length), 1, 'only the UI script element');
    t.equal(await alice.page.$$eval('img', (s) => s.length), 0, 'no element from the data');
    const body = await alice.page.$eval('main', (m) => m.textContent ?? '');
    t.ok(body.includes(XSS), 'the label/annotation text is shown as text');
    t.same(await texts(alice.page, 'table.history td.hist code'), ['/bin/sh -c #(nop) ADD file:base in /', '/bin/sh -c #(nop) ENV GREETING=hello', `RUN make install # ${XSS}`]);
    t.same(await texts(alice.page, 'table.history td.num:last-child'), [await alice.page.$$eval('table.layers td[data-bytes]', (e) => e[0]!.textContent!.trim()), 'no layer', await alice.page.$$eval('table.layers td[data-bytes]', (e) => e[1]!.textContent!.trim())], 'history rows matched to layers, empty ones marked');
    t.match(body, /\["\/bin\/hello"\]/, 'entrypoint');
    t.match(body, /GREETING=hello/, 'env');
    t.same((await texts(alice.page, 'table.referrers td:first-child')), ['application/spdx+json'], 'the SBOM referrer with its artifact type');
    await alice.screenshot('image-rich');

    await alice.page.goto(`${base}/ui/r/team/multi/-/tag/latest`);
    t.same(await texts(alice.page, 'tbody tr td:first-child'), ['linux/amd64', 'linux/arm64'], 'one entry per platform');
    const platformBytes = await alice.page.$$eval('tbody td[data-bytes]', (els) => els.map((e) => Number(e.getAttribute('data-bytes'))));
    const imageBytes = (img: { manifest: Buffer; configDigest: string; layerDigests: string[] }) => {
      const m = JSON.parse(img.manifest.toString()) as { config: { size: number }; layers: { size: number }[] };
      return img.manifest.length + m.config.size + m.layers.reduce((n, l) => n + l.size, 0);
    };
    t.same(platformBytes, multi.parts.map((p) => imageBytes(p.img)), 'each platform with its compressed size (manifest, config, layers)');
    await alice.screenshot('image-index');
    await Promise.all([alice.page.waitForNavigation(), alice.page.click('tbody tr:nth-child(2) td:nth-child(2) a')]);
    const arm = multi.parts[1]!.img;
    t.match(alice.page.url(), arm.manifestDigest, 'the arm64 manifest');
    t.match(await texts(alice.page, 'dl.facts dd'), [new RegExp(arm.manifestDigest)]);

    await alice.page.goto(`${base}/ui/r/team/legacy`);
    await Promise.all([alice.page.waitForNavigation(), alice.page.click('td.name > a[href*="/-/v1/"]')]);
    const ancestry = await alice.page.$$eval('table.ancestry td[data-bytes]', (els) => els.map((e) => Number(e.getAttribute('data-bytes'))));
    t.same(ancestry, [...chain].reverse().map((c) => c.layer.length), 'v1 ancestry, newest first, with layer sizes');
    await alice.screenshot('image-v1');

    for (const bad of ['/ui/r/team/app/-/tag/nope', `/ui/r/team/app/-/manifest/sha256:${'0'.repeat(64)}`, '/ui/r/team/app/-/manifest/not-a-digest', '/ui/r/team/legacy/-/v1/' + 'a'.repeat(64)]) {
      const r = await alice.page.goto(`${base}${bad}`);
      t.equal(r?.status(), 404, `${bad}: 404`);
      t.notMatch(await alice.page.content(), /at .*\.js:\d+/, 'no stack trace');
    }
    await alice.screenshot('not-found');
  });

  await t.test('description: editable with push, escaped', async (t) => {
    await alice.page.goto(`${base}/ui/r/team/app`);
    await alice.page.click('details.card summary');
    await alice.page.type('#description', `Our app ${XSS}`);
    await Promise.all([alice.page.waitForNavigation(), alice.page.click('form[action$="/description"] button')]);
    t.match(await texts(alice.page, '.notice.ok'), ['Description saved.']);
    t.equal(await alice.page.$eval('p.desc', (p) => p.textContent), `Our app ${XSS}`);
    t.equal(await alice.page.evaluate(() => window.__xss), undefined);
    await alice.page.goto(`${base}/ui/?q=our+app`);
    t.same(await texts(alice.page, 'td.name > a'), ['team/app'], 'searched like v1 search');
  });

  await t.test('delete a tag with confirmation; gone from the API too', async (t) => {
    await alice.page.goto(`${base}/ui/r/team/app`);
    await Promise.all([alice.page.waitForNavigation(), alice.page.click('a[aria-label="Delete tag v2"]')]);
    t.match(await alice.page.$eval('h1', (h) => h.textContent), /Delete tag v2\?/);
    t.match(await texts(alice.page, 'ul.goes li'), ['the tag v2']);
    t.same(await texts(alice.page, 'p.reclaim'), [], 'another tag keeps the manifest: nothing to free');
    await alice.screenshot('confirm-delete');
    alice.page.once('dialog', (d) => void d.accept());
    await Promise.all([alice.page.waitForNavigation(), alice.page.click('button.danger.solid')]);
    t.match(await texts(alice.page, '.notice.ok'), ['Deleted tag v2.']);
    t.same(await texts(alice.page, 'td.name > a'), ['v1']);
    const api = await fetch(`${base}/v2/team/app/manifests/v2`, { headers: { authorization: basic('alice', 'alice-pw'), accept: OCI_MANIFEST } });
    t.equal(api.status, 404, 'the API no longer has the tag');
    const still = await fetch(`${base}/v2/team/app/manifests/v1`, { headers: { authorization: basic('alice', 'alice-pw'), accept: OCI_MANIFEST } });
    t.equal(still.status, 200, 'the other tag on the same manifest stays');
  });

  await t.test('delete a manifest with confirmation', async (t) => {
    await alice.page.goto(`${base}/ui/r/team/docker/-/tag/v1`);
    t.match((await texts(alice.page, 'dl.facts dd'))[1], /^Docker manifest v2 application\/vnd\.docker\.distribution\.manifest\.v2\+json$/, 'skopeo --format v2s2: a Docker manifest');
    t.same(await texts(alice.page, 'table.layers tbody td:nth-child(3)'), ['Docker layer (gzip)', 'Docker layer (gzip)'], 'its layers, with Docker media types');
    await Promise.all([alice.page.waitForNavigation(), alice.page.click('a.button.danger')]);
    t.match(await texts(alice.page, 'ul.goes li'), [/the manifest/, /its tag: v1/]);
    t.match(await texts(alice.page, 'p.reclaim'), [/^The next garbage collection takes [\d.]+ KiB out of this repository, all of it stored nowhere else: freed\.$/], 'what GC frees');
    alice.page.once('dialog', (d) => void d.accept());
    await Promise.all([alice.page.waitForNavigation(), alice.page.click('button.danger.solid')]);
    t.match(await texts(alice.page, '.notice.ok'), [/Deleted manifest sha256:/]);
    const api = await fetch(`${base}/v2/team/docker/manifests/v1`, { headers: { authorization: basic('alice', 'alice-pw') } });
    t.equal(api.status, 404);
  });

  await t.test('forged deletes are refused: no CSRF token, a token of another action, no right, another origin', async (t) => {
    const cookie = (await alice.page.cookies()).find((c) => c.name === 'registry_session')!.value;
    const session = new SessionCodec(secret).decode(cookie)!;
    const csrf = new Csrf(secret);
    const post = (repo: string, form: Record<string, string>, origin = base) =>
      fetch(`${base}/ui/r/${repo}/-/delete`, {
        method: 'POST',
        redirect: 'manual',
        headers: { cookie: `registry_session=${cookie}`, origin, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(form).toString(),
      });
    t.equal((await post('team/app', { kind: 'tag', ref: 'v1' })).status, 403, 'without a token');
    t.equal((await post('team/app', { kind: 'tag', ref: 'v1', csrf: csrf.token(session.sid, 'delete:team/app:tag:other') })).status, 403, 'a token of another target');
    const good = csrf.token(session.sid, 'delete:team/app:tag:v1');
    t.equal((await post('team/app', { kind: 'tag', ref: 'v1', csrf: good }, 'http://evil.example')).status, 403, 'another origin');
    // The rights are checked whatever the token: public/hello is hers to pull, not to delete.
    const publicToken = csrf.token(session.sid, 'delete:public/hello:tag:latest');
    t.equal((await post('public/hello', { kind: 'tag', ref: 'latest', csrf: publicToken })).status, 403, 'a valid token without the delete right');
    t.equal((await post('secret/x', { kind: 'tag', ref: 'latest', csrf: csrf.token(session.sid, 'delete:secret/x:tag:latest') })).status, 404, 'a repository she may not see: 404');
    const confirm = await alice.page.goto(`${base}/ui/r/public/hello/-/delete?kind=tag&ref=latest`);
    t.equal(confirm?.status(), 403, 'no confirmation page without the right');
    const api = await fetch(`${base}/v2/team/app/manifests/v1`, { headers: { authorization: basic('alice', 'alice-pw'), accept: OCI_MANIFEST } });
    t.equal(api.status, 200, 'nothing was deleted');
    t.equal((await fetch(`${base}/ui/r/team/app`, { method: 'GET', headers: { cookie: `registry_session=${cookie}` } })).status, 200, 'GET changes nothing');
  });

  await t.test('bob may pull team/app only: never sees the rest, nor a delete button', async (t) => {
    const bob = await tab('bob');
    await login(bob, base, 'bob', 'bob-pw');
    t.same((await texts(bob.page, 'td.name > a')).sort(), ['public/hello', 'team/app']);
    await bob.page.goto(`${base}/ui/?q=team`);
    t.same(await texts(bob.page, 'td.name > a'), ['team/app'], 'search neither');
    for (const p of ['/ui/r/team/other', '/ui/r/team/legacy', '/ui/r/secret/x', '/ui/r/team/other/-/tag/latest']) {
      const r = await bob.page.goto(`${base}${p}`);
      t.equal(r?.status(), 404, `${p}: 404, as for a repository that does not exist`);
    }
    const unknown = await fetch(`${base}/ui/r/no/such`).then((r) => r.text());
    const hidden = await fetch(`${base}/ui/r/team/other`).then((r) => r.text());
    t.equal(hidden.replace(/team(\/|%2F)other/g, 'X'), unknown.replace(/no(\/|%2F)such/g, 'X'), 'the same page for hidden and unknown');
    await bob.page.goto(`${base}/ui/r/team/app`);
    t.equal(await bob.page.$('a.button.danger'), null, 'no delete button');
    t.equal(await bob.page.$('#description'), null, 'no description form');
    await bob.page.goto(`${base}/ui/storage`);
    t.same((await texts(bob.page, 'table.usage td.name a')).sort(), ['public/hello', 'team/app'], 'storage: only his repositories');
    t.equal(await bob.page.$('.stat'), null, 'no whole-registry totals');
    await bob.screenshot('storage-restricted');
    // Sign out: a POST with its token; the session is gone.
    await Promise.all([bob.page.waitForNavigation(), bob.page.click('header form button')]);
    t.match(await texts(bob.page, 'header .who span'), ['Anonymous']);
    t.equal((await bob.page.goto(`${base}/ui/r/team/app`))?.status(), 404, 'signed out: team/app is hidden again');
  });

  await t.test('storage page', async (t) => {
    await alice.page.goto(`${base}/ui/storage`);
    const names = await texts(alice.page, 'table.usage td.name a');
    t.ok(names.includes('team/app') && names.includes('team/multi'), 'usage of her repositories');
    t.equal(names.length, 200, 'the 200 largest');
    t.match(await texts(alice.page, 'table.usage tfoot th'), [/^30\d repositories \(the 200 largest shown\)$/]);
    t.notOk(names.includes('secret/x'));
    t.equal(await alice.page.$('.stat'), null, 'she may not pull secret/x: no whole-registry totals');
    await alice.screenshot('storage');
    await alice.page.emulateMediaFeatures([{ name: 'prefers-color-scheme', value: 'dark' }]);
    await alice.page.goto(`${base}/ui/r/team/multi/-/tag/latest`);
    await alice.screenshot('image-index-dark');
    await alice.page.emulateMediaFeatures([]);
  });

  await t.test('no CSP violation or console error on any page', async (t) => {
    for (const x of tabs) allProblems.push(...x.problems);
    t.same(allProblems, []);
  });
  await server.stop();
});

t.test('under a path prefix, without authentication', async (t) => {
  const browser = await launchBrowser(t);
  if (!browser) return;
  const dir = tempDir(t, 'ui-prefix-');
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const server = await spawnServer(t, serverEnv(dir, port, { REGISTRY_UI_PATH_PREFIX: '/tools/registry', REGISTRY_UI_SESSION_SECRET_FILE: path.join(dir, 'k') }), port);
  await pushImage(base, 'lib/one', 'latest', buildImage());
  const tab = await openTab(browser, 'prefix');
  const res = await tab.page.goto(`${base}/tools/registry/`);
  t.equal(res?.status(), 200);
  const hrefs = await tab.page.$$eval('a[href], link[href], script[src], form[action]', (els) =>
    els.map((e) => e.getAttribute('href') ?? e.getAttribute('src') ?? e.getAttribute('action') ?? ''),
  );
  t.ok(hrefs.filter((h) => h.startsWith('/')).every((h) => h.startsWith('/tools/registry/')), 'every link under the prefix');
  t.equal((await fetch(`${base}/ui/`)).status, 404, '/ui/ is not served');
  await Promise.all([tab.page.waitForNavigation(), tab.page.click('td.name > a')]);
  t.match(tab.page.url(), /\/tools\/registry\/r\/lib\/one$/);
  await Promise.all([tab.page.waitForNavigation(), tab.page.click('a[aria-label="Delete tag latest"]')]);
  const cookie = (await tab.page.cookies()).find((c) => c.name === 'registry_session');
  t.equal(cookie?.path, '/tools/registry', 'the cookie path follows the prefix');
  tab.page.once('dialog', (d) => void d.accept());
  await Promise.all([tab.page.waitForNavigation(), tab.page.click('button.danger.solid')]);
  t.match(await texts(tab.page, '.notice.ok'), ['Deleted tag latest.']);
  await tab.screenshot('prefix-repository');
  await tab.page.goto(`${base}/tools/registry/storage`);
  t.ok((await tab.page.$$('.stat')).length >= 2, 'an open registry: whole-registry totals for everyone');
  await tab.screenshot('storage-open');
  t.same(tab.problems, [], 'no CSP violation');
  await server.stop();
});

