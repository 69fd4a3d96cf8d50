import { RegistryError } from '../errors';
import { isDigest, type Digest } from '../storage/digest';

// Manifest formats the registry accepts, and what it needs to know from each: the media type it
// is served with, the blobs and child manifests it references, and OCI 1.1 subject/artifactType.

export const MEDIA = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  dockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
} as const;

const IMAGE_TYPES = new Set<string>([MEDIA.ociManifest, MEDIA.dockerManifest]);
const INDEX_TYPES = new Set<string>([MEDIA.ociIndex, MEDIA.dockerList]);

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  urls?: string[];
  artifactType?: string;
  annotations?: Record<string, string>;
}

export interface ParsedManifest {
  mediaType: string;
  /** Blobs that must exist in the repository (config, layers). */
  blobs: Digest[];
  /** Manifests that must exist in the repository (children of an index). */
  manifests: Digest[];
  subject: Digest | null;
  artifactType: string | null;
  annotations: Record<string, string> | null;
}

const invalid = (message: string, detail?: unknown) => new RegistryError('MANIFEST_INVALID', message, { detail });

function descriptor(value: unknown, where: string): Descriptor {
  const d = value as Partial<Descriptor> | null;
  if (typeof d !== 'object' || d === null || Array.isArray(d)) throw invalid(`${where} is not a descriptor`);
  if (typeof d.mediaType !== 'string' || d.mediaType === '') throw invalid(`${where}.mediaType missing`);
  if (typeof d.digest !== 'string' || !isDigest(d.digest)) {
    throw invalid(`${where}.digest is not a sha256 digest`, { digest: d.digest });
  }
  if (typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0) throw invalid(`${where}.size invalid`);
  if (d.urls !== undefined && (!Array.isArray(d.urls) || d.urls.some((u) => typeof u !== 'string'))) {
    throw invalid(`${where}.urls invalid`);
  }
  return d as Descriptor;
}

function annotationsOf(value: unknown): Record<string, string> | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'object' || Array.isArray(value) || Object.values(value).some((v) => typeof v !== 'string')) {
    throw invalid('annotations must map strings to strings');
  }
  return value as Record<string, string>;
}

/** Media types this registry stores manifests under. */
export function isManifestMediaType(type: string): boolean {
  return IMAGE_TYPES.has(type) || INDEX_TYPES.has(type);
}

/**
 * Parse and validate a manifest body. `contentType` is the request's Content-Type (parameters
 * stripped); the body's own mediaType, when present, must agree with it.
 */
export function parseManifest(body: Buffer, contentType: string | undefined): ParsedManifest {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    throw invalid('manifest is not valid JSON');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw invalid('manifest is not a JSON object');
  if (doc.schemaVersion === 1 || contentType === MEDIA.dockerSchema1 || contentType === MEDIA.dockerSchema1Signed) {
    throw invalid('Docker schema 1 manifests are not supported; push schema 2 or OCI');
  }
  if (doc.schemaVersion !== 2) throw invalid('schemaVersion must be 2');

  const bodyType = doc.mediaType;
  if (bodyType !== undefined && typeof bodyType !== 'string') throw invalid('mediaType must be a string');
  const declared = contentType && isManifestMediaType(contentType) ? contentType : undefined;
  if (declared && bodyType && declared !== bodyType) {
    throw invalid(`Content-Type ${declared} does not match the manifest's mediaType ${bodyType}`);
  }
  // OCI allows mediaType to be absent; infer from the shape then.
  const mediaType = (bodyType as string | undefined) ?? declared ?? ('manifests' in doc ? MEDIA.ociIndex : MEDIA.ociManifest);
  if (!isManifestMediaType(mediaType)) throw invalid(`unsupported manifest media type ${mediaType}`);

  const subject = doc.subject === undefined || doc.subject === null ? null : descriptor(doc.subject, 'subject').digest;
  const annotations = annotationsOf(doc.annotations);
  if (doc.artifactType !== undefined && typeof doc.artifactType !== 'string') throw invalid('artifactType must be a string');

  if (INDEX_TYPES.has(mediaType)) {
    if ('config' in doc || 'layers' in doc) throw invalid('an index has no config or layers');
    if (!Array.isArray(doc.manifests)) throw invalid('manifests must be an array');
    const children = doc.manifests.map((m, i) => descriptor(m, `manifests[${i}]`));
    return {
      mediaType,
      blobs: [],
      manifests: children.map((c) => c.digest),
      subject,
      artifactType: (doc.artifactType as string | undefined) ?? null,
      annotations,
    };
  }

  if ('manifests' in doc) throw invalid('an image manifest has no manifests list');
  const config = descriptor(doc.config, 'config');
  if (!Array.isArray(doc.layers)) throw invalid('layers must be an array');
  const layers = doc.layers.map((l, i) => descriptor(l, `layers[${i}]`));
  return {
    mediaType,
    // Foreign (non-distributable) layers with URLs live elsewhere and need not be pushed here.
    blobs: [config, ...layers.filter((l) => !l.urls?.length)].map((d) => d.digest),
    manifests: [],
    subject,
    artifactType: (doc.artifactType as string | undefined) ?? (mediaType === MEDIA.ociManifest ? config.mediaType : null),
    annotations,
  };
}
