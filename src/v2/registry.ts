import type { Readable } from 'node:stream';
import { RegistryError } from '../errors';
import type { Tx } from '../index/database';
import type { BlobRecord, MetadataIndex, UploadRecord } from '../index/metadata-index';
import type { NamePattern } from '../index/name-filter';
import type { DeletedRepository, RepositoryIndex } from '../index/repository-index';
import type { ManifestRecord, V2Index } from '../index/v2-index';
import { isTag } from '../names';
import type { Quotas } from '../quota/quotas';
import type { PullRecorder } from '../retention/pull-recorder';
import type { BlobStore } from '../storage/blob-store';
import { digestBytes, parseDigest, type Digest } from '../storage/digest';
import { MEDIA, parseManifest } from './manifest';
import type { EventRecorder } from '../notifications/notifier';
import type { RequestFacts } from '../notifications/request-facts';

// The OCI Distribution rules over the shared blob store and index. Routes only translate HTTP.

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

export interface V2Options {
  /** How long garbage collection keeps a link no manifest uses (gc.delay); a use renews it. */
  gcDelayMs?: number;
  /** Byte limits checked before an upload's bytes are read (when it says its size) and when a blob is linked. */
  quotas?: Quotas;
  /** Remembers manifest pulls, for retention's keepPulledWithin. */
  pulls?: PullRecorder;
  /** Webhook notifications: each change records its event in its own transaction. */
  events?: EventRecorder;
}

/** What a blob event says its target is (distribution reports blobs so: the manifest says what they hold). */
const BLOB_MEDIA_TYPE = 'application/octet-stream';

export class V2Registry {
  private readonly gcDelayMs: number;
  private readonly quotas?: Quotas;
  private readonly pulls?: PullRecorder;
  private readonly events?: EventRecorder;
  /** Set on the views on() makes. */
  private readonly request?: () => RequestFacts;

