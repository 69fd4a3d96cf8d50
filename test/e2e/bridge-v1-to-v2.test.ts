import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import t from 'tap';
import { containersEnv, type ToolResult } from '../helpers/containers';
import { startDockerd } from '../helpers/dockerd';
import { untar } from '../helpers/oci-layout';
import { startRegistry, tempDir } from '../helpers/server';
import { requireTools } from '../helpers/tools';
import { imageChain, pushV1, type V1Image } from '../helpers/v1';
import { sha256 } from '../helpers/v2';

// Acceptance of the v1 -> v2 bridge with real clients (docs/bridge.md): a 3-image chain pushed with the
// Docker 1.x flow (a gzip layer, an empty layer, an uncompressed tar layer) is pulled over v2 by Debian's
// dockerd (docker create + export give exactly the layers' files), copied by skopeo to an OCI layout and
// unpacked by umoci (the same tree), and skopeo inspect --config shows the v1 config and history. The
// manifest digest is the same on every pull, also after a restart.

const said = (r: { code: number | null; stdout: string; stderr: string }) => ({ code: r.code, stdout: r.stdout.slice(-2000), stderr: r.stderr.slice(-2000) });

/** The files the chain's layers hold, by path: what any client must unpack. */
function chainFiles(chain: V1Image[]): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  for (const img of chain) for (const [name, data] of untar(img.layer[0] === 0x1f ? gunzipSync(img.layer) : img.layer)) files.set(name, data);
  return files;
}

/** Regular files under a directory, by relative path. */
function treeFiles(root: string, rel = ''): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const name of readdirSync(path.join(root, rel))) {
    const p = path.join(rel, name);
    const st = lstatSync(path.join(root, p));
    if (st.isDirectory()) for (const [k, v] of treeFiles(root, p)) out.set(k, v);
    else if (st.isFile()) out.set(p, readFileSync(path.join(root, p)));
  }
  return out;
}

const sorted = (m: Map<string, Buffer>) => [...m.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k, sha256(v)]);

t.test('a v1-pushed chain is pulled over v2 by dockerd, skopeo and umoci', async (t) => {
  if (!requireTools(t, ['dockerd', 'docker', 'skopeo', 'umoci'])) return;
  let reg = await startRegistry(t);
  const chain = imageChain(3, { kinds: ['gzip', 'empty', 'tar'] });
  await pushV1(reg.url, 'legacy/app', 'v1', chain);
  const expected = chainFiles(chain);
  t.equal(expected.size, 2, 'two files in the chain (the middle layer is empty)');

  const d = await startDockerd(t);
  const ref = `${reg.host}/legacy/app:v1`;
  const digestOf = (r: { stdout: string }) => /Digest: (sha256:[0-9a-f]{64})/.exec(r.stdout)?.[1];
  const dir = tempDir(t, 'bridge-e2e-');

  let digest: string | undefined;
  await t.test('docker pull, create, export', async (t) => {
    const pull = await d.docker(['pull', ref]);
    t.equal(pull.code, 0, 'docker pull exits 0', said(pull));
    digest = digestOf(pull);
    t.ok(digest, 'docker prints the digest');
    const info = JSON.parse((await d.docker(['image', 'inspect', ref])).stdout)[0] as { RootFS: { Layers: string[] }; Id: string };
    t.same(info.RootFS.Layers, [sha256(gunzipSync(chain[0]!.layer)), sha256(chain[2]!.layer)], 'layers extracted with the config diff_ids');
    const create = await d.docker(['create', '--network', 'none', '--name', 'legacy', ref, '/nothing']);
    t.equal(create.code, 0, 'docker create exits 0', said(create));
    const exported = path.join(dir, 'export.tar');
    const exp = await d.docker(['export', '-o', exported, 'legacy']);
    t.equal(exp.code, 0, 'docker export exits 0', said(exp));
    // What the container adds itself (/.dockerenv, /etc/hosts, ...) is not the image's.
    const files = new Map([...untar(readFileSync(exported))].filter(([name]) => !/^(\.dockerenv|etc\/|dev\/|proc\/|sys\/)/.test(name)));
    t.same(sorted(files), sorted(expected), 'the exported files are exactly the layers\' files, byte for byte');
    await d.docker(['rm', 'legacy']);

    t.equal((await d.docker(['rmi', ref])).code, 0);
    const again = await d.docker(['pull', ref]);
    t.equal(again.code, 0, 'second pull', said(again));
    t.equal(digestOf(again), digest, 'the same manifest digest on the second pull');
  });

  await t.test('skopeo copy to an OCI layout, umoci unpack; skopeo inspect --config', async (t) => {
    const env = await containersEnv(t);
    const check = (r: ToolResult, what: string) => t.equal(r.code, 0, what, said(r));
    const layout = path.join(dir, 'layout');
    check(await env.skopeo(['copy', '--src-tls-verify=false', `docker://${ref}`, `oci:${layout}:v1`]), 'skopeo copy to an OCI layout');
    const bundle = path.join(dir, 'bundle');
    const unpack = await runUmoci(['unpack', '--rootless', '--image', `${layout}:v1`, bundle]);
    t.equal(unpack.code, 0, 'umoci unpack', said(unpack));
    t.same(sorted(treeFiles(path.join(bundle, 'rootfs'))), sorted(expected), 'umoci unpacks the same tree');

    const inspect = await env.skopeo(['inspect', '--tls-verify=false', '--config', `docker://${ref}`]);
    check(inspect, 'skopeo inspect --config');
    const config = JSON.parse(inspect.stdout) as { architecture: string; os: string; history: { created_by?: string; empty_layer?: boolean }[]; rootfs: { diff_ids: string[] } };
    t.equal(config.architecture, 'amd64');
    t.equal(config.os, 'linux');
    t.same(config.history.map((h) => h.created_by), ['/bin/sh -c #0', '/bin/sh -c #1', '/bin/sh -c #2'], 'history from the v1 chain, root first');
    t.same(config.history.map((h) => !!h.empty_layer), [false, true, false], 'the empty layer marked');
    t.equal(config.rootfs.diff_ids.length, 2);
    const raw = await env.skopeo(['inspect', '--tls-verify=false', '--raw', `docker://${ref}`]);
    t.equal(sha256(raw.out), digest, 'skopeo sees the manifest docker pulled');
  });

  await t.test('after a restart: the same digest', async (t) => {
    reg = await reg.restart();
    t.equal((await d.docker(['rmi', ref])).code, 0);
    const pull = await d.docker(['pull', ref]);
    t.equal(pull.code, 0, 'docker pull after a restart', said(pull));
    t.equal(digestOf(pull), digest, 'same manifest digest');
  });
});

async function runUmoci(args: string[]) {
  const { runCommand } = await import('../helpers/containers');
  return runCommand('umoci', args, process.env, { timeoutMs: 60_000 });
}
