import { RegistryError } from '../errors';
import type { V1Image, V1Index } from '../index/v1-index';
import type { ManifestRecord, V2Index } from '../index/v2-index';
import { storedLayerInfo, type BlobStore } from '../storage/blob-store';
import { digestBytes, type Digest } from '../storage/digest';
import { analyzeStream } from '../storage/layer-analyzer';
import { MEDIA } from '../v2/manifest';
import type { V2Registry } from '../v2/registry';

// The v1 -> v2 bridge (docs/bridge.md): a v1 tag is also a v2 tag, whose Docker schema 2 manifest is made
// from the v1 image chain by Docker 1.10's migration formula (config = the top image's v1 JSON without
// id/parent/Size/parent_id/layer_id/throwaway, plus rootfs.diff_ids and history), over the v1 layer blobs as
// they are stored. Config and manifest are stored like a pushed image's (the manifest through
// V2Registry.putManifest), so every v2 path treats them alike; the tag is marked with the v1 image it was
// made from, so that it follows its v1 tag and a v2 push of the same name wins.

export const CONFIG_MEDIA_TYPE = 'application/vnd.docker.container.image.v1+json';
export const LAYER_GZIP = 'application/vnd.docker.image.rootfs.diff.tar.gzip';
export const LAYER_TAR = 'application/vnd.docker.image.rootfs.diff.tar';

/** Keys of a v1 JSON that are no part of the config (moby image/v1/imagev1.go MakeConfigFromV1Config). */
const DROPPED = new Set(['id', 'parent', 'Size', 'parent_id', 'layer_id', 'throwaway']);

const COMPRESSIONS: Record<string, string> = { xz: 'xz-compressed', bzip2: 'bzip2-compressed', zstd: 'zstd-compressed' };

export interface Synthesized {
  config: Buffer;
  manifest: Buffer;
  /** Blobs the manifest names: the config and the non-empty layers. */
  blobs: { digest: Digest; size: number }[];
}

type Logger = { warn(obj: object, msg: string): void };

/**
 * Go's json.Marshal of what the migration builds: top-level keys sorted (a map), values compact, and
 * <, >, &, U+2028, U+2029 escaped as Go does. The same chain gives the same bytes everywhere.
 */
export function goJson(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

function sortedObject(obj: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.keys(obj).sort().map((k) => [k, obj[k]]));
}

const unbridgeable = (message: string, reference: string) => new RegistryError('MANIFEST_UNKNOWN', message, { detail: { reference } });

export class V1ToV2Bridge {
  /** Tags being bridged right now: concurrent requests for one wait for the same work. */
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly analyzing = new Map<Digest, Promise<{ format: NonNullable<V1Image['layerFormat']>; diffId: Digest | null }>>();
  private backlog: Promise<void> = Promise.resolve();
  private readonly background = new Set<Promise<void>>();

  constructor(
    private readonly v1: V1Index,
    private readonly v2Index: V2Index,
    private readonly v2: V2Registry,
    private readonly blobs: BlobStore,
    private readonly log?: Logger,
  ) {}

  /** What the layer of `image` is, analyzing the stored bytes once if it was stored before the bridge. */
  async layerInfo(image: V1Image): Promise<{ format: NonNullable<V1Image['layerFormat']>; diffId: Digest | null }> {
    if (image.layerFormat) return { format: image.layerFormat, diffId: image.diffId };
    if (!image.layerDigest) throw new Error(`v1 image ${image.id} has no layer`);
    return this.analyzeLayer(image.layerDigest);
  }

  /** Analyze a stored layer blob (once at a time per blob) and record the verdict on every image that holds it. */
  analyzeLayer(layerDigest: Digest): Promise<{ format: NonNullable<V1Image['layerFormat']>; diffId: Digest | null }> {
    let work = this.analyzing.get(layerDigest);
    if (!work) {
      work = (async () => {
        const info = storedLayerInfo(await analyzeStream(await this.blobs.open(layerDigest)), layerDigest);
        await this.v1.setLayerInfo(layerDigest, info.format, info.diffId);
        return info;
      })().finally(() => this.analyzing.delete(layerDigest));
      this.analyzing.set(layerDigest, work);
    }
    return work;
  }

