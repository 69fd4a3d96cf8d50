import path from 'node:path';
import { loadOrCreateKey } from '../auth/key-file';

// The key of UI session cookies and CSRF tokens (ui.sessionSecretFile), created on first start.

/** ui.sessionSecretFile, or beside the index (the data directory) when it is empty. */
export function sessionKeyFile(configured: string, indexPath: string): string {
  if (configured !== '') return configured;
  return indexPath === ':memory:' ? './data/ui-session.key' : path.join(path.dirname(indexPath), 'ui-session.key');
}

export function loadSessionKey(file: string): Buffer {
  return loadOrCreateKey(file, 'ui.sessionSecretFile');
}
