import { randomBytes } from 'node:crypto';
import { chmodSync, linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';

// A 32-byte secret kept in a file (base64, mode 0600): read, or created on first start. Created whole or
// not at all (written aside, then hard-linked into place), so processes starting together on one data
// directory all end up with the one key, and none reads a half-written file.

/** `what` names the setting in errors, e.g. "auth.token.secretFile". */
export function loadOrCreateKey(file: string, what: string): Buffer {
  const existing = read(file, what);
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
  return read(file, what)!;
}

function read(file: string, what: string): Buffer | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const key = Buffer.from(text.trim(), 'base64');
  if (key.length < 32) throw new Error(`${what} ${file}: the key is too short (need 32 bytes, base64)`);
  return key;
}
