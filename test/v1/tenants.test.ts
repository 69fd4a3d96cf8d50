import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import t from 'tap';
import { countWork } from '../helpers/count-work';
import { http } from '../helpers/http';
import { as, startTenantRegistry, type Tenant } from '../helpers/tenants';
import { imageChain, payloadChecksum, pullV1, pushV1, tarOf, type V1Image } from '../helpers/v1';

// v1 image ids are names clients choose, not content digests: the regression tests of issue 22 item 2.
// Each repository has its own images, so no id listed, pushed or guessed reaches another tenant's bytes.

/** The same ids and JSON as `chain`, with other layers: what an attacker would push under known ids. */
function sameIdsOtherBytes(chain: V1Image[]): V1Image[] {
  return chain.map((img) => {
    const layer = gzipSync(tarOf([{ name: 'evil', data: randomBytes(3000) }]));
    return { ...img, layer, checksum: payloadChecksum(img.json, layer) };
  });
}

/** A v1 token for `repo` from the index call, as Docker 1.x gets one. */
async function v1Token(url: string, user: Tenant, repo: string, method: 'GET' | 'PUT', body?: string): Promise<string> {
  const path = method === 'PUT' ? `/v1/repositories/${repo}/` : `/v1/repositories/${repo}/images`;
  const r = await http(url, method, path, body, { ...as(user), 'x-docker-token': 'true', 'content-type': 'application/json' });
  if (r.status !== 200) throw new Error(`${method} ${path}: ${r.status} ${r.buf}`);
  return `Token ${r.headers.get('x-docker-token')}`;
}

t.test('listing another tenant\'s image id grants nothing over its bytes', async (t) => {
  const reg = await startTenantRegistry(t);
  const chain = imageChain(2);
  await pushV1(reg.url, 'team-a/vault', 'latest', chain, as('alice'));
  const [root, top] = [chain[0]!, chain[1]!];

  for (const what of ['json', 'layer', 'ancestry']) {
    const r = await http(reg.url, 'GET', `/v1/images/${top.id}/${what}`, undefined, as('carol'));
    t.equal(r.status, 404, `carol cannot read ${what} with Basic`);
  }
  const token = await v1Token(reg.url, 'carol', 'carol/loot', 'PUT', JSON.stringify([{ id: top.id }, { id: root.id }]));
  for (const headers of [{ authorization: token }, as('carol')]) {
    for (const what of ['json', 'layer', 'ancestry']) {
      const r = await http(reg.url, 'GET', `/v1/images/${top.id}/${what}`, undefined, headers);
      t.equal(r.status, 404, `after listing the id in carol/loot, ${what} is still not hers (${headers.authorization.split(' ')[0]})`);
    }
  }
  const tag = await http(reg.url, 'PUT', '/v1/repositories/carol/loot/tags/stolen', JSON.stringify(top.id), { authorization: token });
  t.equal(tag.status, 404, 'nor can she tag it');

  // Who may pull team-a gets it, through the repository that holds it.
  const mallory = await v1Token(reg.url, 'mallory', 'team-a/vault', 'GET');
  const layer = await http(reg.url, 'GET', `/v1/images/${top.id}/layer`, undefined, { authorization: mallory });
  t.ok(layer.status === 200 && layer.buf.equals(top.layer), 'mallory (pull on team-a) reads it with her token');
  const basic = await http(reg.url, 'GET', `/v1/images/${top.id}/json`, undefined, as('mallory'));
  t.equal(basic.status, 200, 'and with Basic');
});

t.test('nothing tells a caller whether an image it cannot read exists', async (t) => {
  const reg = await startTenantRegistry(t);
  const chain = imageChain(1);
  await pushV1(reg.url, 'team-a/vault', 'latest', chain, as('alice'));
  const existing = chain[0]!.id;
  const missing = randomBytes(32).toString('hex');
  const token = await v1Token(reg.url, 'carol', 'carol/o', 'PUT', '[]');
  const answers = async (id: string) => [
    (await http(reg.url, 'PUT', '/v1/repositories/carol/o/tags/t', JSON.stringify(id), { authorization: token })).buf.toString(),
    (await http(reg.url, 'GET', `/v1/images/${id}/json`, undefined, { authorization: token })).buf.toString(),
    (await http(reg.url, 'GET', `/v1/images/${id}/json`, undefined, as('carol'))).buf.toString(),
    (await http(reg.url, 'GET', `/v1/images/${id}/json`)).status,
  ];
  t.same(await answers(existing), await answers(missing), 'the same answers for an existing and a missing id');
});

