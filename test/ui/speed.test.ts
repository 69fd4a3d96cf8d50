import path from 'node:path';
import t from 'tap';
import { openDatabase } from '../../src/index/db';
import { startRegistry, tempDir } from '../helpers/server';
import { buildImage, pushImage } from '../helpers/v2';

// Issue 29, speed: the repository list of a 10,000-repository registry renders in under 100 ms of server
// time (each sort, first and a later page, and a search), an image page in under 50 ms once its manifest is
// cached. The index is seeded directly (one transaction): a repository, a blob, a manifest and two tags each.

const N = 10_000;
const RUNS = 7;

function seed(file: string): void {
  const db = openDatabase(file);
  const now = Date.now();
  db.transaction(() => {
    const repo = db.prepare('INSERT INTO repositories (name, description, created_at) VALUES (?, ?, ?)');
    const blob = db.prepare('INSERT INTO blobs (digest, size, location, created_at) VALUES (?, ?, ?, ?)');
    const link = db.prepare('INSERT INTO repo_blobs (repo, digest, linked_at) VALUES (?, ?, ?)');
    const manifest = db.prepare('INSERT INTO manifests (repo, digest, media_type, size, created_at) VALUES (?, ?, ?, ?, ?)');
    const ref = db.prepare('INSERT INTO manifest_refs (repo, digest, child) VALUES (?, ?, ?)');
    const tag = db.prepare('INSERT INTO tags (repo, tag, digest, updated_at) VALUES (?, ?, ?, ?)');
    for (let i = 0; i < N; i++) {
      const name = `org${i % 50}/repo-${String(i).padStart(5, '0')}`;
      const layer = `sha256:${'1' + i.toString(16).padStart(63, '0')}`;
      const m = `sha256:${'2' + i.toString(16).padStart(63, '0')}`;
      repo.run(name, i % 7 === 0 ? `service number ${i}` : '', now - N + i);
      blob.run(layer, 1000 + ((i * 7919) % 100_000), `x/${i}`, now);
      blob.run(m, 500, `m/${i}`, now);
      link.run(name, layer, now);
      link.run(name, m, now);
      manifest.run(name, m, 'application/vnd.oci.image.manifest.v1+json', 500, now - ((i * 31) % N));
      ref.run(name, m, layer);
      tag.run(name, 'latest', m, now - ((i * 131) % N));
      tag.run(name, 'v1', m, now - ((i * 17) % N));
    }
  })();
  db.close();
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

t.test('speed at 10,000 repositories', async (t) => {
  const dir = tempDir(t, 'ui-speed-');
  const started = Date.now();
  seed(path.join(dir, 'index.db'));
  t.comment(`seeded ${N} repositories in ${Date.now() - started} ms`);
  const reg = await startRegistry(t, {}, dir);
  // Server time (the Server-Timing header): the median of 7 requests; on a loaded machine (npm test runs two
  // files at once) the best median of up to 3 rounds, so a burst of another test's work does not decide.
  const serverMs = async (url: string, budget = 50) => {
    let best = Infinity;
    let after: string | undefined;
    for (let round = 0; round < 3 && best >= budget; round++) {
      const times: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        const r = await reg.app.inject({ method: 'GET', url });
        if (r.statusCode !== 200) throw new Error(`${url}: ${r.statusCode}`);
        times.push(Number(/app;dur=([\d.]+)/.exec(String(r.headers['server-timing']))![1]));
        after = /href="[^"]*after=([^"&]+)[^"]*" rel="next"/.exec(r.body)?.[1];
      }
      best = Math.min(best, median(times));
    }
    return { ms: best, after };
  };
  const figures: string[] = [];
  for (const sort of ['name', 'pushed', 'size']) {
    const first = await serverMs(`/ui/?sort=${sort}`, 100);
    t.ok(first.after, `${sort}: there is a next page`);
    const later = await serverMs(`/ui/?sort=${sort}&after=${first.after}`, 100);
    figures.push(`${sort}: ${first.ms} ms first page, ${later.ms} ms next page`);
    t.ok(first.ms < 100, `sort by ${sort}: first page in ${first.ms} ms of server time (< 100)`);
    t.ok(later.ms < 100, `sort by ${sort}: next page in ${later.ms} ms (< 100)`);
  }
  const search = await serverMs('/ui/?q=service+number+7', 100);
  figures.push(`search: ${search.ms} ms`);
  t.ok(search.ms < 100, `search in ${search.ms} ms (< 100)`);
  const repo = await serverMs('/ui/r/org3/repo-00003');
  figures.push(`repository page: ${repo.ms} ms`);
  t.ok(repo.ms < 50, `a repository page in ${repo.ms} ms`);

  const image = buildImage({ layers: 5 });
  await pushImage(reg.url, 'org1/real', 'latest', image);
  const img = await serverMs('/ui/r/org1/real/-/tag/latest');
  figures.push(`image page (manifest cached): ${img.ms} ms`);
  t.ok(img.ms < 50, `an image page in ${img.ms} ms once cached (< 50)`);
  const storage = await serverMs('/ui/storage', 100);
  figures.push(`storage page: ${storage.ms} ms`);
  t.ok(storage.ms < 100, `the storage page in ${storage.ms} ms`);
  t.comment(figures.join('\n'));
});
