import type { Readable } from 'node:stream';
import { RegistryError } from '../errors';
import type { Tx } from '../index/database';
import type { BlobRecord, MetadataIndex } from '../index/metadata-index';
import type { NamePattern } from '../index/name-filter';
import type { RepositoryIndex } from '../index/repository-index';
import type { V1Image, V1ImageListEntry, V1Index } from '../index/v1-index';
import type { Quotas } from '../quota/quotas';
import type { BlobStore, StoredLayerInfo } from '../storage/blob-store';
import type { Digest } from '../storage/digest';
import { isTag } from '../names';
import { assertImageId } from './names';
import type { BridgedV1Image, V2ToV1Bridge } from '../bridge/v2-to-v1';
import type { EventRecorder } from '../notifications/notifier';
import type { RequestFacts } from '../notifications/request-facts';

// The v1 protocol's rules (section 2 and 4 of v1-protocol.md), over the shared blob store and index.
// Routes translate HTTP to these calls; every guard and its order lives here.

const IN_PROGRESS = 'Image is being uploaded, retry later';
const NOT_FOUND = 'Image not found';
const ALREADY_EXISTS = 'Image already exists';

/** Tag metadata returned when a tag has none (DR's default, never a 404). */
export const DEFAULT_TAG_JSON = {
  arch: 'amd64',
  docker_go_version: null,
  docker_version: null,
  kernel: null,
  last_update: null,
  os: 'linux',
};

export interface V1Options {
  /** Byte limits, checked in the transaction that adds an image's JSON or layer to the repository. */
  quotas?: Quotas;
  /**
   * Find each layer's compression and uncompressed digest as it streams in, for the v1 -> v2 bridge (default
   * true; off with the bridge, which then analyzes older layers once on first use).
   */
  analyzeLayers?: boolean;
  /** The v2 -> v1 bridge: v2-only tags and their images, seen as v1 ones (docs/bridge.md). */
  fromV2?: V2ToV1Bridge;
  /** A layer whose analysis could not keep up with its upload: to be analyzed from storage, off the request path. */
  onUnanalyzedLayer?: (digest: Digest) => void;
  /** Webhook notifications: each change records its event in its own transaction. */
  events?: EventRecorder;
}

/** Media types of v1 events: the image JSON, and the layer as v2 blob events report blobs. */
const V1_JSON_MEDIA_TYPE = 'application/vnd.docker.container.image.v1+json';
const V1_LAYER_MEDIA_TYPE = 'application/octet-stream';

export class V1Registry {
  private readonly quotas?: Quotas;
  private readonly analyzeLayers: boolean;
  private readonly fromV2?: V2ToV1Bridge;
  private readonly onUnanalyzedLayer?: (digest: Digest) => void;
  private readonly events?: EventRecorder;
  /** Set on the views on() makes. */
  private readonly request?: () => RequestFacts;

  constructor(
    private readonly core: MetadataIndex,
    private readonly index: V1Index,
    private readonly blobs: BlobStore,
    private readonly repositories: RepositoryIndex,
    opts: V1Options = {},
  ) {
    this.quotas = opts.quotas?.enabled ? opts.quotas : undefined;
    this.analyzeLayers = opts.analyzeLayers ?? true;
    this.fromV2 = opts.fromV2;
    this.onUnanalyzedLayer = opts.onUnanalyzedLayer;
    this.events = opts.events;
  }

  /**
   * This registry with its events naming the request that made them (a view sharing everything else;
   * so methods never assign fields, which would land on the view); itself when no event is recorded.
   */
  on(request: () => RequestFacts): this {
    if (!this.events) return this;
    return Object.assign(Object.create(this) as this, { request });
  }

  // ---- images ----

  /** A complete image of `repo` (checksum verified); in-progress images are never served. */
  async completeImage(repo: string, id: string): Promise<V1Image | BridgedV1Image> {
    assertImageId(id);
    const image = (await this.index.getV1Image(repo, id)) ?? (await this.fromV2?.image(repo, id));
    if (!image) throw new RegistryError('NOT_FOUND', NOT_FOUND);
    if (!image.complete) throw new RegistryError('BAD_REQUEST', IN_PROGRESS);
    return image;
  }

  /** The image JSON exactly as it was uploaded. */
  readJson(image: V1Image | BridgedV1Image): Promise<Buffer> {
    if ('synthesizedJson' in image) return Promise.resolve(Buffer.from(image.synthesizedJson));
    return this.blobs.readBytes(image.jsonDigest);
  }

