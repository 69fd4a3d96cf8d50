import { createHash } from 'node:crypto';
import type { BridgeIndex, BridgedImageRecord } from '../index/bridge-index';
import type { NamePattern } from '../index/name-filter';
import type { V1Image } from '../index/v1-index';
import type { V2Index } from '../index/v2-index';
import type { BlobStore } from '../storage/blob-store';
import type { Digest } from '../storage/digest';
import { MEDIA } from '../v2/manifest';
import { goJson } from './v1-to-v2';

// The v2 -> v1 bridge (docs/bridge.md): a single-platform Docker schema 2 or OCI image (for an index, its
// entry for the configured platform) is also a v1 image chain for Docker 1.x clients, with v1 ids derived as
// distribution v2.x derived them for its schema 1 conversion (manifest/schema1/config_builder.go): one v1
// image per config history entry, root first; a lower id is sha256("<blobsum hex> <parent id>"), the top one
// also appends " <config bytes>"; empty_layer entries point at the 32-byte gzipped empty tar. Lower images
// carry id, parent, comment, created, container_config.Cmd = [created_by], author, throwaway; the top one is
// the config without rootfs and history, plus id, parent, throwaway. Only gzip and plain tar layers (what
// Docker 1.x unpacks); anything else (zstd, foreign / non-distributable layers, Windows) has no v1 form and is
// simply absent from v1.
//
// What is made is kept in v1_bridged and v1_bridged_images (migration 7, src/index/bridge-index.ts),
// recomputable from the manifests alone: ids resolve without recomputation, and the same manifest always
// gives the same ids.

/** distribution's gzippedEmptyTar: a gzip of 1024 zero bytes. */
export const EMPTY_TAR = Buffer.from([
  31, 139, 8, 0, 0, 9, 110, 136, 0, 255, 98, 24, 5, 163, 96, 20, 140, 88, 0, 8, 0, 0, 255, 255, 46, 175, 181, 239, 0, 4, 0, 0,
]);
export const EMPTY_TAR_DIGEST = 'sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4' as Digest;

const V1_LAYER_TYPES = new Set([
  'application/vnd.docker.image.rootfs.diff.tar.gzip',
  'application/vnd.docker.image.rootfs.diff.tar',
  'application/vnd.oci.image.layer.v1.tar+gzip',
  'application/vnd.oci.image.layer.v1.tar',
]);

const sha256Hex = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');

/** A bridged v1 image as the v1 registry serves it: its JSON is made, not stored as a blob. */
export type BridgedV1Image = V1Image & { synthesizedJson: string };

class NoV1Form extends Error {}

export class V2ToV1Bridge {
  private readonly inFlight = new Map<string, Promise<string | null>>();
  private readonly os: string;
  private readonly arch: string;
  private readonly variant: string | undefined;

  constructor(
    private readonly index: BridgeIndex,
    private readonly v2: V2Index,
    private readonly blobs: BlobStore,
    /** os/architecture[/variant] whose entry of an index v1 clients get. */
    platform = 'linux/amd64',
  ) {
    [this.os, this.arch, this.variant] = platform.split('/') as [string, string, string | undefined];
  }

  // ---- what v1 routes ask ----

