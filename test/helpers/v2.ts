import { createHash, randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { tarOf } from './v1';

// Build small OCI / Docker images in memory and push them over the v2 API with plain HTTP.

export const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export interface Blob {
  digest: string;
  data: Buffer;
  mediaType: string;
}

export interface BuiltImage {
  config: Blob;
  layers: Blob[];
  manifest: Buffer;
  manifestDigest: string;
  mediaType: string;
}

export function blobOf(data: Buffer, mediaType = 'application/octet-stream'): Blob {
  return { digest: sha256(data), data, mediaType };
}

/** A runnable-looking image: gzip tar layers, a config naming their diff ids, a manifest. */
export function buildImage(
  opts: { layers?: number; layerBytes?: number; format?: 'oci' | 'docker'; arch?: string; subject?: { digest: string; size: number; mediaType: string }; artifactType?: string; annotations?: Record<string, string> } = {},
): BuiltImage {
  const docker = opts.format === 'docker';
  const layerType = docker ? 'application/vnd.docker.image.rootfs.diff.tar.gzip' : 'application/vnd.oci.image.layer.v1.tar+gzip';
  const tars = Array.from({ length: opts.layers ?? 2 }, (_, i) => tarOf([{ name: `f${i}`, data: randomBytes(opts.layerBytes ?? 2048) }]));
  const layers = tars.map((t) => blobOf(gzipSync(t), layerType));
  const config = blobOf(
    Buffer.from(
      JSON.stringify({
        architecture: opts.arch ?? 'amd64',
        os: 'linux',
        config: {},
        rootfs: { type: 'layers', diff_ids: tars.map((t) => sha256(t)) },
      }),
    ),
    docker ? 'application/vnd.docker.container.image.v1+json' : 'application/vnd.oci.image.config.v1+json',
  );
  const mediaType = docker ? 'application/vnd.docker.distribution.manifest.v2+json' : 'application/vnd.oci.image.manifest.v1+json';
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      ...(opts.artifactType ? { artifactType: opts.artifactType } : {}),
      config: { mediaType: config.mediaType, digest: config.digest, size: config.data.length },
      layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.data.length })),
      ...(opts.subject ? { subject: opts.subject } : {}),
      ...(opts.annotations ? { annotations: opts.annotations } : {}),
    }),
  );
  return { config, layers, manifest, manifestDigest: sha256(manifest), mediaType };
}

/** Upload one blob: POST then a single PUT with the body (the monolithic path). */
export async function pushBlob(base: string, repo: string, blob: Blob): Promise<void> {
  const start = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  if (start.status !== 202) throw new Error(`POST uploads: ${start.status} ${await start.text()}`);
  const loc = new URL(start.headers.get('location')!, base);
  loc.searchParams.set('digest', blob.digest);
  const put = await fetch(loc, { method: 'PUT', body: blob.data, headers: { 'content-type': 'application/octet-stream' } });
  if (put.status !== 201) throw new Error(`PUT upload: ${put.status} ${await put.text()}`);
}

/** Upload one blob as chunking clients do: HEAD (skip if present), POST, two PATCHes, PUT ?digest=. */
export async function pushChunked(base: string, repo: string, blob: Blob): Promise<void> {
  const head = await fetch(`${base}/v2/${repo}/blobs/${blob.digest}`, { method: 'HEAD' });
  await head.arrayBuffer();
  if (head.status === 200) return;
  const start = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  await start.arrayBuffer();
  if (start.status !== 202) throw new Error(`POST uploads: ${start.status}`);
  let loc = new URL(start.headers.get('location')!, base).toString();
  const cut = Math.floor(blob.data.length / 2);
  for (const [from, to] of [[0, cut], [cut, blob.data.length]] as const) {
    if (to === from) continue;
    const patch = await fetch(loc, {
      method: 'PATCH',
      body: blob.data.subarray(from, to),
      headers: { 'content-type': 'application/octet-stream', 'content-range': `${from}-${to - 1}` },
    });
    const text = await patch.text();
    if (patch.status !== 202) throw new Error(`PATCH ${from}-${to - 1}: ${patch.status} ${text}`);
    loc = new URL(patch.headers.get('location')!, base).toString();
  }
  const url = new URL(loc);
  url.searchParams.set('digest', blob.digest);
  const put = await fetch(url, { method: 'PUT' });
  const text = await put.text();
  if (put.status !== 201) throw new Error(`PUT ${blob.digest}: ${put.status} ${text}`);
}

export async function putManifest(base: string, repo: string, ref: string, body: Buffer, mediaType: string): Promise<Response> {
  return fetch(`${base}/v2/${repo}/manifests/${ref}`, { method: 'PUT', body, headers: { 'content-type': mediaType } });
}

/** Push blobs and manifest of an image; returns the manifest digest. */
export async function pushImage(base: string, repo: string, tag: string, image: BuiltImage): Promise<string> {
  for (const blob of [image.config, ...image.layers]) await pushBlob(base, repo, blob);
  const res = await putManifest(base, repo, tag, image.manifest, image.mediaType);
  if (res.status !== 201) throw new Error(`PUT manifest: ${res.status} ${await res.text()}`);
  return res.headers.get('docker-content-digest')!;
}

/** The same image with other layers: its manifest rewritten to name them (and its digest with it). */
export function withLayers(image: BuiltImage, layers: Blob[]): BuiltImage {
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: image.mediaType,
      config: { mediaType: image.config.mediaType, digest: image.config.digest, size: image.config.data.length },
      layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.data.length })),
    }),
  );
  return { ...image, layers, manifest, manifestDigest: sha256(manifest) };
}

/** The manifest by `tag` and every blob it names answer with exactly the image's bytes. */
export async function pullsWhole(base: string, repo: string, tag: string, image: BuiltImage): Promise<boolean> {
  const m = await fetch(`${base}/v2/${repo}/manifests/${tag}`, { headers: { accept: image.mediaType } });
  if (m.status !== 200 || sha256(Buffer.from(await m.arrayBuffer())) !== image.manifestDigest) return false;
  for (const b of [image.config, ...image.layers]) {
    const res = await fetch(`${base}/v2/${repo}/blobs/${b.digest}`);
    if (res.status !== 200 || sha256(Buffer.from(await res.arrayBuffer())) !== b.digest) return false;
  }
  return true;
}
