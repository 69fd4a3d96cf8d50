import t from 'tap';
import { duCommand } from '../../src/cli/du';
import { retentionCommand } from '../../src/cli/retention';
import { parseConfig } from '../../src/config/load';
import type { Config } from '../../src/config/schema';
import { indexRows } from '../helpers/index-db';
import { judgeTags, type TagState } from '../../src/retention/policy';
import type { Digest } from '../../src/storage/digest';
import { fakeIo } from '../cli/fake-io';
import { startRegistry, type TestRegistry } from '../helpers/server';
import { buildImage, pushImage, pullsWhole, putManifest, type BuiltImage } from '../helpers/v2';

// Retention: which tags a policy keeps, what a run deletes with them (manifests only they reached), that a
// dry run lists exactly what the real run then deletes, and that pulls keep tags alive.

const DAY = 86_400_000;

t.test('policies: bad ones stop the start naming the key', async (t) => {
  const cfg = (policies: string) => () => parseConfig(`retention:\n  policies: ${policies}\n`, {});
  t.same(parseConfig('retention:\n  policies: [{repository: "ci/**", keepLast: 10, keepTags: ["v*"]}]\n', {}).retention.policies, [
    { repository: 'ci/**', keepLast: 10, keepTags: ['v*'] },
  ]);
  t.throws(cfg('[{repository: "a/**", keepLast: 3, keepFirst: 2}]'), /unknown configuration key "retention\.policies\[0\]\.keepFirst"/);
  t.throws(cfg('[{repository: "a/**", keepLast: -1}]'), /retention\.policies\[0\]\.keepLast: expected a whole number, at least 0/);
  t.throws(cfg('[{repository: "a/**", deleteOlderThan: -2}]'), /deleteOlderThan: expected a number of days, at least 0/);
  t.throws(cfg('[{repository: "a b", keepLast: 1}]'), /retention\.policies\[0\]\.repository: " " cannot appear/);
  t.throws(cfg('[{repository: "a/**", keepTags: ["v[0-9]"]}]'), /keepTags: expected a list of tag patterns/);
  t.throws(cfg('[{repository: "a/**"}]'), /retention\.policies\[0\]: no rule .* it would delete every tag/);
});

t.test('judgeTags: every rule keeps; a tag goes when none does, with every reason', async (t) => {
  const now = 100 * DAY;
  const tag = (name: string, pushedDaysAgo: number, pulledDaysAgo: number | null = null): TagState => ({
    tag: name,
    digest: `sha256:${name}` as Digest,
    pushedAt: now - pushedDaysAgo * DAY,
    pulledAt: pulledDaysAgo === null ? null : now - pulledDaysAgo * DAY,
  });
  const tags = [tag('old', 50), tag('v1.0', 60), tag('pulled', 40, 1), tag('new', 1), tag('newer', 0.5), tag('mid', 20)];
  const verdicts = judgeTags({ repository: '**', keepLast: 2, keepTags: ['v*'], keepPulledWithin: 7, deleteOlderThan: 30 }, tags, now);
  t.same(verdicts.map((v) => v.tag), ['newer', 'new', 'mid', 'pulled', 'old', 'v1.0'], 'newest first');
  const by = Object.fromEntries(verdicts.map((v) => [v.tag, v]));
  t.same([by.newer!.keep, by.new!.keep, by.mid!.keep, by.pulled!.keep, by['v1.0']!.keep, by.old!.keep], [true, true, true, true, true, false]);
  t.equal(by.newer!.reason, 'among the newest 2');
  t.equal(by.mid!.reason, 'pushed within 30 days');
  t.equal(by.pulled!.reason, 'pulled within 7 days');
  t.equal(by['v1.0']!.reason, 'matches v*');
  t.equal(by.old!.reason, 'not among the newest 2, matches none of v*, not pulled within 7 days, pushed more than 30 days ago');
  // Push-time ties are broken by name, so the same tags always give the same verdicts.
  const same = [tag('a', 1), tag('b', 1)];
  t.same(judgeTags({ repository: '**', keepLast: 1 }, same, now).filter((v) => v.keep).map((v) => v.tag), ['b']);
});

/** Run the CLI in-process against the registry's index, with these policies. */
async function cli(reg: TestRegistry, command: typeof retentionCommand | typeof duCommand, args: string[], retention?: Partial<Config['retention']>) {
  const io = fakeIo();
  const config = { ...reg.config, retention: { ...reg.config.retention, ...retention } } as Config;
  const code = await command(args, io, { loadConfig: () => config });
  return { code, stdout: io.stdout.text(), stderr: io.stderr.text() };
}

const tagsOf = async (reg: TestRegistry, repo: string) => ((await (await fetch(`${reg.url}/v2/${repo}/tags/list?n=1000`)).json()) as { tags: string[] }).tags;