  /** v2-only tags of the repository that have a v1 form, with their top v1 id. */
  async tags(repo: string): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const r of await this.index.v2OnlyTags(repo)) {
      const id = await this.topId(repo, r.digest);
      if (id) out[r.tag] = id;
    }
    return out;
  }

  /** The top v1 id of a v2-only tag, if it has a v1 form. */
  async tag(repo: string, tag: string): Promise<string | undefined> {
    const digest = await this.index.v2OnlyTag(repo, tag);
    return (digest && (await this.topId(repo, digest))) || undefined;
  }

  /** Every bridged v1 image of the repository's v2-only tags, tops first (the v1 index's image list). */
  async imageList(repo: string): Promise<{ id: string }[]> {
    const seen = new Set<string>();
    for (const id of Object.values(await this.tags(repo))) for (const a of await this.ancestry(repo, id)) seen.add(a);
    return [...seen].map((id) => ({ id }));
  }

  async image(repo: string, id: string): Promise<BridgedV1Image | undefined> {
    const r = await this.index.image(repo, id);
    if (!r) return undefined;
    return {
      repo: r.repo,
      id: r.id,
      parent: r.parent,
      jsonDigest: '' as Digest,
      layerDigest: r.layerDigest,
      layerSize: r.layerSize,
      checksum: null,
      complete: true,
      layerFormat: null,
      diffId: null,
      synthesizedJson: r.json,
    };
  }

  /** [id, parent, ..., root]; empty if the id is no bridged image of the repository. */
  async ancestry(repo: string, id: string): Promise<string[]> {
    const chain: string[] = [];
    for (let img = await this.image(repo, id); img && !chain.includes(img.id) && chain.length < 1000; img = img.parent ? await this.image(repo, img.parent) : undefined) {
      chain.push(img.id);
    }
    return chain;
  }

  /** Up to `n` repositories among `visible` with a bridged image of this id, by name. */
  reposWithImage(id: string, visible: readonly NamePattern[], n: number): Promise<string[]> {
    return this.index.reposWithImage(id, visible, n);
  }

  /**
   * Before a bridged image's layer is served: the gzipped empty tar is linked to no manifest, so garbage
   * collection may have taken it since; it is stored (and linked) again.
   */
  async ensureLayer(image: BridgedV1Image): Promise<void> {
    if (image.layerDigest !== EMPTY_TAR_DIGEST || ((await this.blobs.stat(EMPTY_TAR_DIGEST)) && (await this.v2.isBlobLinked(image.repo, EMPTY_TAR_DIGEST)))) return;
    await this.blobs.putBytes(EMPTY_TAR, EMPTY_TAR_DIGEST, (tx) => tx(this.v2).linkBlob(image.repo, EMPTY_TAR_DIGEST));
  }

  // ---- conversion ----

  /** The top v1 id of a tagged manifest: computed once, then read. Null: no v1 form. */
  private async topId(repo: string, digest: Digest): Promise<string | null> {
    const known = await this.index.bridged(repo, digest);
    if (known) return known.topId;
    const key = `${repo}@${digest}`;
    let work = this.inFlight.get(key);
    if (!work) {
      work = this.convert(repo, digest).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, work);
    }
    return work;
  }

  private async convert(repo: string, tagged: Digest): Promise<string | null> {
    let images: BridgedImageRecord[];
    try {
      images = await this.chain(repo, tagged);
    } catch (err) {
      if (!(err instanceof NoV1Form)) throw err;
      await this.index.recordNoV1Form(repo, tagged, err.message);
      return null;
    }
    if (images.some((i) => i.layerDigest === EMPTY_TAR_DIGEST)) {
      // distribution's empty layer, stored on demand and linked here, in the transaction that records the images.
      await this.blobs.putBytes(EMPTY_TAR, EMPTY_TAR_DIGEST, async (tx) => {
        await tx(this.v2).linkBlob(repo, EMPTY_TAR_DIGEST);
        await tx(this.index).recordImages(repo, tagged, images);
      });
    } else await this.index.recordImages(repo, tagged, images);
    return images[images.length - 1]!.id;
  }

  /** The v1 images of a manifest, root first; NoV1Form if it has none. */
  private async chain(repo: string, tagged: Digest): Promise<BridgedImageRecord[]> {
    let record = await this.v2.getManifest(repo, tagged);
    if (!record) throw new NoV1Form('manifest not found');
    let doc = await this.readJson(record.digest);
    if (record.mediaType === MEDIA.ociIndex || record.mediaType === MEDIA.dockerList) {
      const entries = Array.isArray(doc.manifests) ? (doc.manifests as Record<string, unknown>[]) : [];
      const entry = entries.find((m) => {
        const p = m.platform as { os?: string; architecture?: string; variant?: string } | undefined;
        return p?.os === this.os && p.architecture === this.arch && (this.variant === undefined || p.variant === this.variant);
      });
      if (!entry || typeof entry.digest !== 'string') throw new NoV1Form(`no ${[this.os, this.arch, this.variant].filter(Boolean).join('/')} entry in the index`);
      record = await this.v2.getManifest(repo, entry.digest as Digest);
      if (!record) throw new NoV1Form('the platform manifest is not in the repository');
      doc = await this.readJson(record.digest);
    }
    if (record.mediaType !== MEDIA.dockerManifest && record.mediaType !== MEDIA.ociManifest) throw new NoV1Form(`${record.mediaType} has no v1 form`);
    const configDigest = (doc.config as { digest?: unknown } | undefined)?.digest;
    if (typeof configDigest !== 'string' || !(await this.blobs.stat(configDigest as Digest))) throw new NoV1Form('no config');
    const layers = Array.isArray(doc.layers) ? (doc.layers as { mediaType?: string; digest?: string; size?: number; urls?: unknown }[]) : [];
    for (const l of layers) {
      if (typeof l.mediaType !== 'string' || !V1_LAYER_TYPES.has(l.mediaType) || l.urls !== undefined) {
        throw new NoV1Form(`layer type ${l.mediaType} is not one Docker 1.x unpacks (gzip or plain tar)`);
      }
    }
    const configBytes = await this.blobs.readBytes(configDigest as Digest);
    let config: Record<string, unknown>;
    try {
      config = JSON.parse(configBytes.toString('utf8'));
    } catch {
      throw new NoV1Form('the config is not JSON');
    }
    if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new NoV1Form('the config is not a JSON object');
    if (config.os !== undefined && config.os !== 'linux') throw new NoV1Form(`os ${String(config.os)}: Docker 1.x runs linux images`);

    // History as pushed when it accounts for every layer; otherwise one entry per layer (distribution refused those).
    type History = { created?: string; created_by?: string; author?: string; comment?: string; empty_layer?: boolean };
    let history = Array.isArray(config.history) ? (config.history as History[]) : [];
    if (history.filter((h) => !h.empty_layer).length !== layers.length) {
      history = layers.map(() => ({ created: typeof config.created === 'string' ? config.created : undefined }));
    }
    if (history.length === 0) throw new NoV1Form('an image with no layers and no history');

    const out: BridgedImageRecord[] = [];
    let parent = '';
    let layer = 0;
    for (const [i, h] of history.entries()) {
      const top = i === history.length - 1;
      const l = h.empty_layer ? undefined : layers[layer++]!;
      const blobsum = l ? (l.digest as Digest) : EMPTY_TAR_DIGEST;
      const size = l ? (l.size ?? 0) : EMPTY_TAR.length;
      const hex = blobsum.slice('sha256:'.length);
      const id = top ? sha256Hex(Buffer.concat([Buffer.from(`${hex} ${parent} `), configBytes])) : sha256Hex(`${hex} ${parent}`);
      let json: string;
      if (top) {
        const c: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(config)) if (k !== 'history' && k !== 'rootfs') c[k] = v;
        c.id = id;
        if (parent) c.parent = parent;
        if (h.empty_layer) c.throwaway = true;
        c.Size = size;
        json = goJson(Object.fromEntries(Object.keys(c).sort().map((k) => [k, c[k]])));
      } else {
        json = goJson({
          id,
          ...(parent ? { parent } : {}),
          ...(h.comment ? { comment: h.comment } : {}),
          created: h.created ?? '0001-01-01T00:00:00Z',
          container_config: { Cmd: [h.created_by ?? ''] },
          ...(h.author ? { author: h.author } : {}),
          ...(h.empty_layer ? { throwaway: true } : {}),
          Size: size,
        });
      }
      out.push({ repo, id, parent: parent || null, manifest: record.digest, json, layerDigest: blobsum, layerSize: size });
      parent = id;
    }
    return out;
  }

  private async readJson(digest: Digest): Promise<Record<string, unknown>> {
    const v = JSON.parse((await this.blobs.readBytes(digest)).toString('utf8'));
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new NoV1Form('not a JSON object');
    return v as Record<string, unknown>;
  }
}
