import { spawnSync } from 'node:child_process';
import path from 'node:path';
import t from 'tap';
import { freePort, ROOT, serverEnv, spawnServer } from '../helpers/process';
import { tempDir } from '../helpers/server';
import { buildImage, pushImage, type BuiltImage } from '../helpers/v2';
import { startReceiver } from '../helpers/webhook-receiver';

// The outbox is durable: with the receiver down for 30 s and the registry killed with -9 in between, every event
// arrives once the receiver is back, each once, in order per repository. And a receiver that hangs never holds up
// a push. (The one test here that waits 30 s; push latency with and without a hanging receiver is measured by
// bench/notifications.js, not asserted.)

const REPOS = ['dur/one', 'dur/two', 'dur/three'];

/** The event a push of `image` makes, in order: config, layers, then the manifest with its tag. */
const expected = (repo: string, tag: string, image: BuiltImage) => [
  ...[image.config, ...image.layers].map((b) => `${repo} ${b.digest} -`),
  `${repo} ${image.manifestDigest} ${tag}`,
];

t.test('receiver down 30 s, registry killed -9 in between: every event arrives, once, in order per repository', async (t) => {
  const dir = tempDir(t);
  const rx = await startReceiver(t);
  await rx.down();
  const downAt = Date.now();
  const port = await freePort();
  const endpoints = JSON.stringify([{ name: 'hook', url: rx.url, timeout: '2s', backoff: { initial: '200ms', max: '2s' } }]);
  const env = serverEnv(dir, port, { REGISTRY_NOTIFICATIONS_ENDPOINTS: endpoints, REGISTRY_STORAGE_LOCAL_FSYNC: 'false' });
  let server = await spawnServer(t, env, port);

  const want = new Map<string, string[]>(REPOS.map((r) => [r, []]));
  const pushRound = async (tag: string) => {
    // Repositories in parallel (their events interleave), each image's blobs and manifest in order.
    await Promise.all(
      REPOS.map(async (repo) => {
        const image = buildImage({ layers: 2, layerBytes: 1024 });
        await pushImage(server.url, repo, tag, image);
        want.get(repo)!.push(...expected(repo, tag, image));
      }),
    );
  };
  await pushRound('a');
  await server.stop('SIGKILL');
  server = await spawnServer(t, env, port);
  await pushRound('b');

  // While it is down, the operator sees the endpoint failing (exit 3).
  await new Promise((r) => setTimeout(r, 1500));
  const status = spawnSync(process.execPath, [path.join(ROOT, 'dist/cli/registry.js'), 'notifications', 'status'], { encoding: 'utf8', env: { ...process.env, ...env } });
  t.equal(status.status, 3, 'notifications status exits 3 while the receiver is down', { stdout: status.stdout, stderr: status.stderr });
  t.match(status.stdout, /\nhook\s+failing\s+24\s/, '24 events pending, failing');

  await new Promise((r) => setTimeout(r, Math.max(0, 30_000 - (Date.now() - downAt))));
  await rx.up();
  const total = [...want.values()].reduce((n, w) => n + w.length, 0);
  await rx.waitFor(() => rx.accepted().length >= total, 30_000);
  await new Promise((r) => setTimeout(r, 500)); // nothing more comes
  const got = rx.accepted();
  t.equal(got.length, total, `${total} events, none twice`);
  t.equal(new Set(got.map((e) => e.id)).size, got.length, 'unique event ids');
  for (const repo of REPOS) {
    const seen = got.filter((e) => e.target.repository === repo).map((e) => `${repo} ${e.target.digest} ${e.target.tag ?? '-'}`);
    t.same(seen, want.get(repo), `${repo}: every event, in push order`);
  }
  t.equal(new Set(got.map((e) => e.source.instanceID)).size, 2, 'made by both runs of the registry');
  await server.stop();
});

t.test('a receiver that hangs does not hold up pushes', async (t) => {
  const dir = tempDir(t);
  const rx = await startReceiver(t);
  rx.mode = 'hang';
  const port = await freePort();
  const endpoints = JSON.stringify([{ name: 'hook', url: rx.url, timeout: '60s' }]);
  const server = await spawnServer(t, serverEnv(dir, port, { REGISTRY_NOTIFICATIONS_ENDPOINTS: endpoints, REGISTRY_STORAGE_LOCAL_FSYNC: 'false' }), port);
  await pushImage(server.url, 'hang/first', 'v1', buildImage({ layers: 1 }));
  await rx.waitFor(() => rx.deliveries.length >= 1);
  // The sender now waits on a POST that never gets an answer; pushes go on as before.
  const started = Date.now();
  for (let i = 0; i < 5; i++) await pushImage(server.url, `hang/r${i}`, 'v1', buildImage({ layers: 2 }));
  t.comment(`5 pushes while the receiver hangs: ${Date.now() - started} ms`);
  t.equal(rx.deliveries.length, 1, 'still the one hanging delivery');
  const stopped = Date.now();
  t.equal(await server.stop(), 0, 'SIGTERM stops the server cleanly despite the hanging POST');
  t.ok(Date.now() - stopped < 10_000);
});
