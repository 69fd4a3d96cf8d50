import { RegistryError } from './errors';

// Name rules shared by v1 and v2, so that a repository pushed over one protocol is valid in the other.

/** One path component of a repository name (OCI distribution grammar). */
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const MAX_NAME = 255;

/** One path component of a repository name, e.g. a user name standing for `$user` in access rules. */
export function isRepositoryComponent(component: string): boolean {
  return COMPONENT.test(component);
}

export function isRepositoryName(name: string): boolean {
  return name.length > 0 && name.length <= MAX_NAME && name.split('/').every((c) => COMPONENT.test(c));
}

export function assertRepositoryName(name: string): string {
  if (!isRepositoryName(name)) {
    throw new RegistryError('NAME_INVALID', 'invalid repository name', { detail: { name } });
  }
  return name;
}

export function isTag(tag: string): boolean {
  return TAG.test(tag);
}