  /** Before a layer is served: a bridged image's layer is there (the empty tar may have been collected). */
  async ensureLayer(image: V1Image | BridgedV1Image): Promise<void> {
    if ('synthesizedJson' in image) await this.fromV2?.ensureLayer(image);
  }

  /** Store the image JSON byte for byte (the checksum covers its exact bytes). */
  async putImageJson(repo: string, id: string, body: Buffer): Promise<void> {
    assertImageId(id);
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      throw new RegistryError('BAD_REQUEST', 'Invalid JSON');
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new RegistryError('BAD_REQUEST', 'Invalid JSON');
    }
    const json = parsed as { id?: unknown; parent?: unknown };
    if (!('id' in json)) throw new RegistryError('BAD_REQUEST', "Missing key `id' in JSON");
    if (json.id !== id) throw new RegistryError('BAD_REQUEST', 'JSON data contains invalid id');
    let parent: string | null = null;
    if (json.parent !== undefined && json.parent !== null && json.parent !== '') {
      // Only a complete parent of the same repository: clients push root first, and a chain built
      // this way can never loop back on itself.
      if (typeof json.parent !== 'string' || json.parent === id || !(await this.index.getV1Image(repo, json.parent))?.complete) {
        throw new RegistryError('BAD_REQUEST', 'Image depends on a non existing parent');
      }
      parent = json.parent;
    }
    if ((await this.index.getV1Image(repo, id))?.complete) throw new RegistryError('CONFLICT', ALREADY_EXISTS);
    // The image row is written in the transaction that records the JSON blob, so garbage collection never
    // sees the blob unreferenced in between.
    await this.blobs.putBytes(body, undefined, async (tx, blob) => {
      await this.quotas?.checkLink(tx, repo, blob.digest, blob.size);
      if (!(await tx(this.index).putV1ImageJson(repo, id, parent, blob.digest))) throw new RegistryError('CONFLICT', ALREADY_EXISTS);
    });
  }

  /**
   * Stream a layer into the blob store while computing the payload checksum
   * sha256(json + "\n" + layer) in the same pass (with local storage, on the upload workers: off the
   * event loop). The image stays in progress until PUT checksum.
   */
  async putImageLayer(repo: string, id: string, body: Readable): Promise<void> {
    assertImageId(id);
    const image = await this.index.getV1Image(repo, id);
    if (!image) throw new RegistryError('NOT_FOUND', NOT_FOUND);
    if (image.complete) throw new RegistryError('CONFLICT', ALREADY_EXISTS);
    const json = await this.blobs.readBytes(image.jsonDigest);
    // The layer is recorded on the image in the transaction that records (or finds) its blob, as for the JSON.
    const hashPrefix = Buffer.concat([json, Buffer.from('\n')]);
    // The layer's compression and uncompressed digest (for the v2 bridge) come from the same read of its bytes.
    const onStored = async (tx: Tx, layer: BlobRecord, checksum?: Digest, info?: StoredLayerInfo) => {
      await this.quotas?.checkLink(tx, repo, layer.digest, layer.size);
      const index = tx(this.index);
      if (!(await index.setV1Layer(repo, id, image.jsonDigest, layer.digest, layer.size, checksum!, info))) {
        // Completed or re-described by another request while we streamed.
        const now = await index.getV1Image(repo, id);
        if (now?.complete) throw new RegistryError('CONFLICT', ALREADY_EXISTS);
        throw new RegistryError('BAD_REQUEST', 'Image JSON changed during the layer upload, retry');
      }
    };
    const stored = await this.blobs.ingest(body, { hashPrefix, onStored, analyzeLayer: this.analyzeLayers });
    if (this.analyzeLayers && !stored.layer) this.onUnanalyzedLayer?.(stored.digest);
  }

  /** Verify the client's payload checksum; a match makes the image visible. */
  async putImageChecksum(repo: string, id: string, payloadHeader: string | undefined): Promise<void> {
    assertImageId(id);
    if (payloadHeader === undefined) {
      throw new RegistryError(
        'PRECONDITION_FAILED',
        'X-Docker-Checksum-Payload not set.  If you are using the Docker daemon, you should upgrade to version 0.10 or later',
      );
    }
    if (payloadHeader.trim() === '') throw new RegistryError('BAD_REQUEST', "Missing Image's checksum");
    const image = await this.index.getV1Image(repo, id);
    if (!image) throw new RegistryError('NOT_FOUND', NOT_FOUND);
    if (image.complete) throw new RegistryError('CONFLICT', 'Cannot set this image checksum');
    if (!image.checksum) throw new RegistryError('BAD_REQUEST', 'Image layer not uploaded yet, upload the layer first');
    const sums = payloadHeader.split(',').map((s) => s.trim());
    await this.core.transaction(async (tx) => {
      if (!sums.includes(image.checksum!) || !(await tx(this.index).completeV1Image(repo, id, image.checksum!))) {
        throw new RegistryError('BAD_REQUEST', 'Checksum mismatch');
      }
      // The image is pushed once it is complete (visible): its JSON and its layer, one event each.
      if (this.events) {
        await this.events.record(tx, 'push', repo, await this.jsonTarget(tx, image), this.request);
        if (image.layerDigest) {
          await this.events.record(tx, 'push', repo, { mediaType: V1_LAYER_MEDIA_TYPE, digest: image.layerDigest, size: image.layerSize ?? undefined, imageId: id, path: `/v1/images/${id}/layer` }, this.request);
        }
      }
    });
  }

  private async jsonTarget(tx: Tx, image: V1Image) {
    const size = (await tx(this.core).getBlob(image.jsonDigest))?.size;
    return { mediaType: V1_JSON_MEDIA_TYPE, digest: image.jsonDigest, size, imageId: image.id, path: `/v1/images/${image.id}/json` };
  }

  /** Up to `n` repositories among `visible` holding a complete image with this id: v1 image URLs carry no repository. */
  async repositoriesOf(id: string, visible: readonly NamePattern[], n: number): Promise<string[]> {
    const native = await this.index.reposWithImage(id, visible, n);
    if (!this.fromV2 || native.length >= n) return native;
    const all = new Set([...native, ...(await this.fromV2.reposWithImage(id, visible, n))]);
    return [...all].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)).slice(0, n);
  }

  /** Up to `n` repositories among `visible` whose image list names this image (where a push without a token may go). */
  repositoriesListing(id: string, visible: readonly NamePattern[], n: number): Promise<string[]> {
    return this.index.reposListingImage(id, visible, n);
  }

  async ancestry(repo: string, id: string): Promise<string[]> {
    const image = await this.completeImage(repo, id);
    return 'synthesizedJson' in image ? this.fromV2!.ancestry(repo, id) : this.index.ancestry(repo, id);
  }

  // ---- tags and repositories ----

  /** The v1 tags, and v2-only tags with a v1 form (a v1 tag wins over a v2 one of the same name). */
  async listTags(repo: string): Promise<Record<string, string>> {
    if (!(await this.core.getRepository(repo))) throw new RegistryError('NOT_FOUND', 'Repository not found');
    const native = await this.index.listV1Tags(repo);
    if (!this.fromV2) return native;
    const bridged = await this.fromV2.tags(repo);
    return Object.fromEntries(Object.entries({ ...bridged, ...native }).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }

  async getTag(repo: string, tag: string): Promise<string> {
    const found = (await this.index.getV1Tag(repo, tag))?.imageId ?? (await this.fromV2?.tag(repo, tag));
    if (!found) throw new RegistryError('NOT_FOUND', 'Tag not found');
    return found;
  }

  async putTag(repo: string, tag: string, body: Buffer, userAgent: string | undefined): Promise<void> {
    if (!isTag(tag)) throw new RegistryError('BAD_REQUEST', 'Invalid tag name (must match ^[\\w][\\w.-]{0,127}$)');
    let id: unknown;
    try {
      id = JSON.parse(body.toString('utf8'));
    } catch {
      throw new RegistryError('BAD_REQUEST', 'Invalid data');
    }
    if (typeof id !== 'string') throw new RegistryError('BAD_REQUEST', 'Invalid data');
    assertImageId(id);
    await this.core.transaction(async (tx) => {
      // Only a complete image of this repository: a tag never points into another tenant's images. Checked in
      // the transaction that tags it, so a repository deleted meanwhile is not brought back with a dangling tag.
      const image = await tx(this.index).getV1Image(repo, id);
      if (!image?.complete) throw new RegistryError('NOT_FOUND', NOT_FOUND);
      await tx(this.index).setV1Tag(repo, tag, id, JSON.stringify(tagJson(userAgent)));
      if (this.events) await this.events.record(tx, 'push', repo, { ...(await this.jsonTarget(tx, image)), tag, path: `/v1/repositories/${repo}/tags/${tag}` }, this.request);
    });
  }

  deleteTag(repo: string, tag: string): Promise<void> {
    return this.core.transaction(async (tx) => {
      const index = tx(this.index);
      const imageId = this.events && (await index.getV1Tag(repo, tag))?.imageId;
      if (!(await index.deleteV1Tag(repo, tag))) throw new RegistryError('NOT_FOUND', `Tag not found: ${tag}`);
      await this.events?.record(tx, 'delete', repo, { tag, imageId: imageId || undefined }, this.request);
    });
  }

  async tagJson(repo: string, tag: string): Promise<object> {
    const found = await this.index.getV1Tag(repo, tag);
    return found ? JSON.parse(found.meta) : DEFAULT_TAG_JSON;
  }

  /** The whole repository goes, v2 content included: it is one repository, whichever protocol deletes it. */
  async deleteRepository(repo: string): Promise<void> {
    if (!(await this.repositories.deleteRepository(repo, async (tx) => this.events?.record(tx, 'delete', repo, {}, this.request)))) throw new RegistryError('NOT_FOUND', 'Repository not found');
  }

  async getProperties(repo: string): Promise<{ access: 'private' | 'public' }> {
    const r = await this.core.getRepository(repo);
    if (!r) throw new RegistryError('NOT_FOUND', 'Repository not found');
    return { access: r.v1Private ? 'private' : 'public' };
  }

  async setProperties(repo: string, body: Buffer): Promise<void> {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      throw new RegistryError('BAD_REQUEST', 'Invalid data');
    }
    const access = (parsed as { access?: unknown } | null)?.access;
    if (access !== 'private' && access !== 'public') {
      throw new RegistryError('BAD_REQUEST', 'Invalid data: "access" must be "private" or "public"');
    }
    await this.core.transaction(async (tx) => {
      const core = tx(this.core);
      await core.ensureRepository(repo);
      await core.setV1Private(repo, access === 'private');
    });
  }

  // ---- index (image lists) ----

  /** PUT /v1/repositories/<repo>/ and .../images: merge the client's image list. */
  async putImageList(repo: string, body: Buffer): Promise<void> {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8') || '[]');
    } catch {
      throw new RegistryError('BAD_REQUEST', 'Error Decoding JSON');
    }
    if (!Array.isArray(parsed)) throw new RegistryError('BAD_REQUEST', 'Invalid data');
    const entries: V1ImageListEntry[] = [];
    for (const item of parsed) {
      const id = (item as { id?: unknown } | null)?.id;
      if (typeof id !== 'string') throw new RegistryError('BAD_REQUEST', 'Invalid data: every entry needs an "id"');
      assertImageId(id);
      const checksum = (item as { checksum?: unknown }).checksum;
      entries.push(typeof checksum === 'string' && checksum ? { id, checksum } : { id });
    }
    await this.index.mergeV1RepoImages(repo, entries);
  }

  /** The index's image list, with the bridged images of v2-only tags after it. */
  async getImageList(repo: string): Promise<V1ImageListEntry[]> {
    const list = await this.index.getV1RepoImages(repo);
    const bridged = this.fromV2 && (await this.core.getRepository(repo)) ? await this.fromV2.imageList(repo) : [];
    if (!list && bridged.length === 0) throw new RegistryError('NOT_FOUND', 'images not found');
    const known = new Set((list ?? []).map((e) => e.id));
    return [...(list ?? []), ...bridged.filter((e) => !known.has(e.id))];
  }
}

/** Tag metadata from the pushing client's User-Agent ("docker/1.5.0 go/go1.4.1 kernel/... os/linux arch/amd64"). */
export function tagJson(userAgent: string | undefined): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  const fields: Record<string, string> = { docker: 'docker_version', go: 'docker_go_version', kernel: 'kernel', os: 'os', arch: 'arch' };
  for (const part of (userAgent ?? '').split(/\s+/)) {
    const slash = part.indexOf('/');
    if (slash <= 0) continue;
    const name = part.slice(0, slash).toLowerCase();
    const key = Object.hasOwn(fields, name) ? fields[name] : undefined; // not constructor/x or __proto__/x
    if (!key) continue;
    const value = part.slice(slash + 1);
    out[key] = key === 'kernel' ? value.toLowerCase() : value;
  }
  out.last_update = Math.floor(Date.now() / 1000);
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a.localeCompare(b)));
}
