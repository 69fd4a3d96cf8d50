import { randomBytes } from 'node:crypto';
import { chmodSync, linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';

// The key of UI session cookies and CSRF tokens (ui.sessionSecretFile): read, or created with mode 0600 on
// first start. Created whole or not at all (written aside, then hard-linked into place), so processes
// starting together on one data directory all end up with the one key, and none reads a half-written file.

/** ui.sessionSecretFile, or beside the index (the data directory) when it is empty. */
export function sessionKeyFile(configured: string, indexPath: string): string {
  if (configured !== '') return configured;
  return indexPath === ':memory:' ? './data/ui-session.key' : path.join(path.dirname(indexPath), 'ui-session.key');
}

export function loadSessionKey(file: string): Buffer {
  const existing = read(file);
  if (existing) return existing;
  mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, randomBytes(32).toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
  chmodSync(tmp, 0o600);
  try {
    linkSync(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    unlinkSync(tmp);
  }
  return read(file)!;
}

function read(file: string): Buffer | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const key = Buffer.from(text.trim(), 'base64');
  if (key.length < 32) throw new Error(`ui.sessionSecretFile ${file}: the key is too short (need 32 bytes, base64)`);
  return key;
}
