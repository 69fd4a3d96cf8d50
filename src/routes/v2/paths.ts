import { assertRepositoryName } from '../../names';

// /v2/<name>/<verb>/... : names contain slashes, so the path is read from the right.

export type V2Resource =
  | { kind: 'base' }
  | { kind: 'catalog' }
  | { kind: 'tags'; name: string }
  | { kind: 'manifest'; name: string; reference: string }
  | { kind: 'uploads'; name: string }
  | { kind: 'upload'; name: string; id: string }
  | { kind: 'blob'; name: string; digest: string }
  | { kind: 'referrers'; name: string; digest: string }
  /** Administration of a whole repository (not in the OCI API): `_registry` can never be a repository name. */
  | { kind: 'repository'; name: string };

const PATTERNS: [RegExp, (m: RegExpExecArray) => V2Resource][] = [
  [/^_registry\/repositories\/(.+)$/, (m) => ({ kind: 'repository', name: m[1]! })],
  [/^(.+)\/tags\/list$/, (m) => ({ kind: 'tags', name: m[1]! })],
  [/^(.+)\/manifests\/([^/]+)$/, (m) => ({ kind: 'manifest', name: m[1]!, reference: m[2]! })],
  [/^(.+)\/blobs\/uploads$/, (m) => ({ kind: 'uploads', name: m[1]! })],
  [/^(.+)\/blobs\/uploads\/([^/]+)$/, (m) => ({ kind: 'upload', name: m[1]!, id: m[2]! })],
  [/^(.+)\/blobs\/([^/]+)$/, (m) => ({ kind: 'blob', name: m[1]!, digest: m[2]! })],
  [/^(.+)\/referrers\/([^/]+)$/, (m) => ({ kind: 'referrers', name: m[1]!, digest: m[2]! })],
];

/** Parse the part after /v2/; undefined if it names no API resource. Names are validated here. */
export function parseV2Path(rest: string): V2Resource | undefined {
  const path = rest.replace(/\/+$/, '');
  if (path === '') return { kind: 'base' };
  if (path === '_catalog') return { kind: 'catalog' };
  for (const [re, make] of PATTERNS) {
    const m = re.exec(path);
    if (!m) continue;
    const res = make(m);
    if ('name' in res) assertRepositoryName(res.name);
    return res;
  }
  return undefined;
}