t.test('a tenant who pushes known ids first poisons nothing', async (t) => {
  const reg = await startTenantRegistry(t);
  const chain = imageChain(3);
  const evil = sameIdsOtherBytes(chain);
  const carol = await pushV1(reg.url, 'carol/base', 'latest', evil, as('carol'));
  t.equal(carol.pushed.length, 3);

  const alice = await pushV1(reg.url, 'team-a/base', 'v1', chain, as('alice'));
  t.same(alice.skipped, [], "alice's push skips nothing: carol's images are not hers");
  t.same(alice.pushed, chain.map((i) => i.id));
  const pulled = await pullV1(reg.url, 'team-a/base', 'v1', as('alice'));
  t.ok(pulled.every((p, i) => p.layer.equals(chain[i]!.layer)), "team-a/base:v1 pulls alice's layers");
  const theirs = await pullV1(reg.url, 'carol/base', 'latest', as('carol'));
  t.ok(theirs.every((p, i) => p.layer.equals(evil[i]!.layer)), "carol's repository serves carol's");

  // Two tenants pushing the very same image (a public base image) each get a whole copy of the chain.
  const bob = await pushV1(reg.url, 'team-b/base', 'v1', chain, as('bob'));
  t.same(bob.skipped, [], 'bob pushes it too');
  const bobs = await pullV1(reg.url, 'team-b/base', 'v1', as('bob'));
  t.ok(bobs.every((p, i) => p.layer.equals(chain[i]!.layer)));
  const again = await pushV1(reg.url, 'team-a/base', 'v2', chain, as('alice'));
  t.same(again.pushed, [], 'within one repository, known images are skipped as before');
});

t.test("another tenant cannot take over an image being pushed", async (t) => {
  const reg = await startTenantRegistry(t);
  const [img] = imageChain(1);
  const alice = await v1Token(reg.url, 'alice', 'team-a/app', 'PUT', JSON.stringify([{ id: img!.id }]));
  let r = await http(reg.url, 'PUT', `/v1/images/${img!.id}/json`, img!.json, { authorization: alice });
  t.equal(r.status, 200, 'alice starts her push');

  const carol = await v1Token(reg.url, 'carol', 'carol/x', 'PUT', JSON.stringify([{ id: img!.id }]));
  const evilJson = Buffer.from(JSON.stringify({ id: img!.id, comment: 'carol was here' }));
  r = await http(reg.url, 'PUT', `/v1/images/${img!.id}/json`, evilJson, { authorization: carol });
  t.equal(r.status, 200, "carol's json goes to her own repository");
  r = await http(reg.url, 'PUT', `/v1/images/${img!.id}/json`, evilJson, as('carol'));
  t.equal(r.status, 200, 'with Basic too: the one repository of hers that lists it');

  r = await http(reg.url, 'PUT', `/v1/images/${img!.id}/layer`, img!.layer, { authorization: alice });
  t.equal(r.status, 200);
  r = await http(reg.url, 'PUT', `/v1/images/${img!.id}/checksum`, undefined, { authorization: alice, 'x-docker-checksum-payload': img!.checksum });
  t.equal(r.status, 200, "alice's checksum still matches her json");
  r = await http(reg.url, 'GET', `/v1/images/${img!.id}/json`, undefined, { authorization: alice });
  t.ok(r.buf.equals(img!.json), "alice's json is intact");
});

t.test('a v1 image cannot be its own parent, nor hang from an image still in progress', async (t) => {
  const reg = await startTenantRegistry(t);
  const [a, b] = imageChain(2);
  const token = await v1Token(reg.url, 'alice', 'team-a/loop', 'PUT', JSON.stringify([{ id: a!.id }, { id: b!.id }]));
  const put = (id: string, json: object) => http(reg.url, 'PUT', `/v1/images/${id}/json`, JSON.stringify(json), { authorization: token });
  t.equal((await put(a!.id, { id: a!.id })).status, 200);
  let r = await put(a!.id, { id: a!.id, parent: a!.id });
  t.same([r.status, r.json], [400, { error: 'Image depends on a non existing parent' }], 'itself');
  r = await put(b!.id, { id: b!.id, parent: a!.id });
  t.equal(r.status, 400, 'a parent still in progress');
  r = await put(a!.id, { id: a!.id, parent: b!.id });
  t.equal(r.status, 400, 'so no cycle can form');
});

t.test("without a token, an image is looked up only among the caller's repositories: other tenants' copies cost nothing", async (t) => {
  const reg = await startTenantRegistry(t);
  const [img] = imageChain(1);
  await pushV1(reg.url, 'team-a/vault', 'latest', [img!], as('alice'));
  const copies = 40;
  for (let i = 0; i < copies; i++) await pushV1(reg.url, `carol/r${i}`, 'latest', sameIdsOtherBytes([img!]), as('carol'));
  await v1Token(reg.url, 'alice', 'team-a/next', 'PUT', JSON.stringify([{ id: img!.id }]));

  let r: Awaited<ReturnType<typeof http>> | undefined;
  let work = await countWork(async () => {
    r = await http(reg.url, 'GET', `/v1/images/${img!.id}/layer`, undefined, as('alice'));
  });
  t.ok(r!.status === 200 && r!.buf.equals(img!.layer), "alice reads her own layer");
  t.ok(work.rows < 15, `a read without a token reads few rows whatever carol holds (${work.rows})`);
  work = await countWork(async () => {
    r = await http(reg.url, 'PUT', `/v1/images/${img!.id}/json`, img!.json, as('alice'));
  });
  t.same(r!.status, 400, "a write without a token, where two of alice's repositories list the id, is ambiguous");
  t.ok(work.rows < 15, `and costs few rows too (${work.rows})`);
});
