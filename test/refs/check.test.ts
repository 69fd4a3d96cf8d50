import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { checkCommand } from '../../src/cli/check';
import { fakeIo } from '../cli/fake-io';
import { startRegistry, type TestRegistry } from '../helpers/server';
import { imageChain, pushV1 } from '../helpers/v1';
import { blobOf, buildImage, pushImage, pullsWhole, withLayers } from '../helpers/v2';

// `registry check`: a flipped byte is found, with the images it breaks; --repair moves it aside and forgets
// it, so pulls fail cleanly with BLOB_UNKNOWN until the content is pushed again.

async function check(reg: TestRegistry, ...args: string[]) {
  const io = fakeIo();
  const code = await checkCommand(args, io, { loadConfig: () => reg.config });
  return { code, out: io.stdout.text(), err: io.stderr.text() };
}

const blobFile = (reg: TestRegistry, digest: string) => {
  const hex = digest.slice('sha256:'.length);
  return path.join(reg.dir, 'blobs', 'blobs', 'sha256', hex.slice(0, 2), hex);
};

t.test('a flipped byte: reported with the images it breaks, quarantined by --repair, healed by a push', async (t) => {
  const reg = await startRegistry(t, { storage: { driver: 'local' }, gc: { interval: 0 } });
  const shared = blobOf(Buffer.from('a layer two images share '.repeat(100)));
  const one = withLayers(buildImage({ layers: 1 }), [shared]);
  const two = withLayers(buildImage({ layers: 1 }), [shared]);
  await pushImage(reg.url, 'chk/a', 'v1', one);
  await pushImage(reg.url, 'chk/b', 'v2', two);
  await pushV1(reg.url, 'chk/old', 'latest', imageChain(2));

  const clean = await check(reg);
  t.equal(clean.code, 0, clean.out);
  t.match(clean.out, /^check: \d+ blobs \(.*\) and every reference checked: all intact, in /m);

  const file = blobFile(reg, shared.digest);
  const bytes = readFileSync(file);
  bytes[100] ^= 0x01;
  writeFileSync(file, bytes);
  const found = await check(reg);
  t.equal(found.code, 1, 'non-zero when something is wrong');
  t.match(found.out, new RegExp(`^corrupt blob ${shared.digest}: .* hashes to sha256:`, 'm'), 'exactly that blob');
  t.same(found.out.split('\n').filter((l) => l.startsWith('  affects ')), ['  affects chk/a:v1', '  affects chk/b:v2'], 'and the images that use it');
  t.equal(found.out.split('\n').filter((l) => / blob sha256:/.test(l)).length, 1, 'nothing else');

  const repaired = await check(reg, '--repair');
  t.equal(repaired.code, 1);
  t.match(repaired.out, /moved to quarantine\//);
  t.same(readdirSync(path.join(reg.dir, 'blobs', 'quarantine')).length, 1, 'the bytes are kept aside, not deleted');
  const pull = await fetch(`${reg.url}/v2/chk/a/blobs/${shared.digest}`);
  t.equal(pull.status, 404, 'a pull of the broken layer fails cleanly');
  t.equal(((await pull.json()) as { errors: { code: string }[] }).errors[0]!.code, 'BLOB_UNKNOWN');
  t.equal((await fetch(`${reg.url}/v2/chk/a/manifests/v1`)).status, 200, 'the manifest stays, to be healed');
  const after = await check(reg);
  t.match(after.out, /broken reference: manifest names something that is neither a stored blob nor a manifest of its repository: chk\/a@/);
  t.equal(after.code, 1, 'the images stay reported until healed');

  await pushImage(reg.url, 'chk/a', 'v1', one); // the client pushes again: HEAD says the layer is missing
  await pushImage(reg.url, 'chk/b', 'v2', two);
  t.ok(await pullsWhole(reg.url, 'chk/a', 'v1', one), 'healed');
  const healed = await check(reg);
  t.equal(healed.code, 0, healed.out);
});

t.test('a missing blob, a sample, and bad arguments', async (t) => {
  const reg = await startRegistry(t, { storage: { driver: 'local' }, gc: { interval: 0 } });
  const img = buildImage({ layers: 3 });
  await pushImage(reg.url, 'chk/m', 'v1', img);
  rmSync(blobFile(reg, img.layers[1]!.digest));
  const found = await check(reg);
  t.equal(found.code, 1);
  t.match(found.out, new RegExp(`^missing blob ${img.layers[1]!.digest}: .* is not in storage\\n  affects chk/m:v1$`, 'm'));
  const sampled = await check(reg, '--sample', '2');
  t.match(sampled.out, /^check: 2 blobs /m, 'only the sample is re-hashed');
  for (const bad of [['--sample'], ['--sample', '0'], ['--fix']]) t.equal((await check(reg, ...bad)).code, 2, bad.join(' '));
});
