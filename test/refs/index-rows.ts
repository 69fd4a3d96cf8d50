import Database from 'better-sqlite3';
import { rmSync } from 'node:fs';
import t from 'tap';
import type { TestRegistry } from '../helpers/server';
import { imageChain, pushV1 } from '../helpers/v1';
import { buildImage, pushImage, putManifest } from '../helpers/v2';

// Shared by the rebuild and snapshot tests: what an index holds, and a mixed set of pushes to fill one.

/** Every row the journal promises to restore, in a stable order (times of use and uploads are not kept). */
export function indexRows(file: string): Record<string, unknown[]> {
  const db = new Database(file, { readonly: true });
  try {
    const q = (sql: string) => db.prepare(sql).all();
    return {
      blobs: q('SELECT digest, size, location FROM blobs ORDER BY digest'),
      repositories: q('SELECT name, description, v1_private, v1_indexed FROM repositories ORDER BY name'),
      links: q('SELECT repo, digest FROM repo_blobs ORDER BY repo, digest'),
      manifests: q('SELECT repo, digest, media_type, size, artifact_type, subject, annotations, created_at FROM manifests ORDER BY repo, digest'),
      refs: q('SELECT repo, digest, child FROM manifest_refs ORDER BY repo, digest, child'),
      tags: q('SELECT repo, tag, digest, updated_at, bridged_from_v1 FROM tags ORDER BY repo, tag'),
      v1Tags: q('SELECT repo, tag, image_id, meta FROM v1_tags ORDER BY repo, tag'),
      v1Images: q('SELECT repo, id, parent, json_digest, layer_digest, layer_size, checksum, complete, diff_id, layer_format FROM v1_images ORDER BY repo, id'),
      v1Lists: q('SELECT repo, image_id, checksum, position FROM v1_repo_images ORDER BY repo, image_id'),
      usage: q('SELECT repo, bytes, blobs FROM repo_usage ORDER BY repo'),
    };
  } finally {
    db.close();
  }
}

export const removeIndex = (file: string) => ['', '-wal', '-shm'].forEach((s) => rmSync(file + s, { force: true }));

export async function pushMixed(reg: TestRegistry) {
  const oci = buildImage();
  const docker = buildImage({ format: 'docker' });
  await pushImage(reg.url, 'mix/oci', 'v1', oci);
  await pushImage(reg.url, 'mix/docker', 'latest', docker);
  const amd = buildImage({ arch: 'amd64', layers: 1 });
  const arm = buildImage({ arch: 'arm64', layers: 1 });
  await pushImage(reg.url, 'mix/multi', 'amd', amd);
  await pushImage(reg.url, 'mix/multi', 'arm', arm);
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [amd, arm].map((i, n) => ({ mediaType: i.mediaType, digest: i.manifestDigest, size: i.manifest.length, platform: { os: 'linux', architecture: n ? 'arm64' : 'amd64' } })),
    }),
  );
  t.equal((await putManifest(reg.url, 'mix/multi', 'latest', index, 'application/vnd.oci.image.index.v1+json')).status, 201);
  const sig = buildImage({ layers: 1, subject: { digest: oci.manifestDigest, size: oci.manifest.length, mediaType: oci.mediaType }, artifactType: 'application/vnd.example.sig' });
  await pushImage(reg.url, 'mix/oci', 'sig', sig);
  // Changes after the first push: a tag moved, a tag deleted, a manifest deleted.
  const moved = buildImage({ layers: 1 });
  await pushImage(reg.url, 'mix/oci', 'v1', moved);
  await fetch(`${reg.url}/v2/mix/multi/manifests/arm`, { method: 'DELETE' });
  const gone = buildImage({ layers: 1 });
  await pushImage(reg.url, 'mix/gone', 'x', gone);
  await fetch(`${reg.url}/v2/mix/gone/manifests/${gone.manifestDigest}`, { method: 'DELETE' });
  const chain = imageChain(3);
  await pushV1(reg.url, 'v1ns/app', 'latest', chain);
  return { oci: moved, subject: oci.manifestDigest, docker, amd, arm, index, chain };
}

