import t from 'tap';
import { repoCommand } from '../../src/cli/repo';
import { fakeIo } from '../cli/fake-io';
import { authConfig, basic } from '../helpers/auth';
import { startRegistry } from '../helpers/server';
import { buildImage, pushImage } from '../helpers/v2';

// Deleting a whole repository: DELETE /v2/_registry/repositories/<name> (the delete right), v1's DELETE, and
// `registry repo delete`. One transaction: afterwards nothing of it answers, and its neighbours are untouched.

t.test('the admin endpoint needs the delete right and removes tags, manifests and links at once', async (t) => {
  const { overrides } = authConfig(t, { admin: 'pw-admin', dev: 'pw-dev' }, {
    rules: [
      { repository: 'team/**', who: ['dev'], actions: ['pull', 'push'] },
      { repository: '**', who: ['admin'], actions: ['pull', 'push', 'delete'] },
    ],
  });
  const reg = await startRegistry(t, overrides);
  const admin = { authorization: basic('admin', 'pw-admin') };
  const dev = { authorization: basic('dev', 'pw-dev') };
  const img = buildImage();
  const push = async (repo: string, tag: string) => {
    for (const b of [img.config, ...img.layers]) {
      const start = await fetch(`${reg.url}/v2/${repo}/blobs/uploads/?digest=${b.digest}`, { method: 'POST', body: b.data, headers: admin });
      t.equal(start.status, 201);
    }
    const res = await fetch(`${reg.url}/v2/${repo}/manifests/${tag}`, { method: 'PUT', body: img.manifest, headers: { ...admin, 'content-type': img.mediaType } });
    t.equal(res.status, 201);
  };
  await push('team/app', 'v1');
  await push('team/app', 'v2');
  await push('team/app-2', 'v1'); // shares every blob, and a name prefix

  const url = `${reg.url}/v2/_registry/repositories/team/app`;
  t.equal((await fetch(url, { method: 'DELETE' })).status, 401, 'anonymous: challenged');
  const refused = await fetch(url, { method: 'DELETE', headers: dev });
  t.equal(refused.status, 403, 'push and pull are not enough');
  t.equal(((await refused.json()) as { errors: { code: string }[] }).errors[0]!.code, 'DENIED');
  t.equal((await fetch(`${reg.url}/v2/team/app/manifests/v1`, { headers: dev })).status, 200, 'still there');

  const ok = await fetch(url, { method: 'DELETE', headers: admin });
  t.equal(ok.status, 202);
  t.same(await ok.json(), { name: 'team/app', deleted: { tags: 2, manifests: 1, blobs: 4, v1Tags: 0, v1Images: 0, uploads: 0 } });
  t.equal((await fetch(`${reg.url}/v2/team/app/manifests/v1`, { headers: admin })).status, 404);
  t.equal((await fetch(`${reg.url}/v2/team/app/blobs/${img.layers[0]!.digest}`, { headers: admin })).status, 404, 'its links are gone');
  t.equal((await fetch(`${reg.url}/v2/team/app/tags/list`, { headers: admin })).status, 404, 'the repository is unknown');
  const catalog = (await (await fetch(`${reg.url}/v2/_catalog`, { headers: admin })).json()) as { repositories: string[] };
  t.same(catalog.repositories, ['team/app-2'], 'the neighbour stays');
  t.equal((await fetch(`${reg.url}/v2/team/app-2/blobs/${img.layers[0]!.digest}`, { headers: admin })).status, 200, 'with its blobs');

  const again = await fetch(url, { method: 'DELETE', headers: admin });
  t.equal(again.status, 404);
  t.equal(((await again.json()) as { errors: { code: string }[] }).errors[0]!.code, 'NAME_UNKNOWN');
  t.equal((await fetch(`${reg.url}/v2/_registry/repositories/Bad..Name`, { method: 'DELETE', headers: admin })).status, 400, 'invalid names are refused');
  t.equal((await fetch(`${reg.url}/v2/_registry/repositories/team/app-2`, { headers: admin })).status, 405, 'only DELETE');
});

t.test('registry repo delete: the same deletion from the command line, with clear errors', async (t) => {
  const reg = await startRegistry(t);
  await pushImage(reg.url, 'cli/app', 'latest', buildImage());
  const run = async (args: string[]) => {
    const io = fakeIo();
    const code = await repoCommand(args, io, { loadConfig: () => reg.config });
    return { code, out: io.stdout.text(), err: io.stderr.text() };
  };
  const done = await run(['delete', 'cli/app']);
  t.equal(done.code, 0);
  t.equal(done.out, 'repo delete: deleted cli/app (1 tag, 1 manifest, 4 blob links, 0 v1 tags, 0 v1 images, 0 open uploads); the next gc frees its bytes\n');
  t.equal((await fetch(`${reg.url}/v2/cli/app/manifests/latest`)).status, 404, 'the running server sees it gone');
  t.same(await run(['delete', 'cli/app']), { code: 1, out: '', err: 'registry repo delete: no repository cli/app\n' });
  t.equal((await run(['delete', 'UPPER'])).code, 2);
  t.equal((await run(['remove', 'x'])).code, 2);
});
