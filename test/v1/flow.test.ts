import t from 'tap';
import { startRegistry } from '../helpers/server';
import { imageChain, pullV1, pushV1 } from '../helpers/v1';

t.test('Docker 1.x push and pull flows over real HTTP', async (t) => {
  const reg = await startRegistry(t);
  const chain = imageChain(3, { emptyAt: 1 });

  const first = await pushV1(reg.url, 'acme/app', 'latest', chain);
  t.same(first.pushed, chain.map((i) => i.id), 'every image pushed root first');
  t.same(first.skipped, []);
  t.match(first.token, /^signature=[a-f0-9]+,repository="acme\/app",access=write$/, 'X-Docker-Token in the Hub format');

  const pulled = await pullV1(reg.url, 'acme/app', 'latest');
  t.same(pulled.map((p) => p.id), chain.map((i) => i.id), 'pulled root first');
  for (const [i, img] of chain.entries()) {
    t.ok(pulled[i]!.json.equals(img.json), `json ${i} byte for byte`);
    t.ok(pulled[i]!.layer.equals(img.layer), `layer ${i} byte for byte`);
    t.equal(pulled[i]!.size, img.layer.length, `X-Docker-Size ${i}`);
  }

  const second = await pushV1(reg.url, 'acme/app', 'v2', chain);
  t.same(second.pushed, [], 'second push uploads nothing');
  t.same(second.skipped, chain.map((i) => i.id), 'second push skips every existing image');

  const res = await fetch(`${reg.url}/v1/repositories/acme/app/tags`);
  t.same(await res.json(), { latest: chain[2]!.id, v2: chain[2]!.id });
});

t.test('library/ rule: single names are library/<name>', async (t) => {
  const reg = await startRegistry(t);
  const chain = imageChain(1);
  await pushV1(reg.url, 'busybox', 'latest', chain);
  const pulled = await pullV1(reg.url, 'busybox', 'latest');
  t.ok(pulled[0]!.layer.equals(chain[0]!.layer));
  const a = await (await fetch(`${reg.url}/v1/repositories/busybox/tags`)).json();
  const b = await (await fetch(`${reg.url}/v1/repositories/library/busybox/tags`)).json();
  t.same(a, b);
  t.same(b, { latest: chain[0]!.id });
});

t.test('a restart keeps every image, tag and list', async (t) => {
  let reg = await startRegistry(t);
  const chain = imageChain(2);
  await pushV1(reg.url, 'keep/me', 'latest', chain);
  reg = await reg.restart();
  const pulled = await pullV1(reg.url, "keep/me", "latest");
  t.same(pulled.map((p) => p.layer.toString('hex')), chain.map((c) => c.layer.toString('hex')));
});