t.test('keep the last 10 and v*: the dry run lists exactly what the real run deletes', async (t) => {
  const reg = await startRegistry(t, { retention: { interval: 0 } });
  const images: BuiltImage[] = [];
  const names = Array.from({ length: 50 }, (_, i) => (i % 10 === 3 ? `v1.${i}` : `b${String(i).padStart(2, '0')}`));
  for (const name of names) {
    const img = buildImage({ layers: 1, layerBytes: 64 });
    images.push(img);
    await pushImage(reg.url, 'ci/app', name, img);
  }
  await pushImage(reg.url, 'other/app', 'b00', buildImage({ layers: 1, layerBytes: 64 })); // no policy matches it
  const policies = [{ repository: 'ci/**', keepLast: 10, keepTags: ['v*'] }];

  const dry = await cli(reg, retentionCommand, ['--dry-run'], { policies });
  t.equal(dry.code, 0);
  const listed = (out: string, verb: string) => out.split('\n').filter((l) => l.startsWith(`${verb} tag `)).map((l) => /ci\/app:([^ ]+) /.exec(l)![1]).sort();
  const expectedGone = names.slice(0, 40).filter((n) => !n.startsWith('v')).sort();
  t.same(listed(dry.stdout, 'would delete'), expectedGone, 'the dry run lists the old tags that match no pattern');
  t.match(dry.stdout, /^retention --dry-run: would delete 36 tags and 36 untagged manifests in 1 repository; .* for the next gc to free, in /m);
  t.equal((await tagsOf(reg, 'ci/app')).length, 50, 'the dry run deleted nothing');

  const real = await cli(reg, retentionCommand, [], { policies });
  t.same(listed(real.stdout, 'deleted'), listed(dry.stdout, 'would delete'), 'the real run deleted exactly those');
  t.match(real.stdout, /^retention: deleted 36 tags and 36 untagged manifests in 1 repository; /m);
  const left = await tagsOf(reg, 'ci/app');
  t.same(left.sort(), [...names.slice(40), ...names.slice(0, 40).filter((n) => n.startsWith('v'))].sort(), 'the 10 newest and the v* tags');
  for (const [i, name] of names.entries()) {
    if (left.includes(name)) t.ok(await pullsWhole(reg.url, 'ci/app', name, images[i]!), `${name} pulls whole`);
    else t.equal((await fetch(`${reg.url}/v2/ci/app/manifests/${images[i]!.manifestDigest}`, { method: 'HEAD' })).status, 404, `${name}'s manifest is gone`);
  }
  t.same(await tagsOf(reg, 'other/app'), ['b00'], 'a repository no policy matches is untouched');
  t.match((await cli(reg, retentionCommand, [], { policies })).stdout, /^retention: deleted 0 tags/m, 'a second run finds nothing');
});

t.test('manifests: a digest kept by another tag stays; an index takes its children, a subject its referrers', async (t) => {
  const reg = await startRegistry(t, { retention: { interval: 0 } });
  const shared = buildImage({ layers: 1, layerBytes: 32 });
  await pushImage(reg.url, 'm/app', 'old-shared', shared);
  const child = buildImage({ layers: 1, layerBytes: 32 });
  await pushImage(reg.url, 'm/app', 'child', child);
  await fetch(`${reg.url}/v2/m/app/manifests/child`, { method: 'DELETE' }); // untagged, reachable only through the index
  const indexBody = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ mediaType: child.mediaType, digest: child.manifestDigest, size: child.manifest.length }] }),
  );
  t.equal((await putManifest(reg.url, 'm/app', 'old-index', indexBody, 'application/vnd.oci.image.index.v1+json')).status, 201);
  const sig = buildImage({ layers: 1, layerBytes: 16, subject: { digest: child.manifestDigest, size: child.manifest.length, mediaType: child.mediaType } });
  await pushImage(reg.url, 'm/app', 'sig-untagged', sig);
  await fetch(`${reg.url}/v2/m/app/manifests/sig-untagged`, { method: 'DELETE' });
  await pushImage(reg.url, 'm/app', 'new-shared', shared); // same digest, newer tag
  const policies = [{ repository: 'm/**', keepTags: ['new-*'] }];
  const run = await cli(reg, retentionCommand, [], { policies });
  t.match(run.stdout, /deleted tag m\/app:old-shared/);
  t.match(run.stdout, /deleted tag m\/app:old-index/);
  t.ok(await pullsWhole(reg.url, 'm/app', 'new-shared', shared), 'the shared digest stays with the kept tag');
  for (const gone of [child.manifestDigest, sig.manifestDigest]) {
    t.equal((await fetch(`${reg.url}/v2/m/app/manifests/${gone}`, { method: 'HEAD' })).status, 404, 'the child and its referrer went with the index');
  }
  t.same(await tagsOf(reg, 'm/app'), ['new-shared']);
});

