import { createCipheriv, createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { tarOf } from './v1';

// An OCI image layout (image-spec "image-layout.md") written in-process, with no container engine:
//   DIR/oci-layout                 {"imageLayoutVersion":"1.0.0"}
//   DIR/index.json                 an index naming the manifest, tagged via org.opencontainers.image.ref.name
//   DIR/blobs/sha256/<hex>         gzip tar layers, the config and the manifest, each named by its digest
// skopeo reads it as `oci:DIR:TAG`. Same options (and seed) give the same bytes, so digests are reproducible.

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';

export interface OciLayoutOptions {
  /** org.opencontainers.image.ref.name of the manifest in index.json (the `TAG` of `oci:DIR:TAG`). */
  tag: string;
  /** Number of layers; layer i holds one regular file `layer<i>.txt`. */
  layers: number;
  /** Bytes of pseudo-random content per layer file (default 4096). */
  layerBytes?: number;
  /** Seed for the content: change it for new digests (default 1). */
  seed?: number;
  /** Config architecture and index platform (default amd64). */
  arch?: string;
}

export interface OciLayoutResult {
  /** Digest of the image manifest (what index.json points at). */
  manifestDigest: string;
  /** The manifest bytes exactly as written. */
  manifest: Buffer;
  configDigest: string;
  /** Layer (compressed blob) digests, in manifest order. */
  layerDigests: string[];
  /** Uncompressed tar digests, in config rootfs order. */
  diffIds: string[];
  /** Contents of each layer's single file, in layer order. */
  files: { name: string; data: Buffer }[];
  /** Every blob under blobs/sha256: layers, config, manifest (sorted). */
  blobs: string[];
}

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Deterministic, incompressible bytes from (seed, label): AES-256-CTR keystream keyed by their hash. */
function pseudoRandom(seed: number, label: string, length: number): Buffer {
  const key = createHash('sha256').update(`${seed}/${label}`).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  return Buffer.concat([cipher.update(Buffer.alloc(length)), cipher.final()]);
}

/** Write an OCI image layout into `dir` (created if missing; must not already hold a layout). */
export function makeOciLayout(dir: string, opts: OciLayoutOptions): OciLayoutResult {
  const seed = opts.seed ?? 1;
  const arch = opts.arch ?? 'amd64';
  const blobDir = path.join(dir, 'blobs', 'sha256');
  mkdirSync(blobDir, { recursive: true });
  const put = (data: Buffer): string => {
    const digest = sha256(data);
    writeFileSync(path.join(blobDir, digest.slice('sha256:'.length)), data);
    return digest;
  };

  const files: { name: string; data: Buffer }[] = [];
  const layers: { mediaType: string; digest: string; size: number }[] = [];
  const diffIds: string[] = [];
  for (let i = 0; i < opts.layers; i++) {
    const file = { name: `layer${i}.txt`, data: pseudoRandom(seed, `layer${i}`, opts.layerBytes ?? 4096) };
    const tar = tarOf([file]);
    // gzip from node:zlib is deterministic (mtime 0 in the header) for the same input.
    const gz = gzipSync(tar);
    files.push(file);
    diffIds.push(sha256(tar));
    layers.push({ mediaType: OCI_LAYER_GZIP, digest: put(gz), size: gz.length });
  }

  const config = Buffer.from(
    JSON.stringify({
      created: '2024-01-01T00:00:00Z',
      architecture: arch,
      os: 'linux',
      config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['/layer0.txt'] },
      rootfs: { type: 'layers', diff_ids: diffIds },
      history: diffIds.map(() => ({ created: '2024-01-01T00:00:00Z', created_by: 'makeOciLayout' })),
    }),
  );
  const configDigest = put(config);

  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: configDigest, size: config.length },
      layers,
    }),
  );
  const manifestDigest = put(manifest);

  const index = {
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: [
      {
        mediaType: OCI_MANIFEST,
        digest: manifestDigest,
        size: manifest.length,
        annotations: { 'org.opencontainers.image.ref.name': opts.tag },
        platform: { architecture: arch, os: 'linux' },
      },
    ],
  };
  writeFileSync(path.join(dir, 'index.json'), JSON.stringify(index));
  writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));

  return {
    manifestDigest,
    manifest,
    configDigest,
    layerDigests: layers.map((l) => l.digest),
    diffIds,
    files,
    blobs: [...layers.map((l) => l.digest), configDigest, manifestDigest].sort(),
  };
}

/** Digests of every blob in a layout's blobs/sha256 (sorted). */
export function layoutBlobs(dir: string): string[] {
  return readdirSync(path.join(dir, 'blobs', 'sha256'))
    .map((hex) => `sha256:${hex}`)
    .sort();
}

/** A blob of a layout, by digest. */
export function readLayoutBlob(dir: string, digest: string): Buffer {
  return readFileSync(path.join(dir, 'blobs', 'sha256', digest.replace(/^sha256:/, '')));
}

/** The manifest descriptors of a layout's index.json. */
export function layoutIndex(dir: string): { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }[] {
  return (JSON.parse(readFileSync(path.join(dir, 'index.json'), 'utf8')) as { manifests: never[] }).manifests;
}

/** Regular files of an uncompressed or gzip tar, by name (enough for the layers clients write: ustar/pax/gnu). */
export function untar(data: Buffer): Map<string, Buffer> {
  const tar = data[0] === 0x1f && data[1] === 0x8b ? gunzipSync(data) : data;
  const out = new Map<string, Buffer>();
  let longName: string | undefined;
  let paxPath: string | undefined;
  for (let off = 0; off + 512 <= tar.length; ) {
    const h = tar.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const field = (start: number, len: number) => h.subarray(start, start + len).toString('utf8').replace(/\0.*$/s, '');
    const size = parseInt(field(124, 12).trim() || '0', 8);
    const type = String.fromCharCode(h[156] || 0x30);
    const body = tar.subarray(off + 512, off + 512 + size);
    off += 512 + Math.ceil(size / 512) * 512;
    if (type === 'L') {
      longName = body.toString('utf8').replace(/\0.*$/s, '');
      continue;
    }
    if (type === 'x') {
      const m = /\d+ path=([^\n]*)\n/.exec(body.toString('utf8'));
      paxPath = m?.[1];
      continue;
    }
    const prefix = field(345, 155);
    let name = longName ?? paxPath ?? (prefix ? `${prefix}/${field(0, 100)}` : field(0, 100));
    longName = paxPath = undefined;
    name = name.replace(/^\.?\//, '');
    if (type === '0' || type === '\0' || type === '7') out.set(name, Buffer.from(body));
  }
  return out;
}