  constructor(
    private readonly core: MetadataIndex,
    private readonly index: V2Index,
    private readonly blobs: BlobStore,
    private readonly repositories: RepositoryIndex,
    opts: V2Options = {},
  ) {
    this.gcDelayMs = opts.gcDelayMs ?? 3600_000;
    this.quotas = opts.quotas?.enabled ? opts.quotas : undefined;
    this.pulls = opts.pulls;
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

  // ---- blobs ----

  /** A blob this repository may serve; BLOB_UNKNOWN otherwise (even if another repository has it). */
  async blob(repo: string, digest: Digest): Promise<BlobRecord> {
    const linkedAt = await this.index.linkedAt(repo, digest);
    const blob = linkedAt === undefined ? undefined : await this.blobs.stat(digest);
    if (!blob) throw new RegistryError('BLOB_UNKNOWN', undefined, { detail: { digest } });
    // A client that finds the blob here skips its upload and names it in a manifest soon: keep the link
    // fresh so that garbage collection does not take it in between; one write per link and half delay,
    // not one per request (a read is enough to tell).
    const staleBefore = Date.now() - this.gcDelayMs / 2;
    if (linkedAt! < staleBefore) await this.index.touchLink(repo, digest, staleBefore);
    return blob;
  }

  /** Remove a blob from a repository; its bytes stay while anything else uses them. */
  deleteBlob(repo: string, digest: Digest): Promise<void> {
    return this.core.transaction(async (tx) => {
      if (!(await tx(this.index).unlinkBlob(repo, digest))) throw new RegistryError('BLOB_UNKNOWN', undefined, { detail: { digest } });
      await this.events?.record(tx, 'delete', repo, { mediaType: BLOB_MEDIA_TYPE, digest, path: `/v2/${repo}/blobs/${digest}` }, this.request);
    });
  }

  // ---- uploads ----

  /** Open an upload; `owner` (a user, or "@<address>") may keep at most `maxOpen` open at once. */
  async startUpload(repo: string, owner: string, maxOpen: number): Promise<UploadRecord> {
    await this.quotas?.check(repo, 0); // a repository already over its quota (a lowered limit) takes nothing new
    return this.blobs.startUpload(repo, owner, maxOpen);
  }

  /** Single-request upload (POST ?digest= with the body); `declared`: its Content-Length, if sent. */
  async putMonolithic(repo: string, digest: Digest, body: Readable, declared?: number): Promise<BlobRecord> {
    if (declared !== undefined) await this.quotas?.checkLink(undefined, repo, digest, declared);
    return this.blobs.ingest(body, { expected: digest, onStored: this.linker(repo) });
  }

  /** Cross-repository mount: only from a repository that has the blob. Undefined if not possible. */
  mount(repo: string, digest: Digest, from: string): Promise<BlobRecord | undefined> {
    // One transaction: the blob cannot be collected between the check and the link.
    return this.core.transaction(async (tx) => {
      const index = tx(this.index);
      if (!(await index.isBlobLinked(from, digest))) return undefined;
      const blob = await tx(this.core).getBlob(digest);
      if (!blob) return undefined;
      await this.quotas?.checkLink(tx, repo, digest, blob.size);
      await index.linkBlob(repo, digest);
      await this.events?.record(tx, 'mount', repo, { ...this.blobTarget(repo, blob), fromRepository: from }, this.request);
      return blob;
    });
  }

  async upload(repo: string, id: string): Promise<UploadRecord> {
    const upload = await this.blobs.getUpload(id);
    if (!upload || upload.repo !== repo) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', undefined, { detail: { id } });
    return upload;
  }

  /** `declared`: the chunk's Content-Length, if sent (a chunk that would pass a quota is refused unread). */
  async appendUpload(repo: string, id: string, body: Readable, start?: number, declared?: number): Promise<UploadRecord> {
    const upload = await this.upload(repo, id);
    if (declared !== undefined) await this.quotas?.check(repo, upload.size + declared);
    return this.blobs.appendUpload(id, body, { start });
  }

  async finishUpload(repo: string, id: string, digest: Digest, last?: Readable, start?: number, declared?: number): Promise<BlobRecord> {
    const upload = await this.upload(repo, id);
    if (last && start !== undefined && start !== upload.size) {
      throw new RegistryError('RANGE_INVALID', 'chunk does not start at the end of the upload', { detail: { size: upload.size } });
    }
    // The whole size is known unless a last chunk streams without a length: refuse before moving any bytes.
    if (!last || declared !== undefined) await this.quotas?.checkLink(undefined, repo, digest, upload.size + (declared ?? 0));
    return this.blobs.commitUpload(id, digest, last, { onStored: this.linker(repo) });
  }

  /**
   * Links a blob to the repository in the transaction that records it (one index fsync per push, not two).
   * The quota is checked there too: concurrent pushes cannot pass a limit together, and a refused blob is
   * never linked (its bytes are collected as unreferenced).
   */
  private linker(repo: string): (tx: Tx, blob: BlobRecord) => Promise<void> {
    return async (tx, blob) => {
      await this.quotas?.checkLink(tx, repo, blob.digest, blob.size);
      await tx(this.index).linkBlob(repo, blob.digest);
      await this.events?.record(tx, 'push', repo, this.blobTarget(repo, blob), this.request);
    };
  }

  private blobTarget(repo: string, blob: BlobRecord) {
    return { mediaType: BLOB_MEDIA_TYPE, digest: blob.digest, size: blob.size, path: `/v2/${repo}/blobs/${blob.digest}` };
  }

  async cancelUpload(repo: string, id: string): Promise<void> {
    await this.upload(repo, id);
    await this.blobs.cancelUpload(id);
  }

  // ---- manifests ----

  /**
   * A manifest GET or HEAD: resolve it (unless the caller already read it, `resolved`), and remember the pull
   * (in batches) for retention policies.
   */
  async pull(repo: string, reference: string, resolved?: ManifestRecord): Promise<ManifestRecord> {
    const manifest = resolved ?? (await this.resolve(repo, reference));
    const tag = referenceKind(reference) === 'tag' ? reference : undefined;
    this.pulls?.record(repo, manifest.digest, tag);
    if (this.events?.pulls) await this.events.record(null, 'pull', repo, this.manifestTarget(manifest, tag), this.request);
    return manifest;
  }

  private manifestTarget(m: { repo: string; digest: Digest; mediaType: string; size: number }, tag: string | undefined) {
    return { mediaType: m.mediaType, digest: m.digest, size: m.size, tag, path: `/v2/${m.repo}/manifests/${m.digest}` };
  }

  /** Resolve a tag or digest reference to a manifest of this repository (a malformed one names none). */
  async resolve(repo: string, reference: string): Promise<ManifestRecord> {
    let kind: 'tag' | 'digest';
    try {
      kind = referenceKind(reference);
    } catch {
      throw new RegistryError('MANIFEST_UNKNOWN', undefined, { detail: { reference } });
    }
    const manifest = kind === 'tag' ? await this.index.taggedManifest(repo, reference) : await this.index.getManifest(repo, reference as Digest);
    if (!manifest) throw new RegistryError('MANIFEST_UNKNOWN', undefined, { detail: { reference } });
    return manifest;
  }

  readManifest(manifest: ManifestRecord): Promise<Buffer> {
    return this.blobs.readBytes(manifest.digest);
  }

  async putManifest(
    repo: string,
    reference: string,
    body: Buffer,
    contentType: string | undefined,
    /** The bridge's own manifests (docs/bridge.md): the tag is marked as made from this v1 image. */
    bridgedFromV1?: string,
  ): Promise<{ digest: Digest; subject: Digest | null }> {
    const tag = referenceKind(reference) === 'tag' ? reference : undefined;
    const digest = digestBytes(body);
    if (!tag && reference !== digest) {
      throw new RegistryError('DIGEST_INVALID', 'manifest digest does not match the reference', {
        detail: { reference, computed: digest },
      });
    }
    return this.storeManifest(repo, tag, digest, body, contentType, true, bridgedFromV1);
  }

  /**
   * A manifest copied from a pull-through cache's upstream (src/proxy): stored and tagged like a pushed one,
   * except that what it references need not be here yet; blobs and child manifests are fetched when asked for.
   * `digest` must be the digest of `body` (the caller verified it against what it asked for).
   */
  async putCachedManifest(repo: string, tag: string | undefined, body: Buffer, contentType: string | undefined): Promise<Digest> {
    const digest = digestBytes(body);
    await this.storeManifest(repo, tag, digest, body, contentType, false);
    return digest;
  }

  /** Link a stored blob to a proxied repository (the upstream confirmed that repository has it). */
  linkCachedBlob(repo: string, digest: Digest): Promise<BlobRecord | undefined> {
    return this.core.transaction(async (tx) => {
      const blob = await tx(this.core).getBlob(digest);
      if (!blob) return undefined;
      await this.linker(repo)(tx, blob);
      return blob;
    });
  }

  /** Ingest options that link the stored blob to `repo` in the transaction that records it (for the proxy). */
  linkOnStore(repo: string): (tx: Tx, blob: BlobRecord) => Promise<void> {
    return this.linker(repo);
  }

  private async storeManifest(
    repo: string,
    tag: string | undefined,
    digest: Digest,
    body: Buffer,
    contentType: string | undefined,
    requireReferences: boolean,
    bridgedFromV1?: string,
  ): Promise<{ digest: Digest; subject: Digest | null }> {
    const parsed = parseManifest(body, contentType);
    // One query per kind, however often a manifest repeats a reference; the error names the first missing one.
    const checkReferences = async (index: V2Index) => {
      if (!requireReferences) return;
      const missingBlobs = await index.missingBlobs(repo, parsed.blobs);
      const blob = parsed.blobs.find((d) => missingBlobs.has(d));
      if (blob) throw new RegistryError('MANIFEST_BLOB_UNKNOWN', `blob ${blob} is not in ${repo}`, { detail: { digest: blob } });
      const missingChildren = await index.missingManifests(repo, parsed.manifests);
      const child = parsed.manifests.find((d) => missingChildren.has(d));
      if (child) throw new RegistryError('MANIFEST_BLOB_UNKNOWN', `manifest ${child} is not in ${repo}`, { detail: { digest: child } });
    };
    await checkReferences(this.index); // before any byte is stored
    // Checked again in the transaction that records the manifest bytes: a garbage collection that took a
    // reference meanwhile makes this PUT fail, never leaves a manifest pointing at missing bytes.
    await this.quotas?.checkLink(undefined, repo, digest, body.length);
    await this.blobs.putBytes(body, digest, async (tx) => {
      await checkReferences(tx(this.index));
      await this.quotas?.checkLink(tx, repo, digest, body.length);
      await tx(this.index).putManifest(
        {
          repo,
          digest,
          mediaType: parsed.mediaType,
          size: body.length,
          artifactType: parsed.artifactType,
          subject: parsed.subject,
          annotations: parsed.annotations,
        },
        [...new Set([...parsed.blobs, ...parsed.manifests])],
        tag,
        bridgedFromV1,
      );
      // A tag the bridge makes from a v1 tag is no push: the v1 tag's own event reported it.
      if (bridgedFromV1 === undefined) await this.events?.record(tx, 'push', repo, this.manifestTarget({ repo, digest, mediaType: parsed.mediaType, size: body.length }, tag), this.request);
    });
    return { digest, subject: parsed.subject };
  }

  /** By digest: the manifest and every tag on it. By tag: only the tag. */
  async deleteManifest(repo: string, reference: string): Promise<void> {
    const unknown = () => new RegistryError('MANIFEST_UNKNOWN', undefined, { detail: { reference } });
    const kind = referenceKind(reference);
    return this.core.transaction(async (tx) => {
      const index = tx(this.index);
      if (kind === 'tag') {
        const digest = this.events && (await index.resolveTag(repo, reference));
        if (!(await index.deleteTag(repo, reference))) throw unknown();
        await this.events?.record(tx, 'delete', repo, { digest: digest || undefined, tag: reference }, this.request);
        return;
      }
      const manifest = this.events && (await index.getManifest(repo, reference as Digest));
      if (!(await index.deleteManifest(repo, reference as Digest))) throw unknown();
      if (manifest) await this.events?.record(tx, 'delete', repo, { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.size }, this.request);
    });
  }

  // ---- repositories ----

  /** Delete the repository and everything in it (both protocols'); the bytes are left to garbage collection. */
  async deleteRepository(repo: string): Promise<DeletedRepository> {
    const deleted = await this.repositories.deleteRepository(repo, async (tx) => this.events?.record(tx, 'delete', repo, {}, this.request));
    if (!deleted) throw new RegistryError('NAME_UNKNOWN', undefined, { detail: { name: repo } });
    return deleted;
  }

  // ---- listings ----

  async tags(repo: string, last: string, n: number): Promise<readonly string[]> {
    const tags = await this.index.listTags(repo, last, n);
    // A tag proves the repository: only an empty page needs the second query.
    if (tags.length === 0 && !(await this.core.getRepository(repo))) throw new RegistryError('NAME_UNKNOWN', undefined, { detail: { name: repo } });
    return tags;
  }

  /** Up to `n` repositories after `last` that `visible` matches (what the caller may pull), in byte order. */
  catalog(last: string, n: number, visible?: readonly NamePattern[]): Promise<string[]> {
    return this.index.catalog(last, n, visible);
  }

  /** OCI 1.1 referrers of `subject` in this repository, optionally filtered by artifactType. */
  async referrers(repo: string, subject: Digest, artifactType?: string): Promise<object> {
    const manifests: Descriptor[] = (await this.index.referrers(repo, subject))
      .filter((m) => artifactType === undefined || m.artifactType === artifactType)
      .map((m) => ({
        mediaType: m.mediaType,
        digest: m.digest,
        size: m.size,
        ...(m.artifactType ? { artifactType: m.artifactType } : {}),
        ...(m.annotations ? { annotations: m.annotations } : {}),
      }));
    return { schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests };
  }
}

/** A reference is a tag or a digest; anything else is a client error. */
export function referenceKind(reference: string): 'tag' | 'digest' {
  if (isTag(reference)) return 'tag';
  if (reference.includes(':')) {
    parseDigest(reference);
    return 'digest';
  }
  throw new RegistryError('MANIFEST_INVALID', 'invalid tag', { status: 400, detail: { reference } });
}
