import { RegistryError } from '../errors';
import { isRepositoryName } from '../names';

const IMAGE_ID = /^(?:[a-f0-9]{16}|[a-f0-9]{64})$/;

/**
 * v1 repository path -> full name. A single component means the "library" namespace, so
 * `busybox` and `library/busybox` are the same repository (Docker 1.x sends both forms).
 */
export function v1RepositoryName(raw: string): string {
  let decoded: string;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    throw new RegistryError('NAME_INVALID', 'Invalid repository name');
  }
  const trimmed = decoded.replace(/\/+$/, '');
  const name = trimmed.includes('/') ? trimmed : `library/${trimmed}`;
  if (!isRepositoryName(name) || /^[a-f0-9]{64}$/.test(trimmed)) {
    throw new RegistryError('NAME_INVALID', 'Invalid repository name (must match [a-z0-9]+([._-][a-z0-9]+)* per path component)');
  }
  return name;
}

export function assertImageId(id: string): string {
  if (!IMAGE_ID.test(id)) throw new RegistryError('NOT_FOUND', 'Invalid image ID');
  return id;
}