  /**
   * A layer whose analysis could not keep up with its upload: analyzed from storage in the background, one at a
   * time (a bridge use before then waits for the same analysis).
   */
  analyzeSoon(layerDigest: Digest): void {
    this.backlog = this.backlog
      .then(() => this.analyzeLayer(layerDigest))
      .then(
        () => undefined,
        (err) => this.log?.warn({ err, layerDigest }, 'analyzing a v1 layer for the bridge failed; it is analyzed again on first use'),
      );
  }

  /** Config and manifest for the chain ending at `topId`; MANIFEST_UNKNOWN naming why if it has no v2 form. */
  async synthesize(repo: string, topId: string, reference: string): Promise<Synthesized> {
    const ids = (await this.v1.ancestry(repo, topId)).reverse(); // root first
    if (ids.length === 0) throw unbridgeable(`v1 image ${topId} is not in ${repo}`, reference);
    const diffIds: Digest[] = [];
    const history: Record<string, unknown>[] = [];
    const layers: { mediaType: string; size: number; digest: Digest }[] = [];
    let topJson: Record<string, unknown> = {};
    for (const [i, id] of ids.entries()) {
      const image = await this.v1.getV1Image(repo, id);
      if (!image?.complete || !image.layerDigest || image.layerSize === null) {
        throw unbridgeable(`v1 image ${id} of the chain is not complete`, reference);
      }
      if (i === 0 && image.parent) throw unbridgeable(`the parent ${image.parent} of v1 image ${id} is missing`, reference);
      const json = parseJson(await this.blobs.readBytes(image.jsonDigest), id, reference);
      const { format, diffId } = await this.layerInfo(image);
      if (format === 'invalid') {
        throw unbridgeable(`the layer of v1 image ${id} is not a tar archive (nor a gzip of one): this image has no v2 form`, reference);
      }
      if (COMPRESSIONS[format]) {
        throw unbridgeable(
          `the layer of v1 image ${id} is ${COMPRESSIONS[format]}, which no Docker v2 layer media type carries: pull it with a v1 client`,
          reference,
        );
      }
      const empty = format === 'empty';
      if (!empty) {
        diffIds.push(diffId!);
        layers.push({ mediaType: format === 'gzip' ? LAYER_GZIP : LAYER_TAR, size: image.layerSize, digest: image.layerDigest });
      }
      history.push(historyEntry(json, empty));
      topJson = json;
    }

    const config: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(topJson)) if (!DROPPED.has(k)) config[k] = v;
    // v1 images predate platforms: Docker 1.x only ever ran linux/amd64 (the v1 tag JSON's default too).
    config.architecture ??= 'amd64';
    config.os ??= 'linux';
    config.rootfs = { type: 'layers', diff_ids: diffIds };
    config.history = history;
    const configBytes = Buffer.from(goJson(sortedObject(config)));
    const configDigest = digestBytes(configBytes);
    const manifest = {
      schemaVersion: 2,
      mediaType: MEDIA.dockerManifest,
      config: { mediaType: CONFIG_MEDIA_TYPE, size: configBytes.length, digest: configDigest },
      layers,
    };
    return {
      config: configBytes,
      manifest: Buffer.from(JSON.stringify(manifest, null, 3)),
      blobs: [{ digest: configDigest, size: configBytes.length }, ...layers.map((l) => ({ digest: l.digest, size: l.size }))],
    };
  }

  /**
   * Make the v2 tag `tag` follow the v1 tag of that name, unless a v2 push owns it: stored if the v1 tag has
   * a v2 form, a stale bridged tag removed if it has none (then the error says why) or the v1 tag is gone.
   */
  sync(repo: string, tag: string): Promise<void> {
    const key = `${repo}:${tag}`;
    const running = this.inFlight.get(key);
    if (running) return running;
    const work = this.syncNow(repo, tag).finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, work);
    return work;
  }

  private async syncNow(repo: string, tag: string): Promise<void> {
    const v1Tag = await this.v1.getV1Tag(repo, tag);
    const v2Tag = await this.v2Index.tag(repo, tag);
    if (v2Tag && v2Tag.bridgedFromV1 === null) return; // pushed over v2: that one wins for v2 clients
    if (!v1Tag) {
      if (v2Tag) await this.v2Index.deleteBridgedTag(repo, tag);
      return;
    }
    if (v2Tag?.bridgedFromV1 === v1Tag.imageId) return; // already made from this image
    let made: Synthesized;
    try {
      made = await this.synthesize(repo, v1Tag.imageId, tag);
    } catch (err) {
      if (v2Tag) await this.v2Index.deleteBridgedTag(repo, tag); // never the old image under a tag that moved
      throw err;
    }
    // The config blob and the layers' links to the repository, in the transaction that records the config.
    await this.blobs.putBytes(made.config, made.blobs[0]!.digest, async (tx) => {
      for (const b of made.blobs) await tx(this.v2Index).linkBlob(repo, b.digest);
    });
    await this.v2.putManifest(repo, tag, made.manifest, MEDIA.dockerManifest, v1Tag.imageId);
  }

  /**
   * After a v1 tag was set or deleted: the v2 view follows, in the background (a layer still being analyzed
   * must not hold the v1 client's tag PUT); a failure is logged, never the v1 request's. A v2 pull of the tag
   * meanwhile joins the same work.
   */
  afterV1TagChange(repo: string, tag: string): void {
    const work = this.sync(repo, tag).catch((err) => {
      if (!(err instanceof RegistryError)) this.log?.warn({ err, repo, tag }, 'bridging a v1 tag to v2 failed');
    });
    this.background.add(work);
    void work.finally(() => this.background.delete(work));
  }

  /** Wait for background work (tag bridging, layer analyses): before the index closes. */
  async settle(): Promise<void> {
    while (this.background.size > 0) await Promise.all([...this.background]);
    await this.backlog;
  }

  /**
   * Before a v2 manifest GET/HEAD by tag: a v1-only tag gets its v2 form, a bridged tag whose v1 tag moved
   * (or went) follows it. A pushed v2 tag costs one lookup, which also finds its manifest: returned when the
   * bridge had nothing to do (undefined: resolve the tag as usual).
   */
  async beforeTagPull(repo: string, tag: string): Promise<ManifestRecord | undefined> {
    const { digest, bridgedFromV1, v1ImageId, manifest } = await this.v2Index.tagForPull(repo, tag);
    if (digest !== null && bridgedFromV1 === null) return manifest; // pushed over v2
    if (digest !== null && v1ImageId === bridgedFromV1) return manifest; // bridged, and its v1 tag has not moved
    if (digest === null && v1ImageId === null) return undefined; // neither: 404 as usual
    await this.sync(repo, tag);
    return undefined;
  }
}

function parseJson(bytes: Buffer, id: string, reference: string): Record<string, unknown> {
  try {
    const v = JSON.parse(bytes.toString('utf8'));
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {}
  throw unbridgeable(`the JSON of v1 image ${id} is not a JSON object`, reference);
}

/** moby image/v1 HistoryFromConfig: created, author, created_by (Cmd joined by spaces), comment, empty_layer. */
function historyEntry(json: Record<string, unknown>, empty: boolean): Record<string, unknown> {
  const str = (v: unknown) => (typeof v === 'string' ? v : '');
  const cmd = (json.container_config as { Cmd?: unknown } | null | undefined)?.Cmd;
  const h: Record<string, unknown> = { created: str(json.created) || '0001-01-01T00:00:00Z' };
  if (str(json.author)) h.author = json.author;
  const createdBy = Array.isArray(cmd) ? cmd.map((c) => String(c)).join(' ') : '';
  if (createdBy) h.created_by = createdBy;
  if (str(json.comment)) h.comment = json.comment;
  if (empty) h.empty_layer = true;
  return h;
}