t.test('pulls, recorded in batches, keep tags alive; a tag pushed again after the decision stays', async (t) => {
  const reg = await startRegistry(t, { retention: { interval: 0, pullFlush: 1, policies: [{ repository: 'p/**', keepPulledWithin: 7, keepLast: 1 }] } });
  const imgs = ['a', 'b', 'c', 'd'].map(() => buildImage({ layers: 1, layerBytes: 16 }));
  for (const [i, name] of ['a', 'b', 'c', 'd'].entries()) await pushImage(reg.url, 'p/app', name, imgs[i]!);
  // All four were pushed "40 days ago"; then a is pulled by tag and b by digest.
  const db = indexRows(reg.app.registry.index);
  await db.run("UPDATE tags SET updated_at = updated_at - ? WHERE repo = 'p/app'", 40 * 86400_000);
  await fetch(`${reg.url}/v2/p/app/manifests/a`);
  await fetch(`${reg.url}/v2/p/app/manifests/${imgs[1]!.manifestDigest}`, { method: 'HEAD' });
  const pulled = () => db.value("SELECT count(*) FROM tags t JOIN manifests m USING (repo, digest) WHERE t.repo = 'p/app' AND coalesce(t.pulled_at, m.pulled_at) IS NOT NULL");
  for (let i = 0; i < 50 && (await pulled()) !== 2; i++) await new Promise((r) => setTimeout(r, 100));
  t.equal(await pulled(), 2, 'the pulls reached the index within the flush interval');
  const run = await reg.app.registry.retention.run();
  t.same([run.tags, run.manifests], [1, 1], 'c went; a and b were pulled, d is the newest');
  t.same((await tagsOf(reg, 'p/app')).sort(), ['a', 'b', 'd']);
});

t.test('du reports what quotas count, per repository, shared and unique', async (t) => {
  const reg = await startRegistry(t, { quotas: [{ repository: 'du/**', limit: 1_000_000 }] });
  const img = buildImage({ layers: 2, layerBytes: 1000 });
  await pushImage(reg.url, 'du/one', 'x', img);
  await pushImage(reg.url, 'du/two', 'x', img);
  await pushImage(reg.url, 'solo', 'x', buildImage({ layers: 1, layerBytes: 10 }));
  const out = await cli(reg, duCommand, ['du/**', '--bytes']);
  t.equal(out.code, 0);
  const rows = out.stdout.split('\n').filter((l) => l.startsWith('du/')).map((l) => l.split(/\s+/));
  const size = img.config.data.length + img.layers.reduce((a, l) => a + l.data.length, 0) + img.manifest.length;
  t.same(rows, [
    ['du/one', String(size), String(size), '0', '4'],
    ['du/two', String(size), String(size), '0', '4'],
  ], 'each repository is charged the whole image once; all of it shared');
  t.match(out.stdout, new RegExp(`^total: ${2 * size} in 2 repositories$`, 'm'));
  t.match(out.stdout, new RegExp(`^quota du/\\*\\*: ${2 * size} of 1000000 used \\(\\d+%\\)$`, 'm'), 'the quota line agrees with the table');
  t.equal((await reg.app.registry.quotas.status())[0]!.used, 2 * size, 'and with what the server enforces');
  const bad = await cli(reg, duCommand, ['Bad Glob']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /cannot appear in a repository glob/);
});

t.test('the server applies the policies on its schedule', async (t) => {
  const reg = await startRegistry(t, { retention: { interval: 1, policies: [{ repository: 's/**', keepLast: 1 }] } });
  for (const tag of ['a', 'b', 'c']) await pushImage(reg.url, 's/app', tag, buildImage({ layers: 1, layerBytes: 16 }));
  for (let i = 0; i < 50 && (await tagsOf(reg, 's/app')).length > 1; i++) await new Promise((r) => setTimeout(r, 100));
  t.same(await tagsOf(reg, 's/app'), ['c'], 'only the newest is left');
});

t.test('retention.dryRun: the server\'s scheduled runs delete nothing', async (t) => {
  const reg = await startRegistry(t, { retention: { interval: 1, dryRun: true, policies: [{ repository: 'd/**', keepLast: 1 }] } });
  for (const tag of ['a', 'b']) await pushImage(reg.url, 'd/app', tag, buildImage({ layers: 1, layerBytes: 16 }));
  await new Promise((r) => setTimeout(r, 2500)); // two scheduled runs
  t.same((await tagsOf(reg, 'd/app')).sort(), ['a', 'b'], 'both tags stay');
});
