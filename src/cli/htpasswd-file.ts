import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';

// Reading and replacing the htpasswd file for the user commands (the server reads it with
// src/auth/htpasswd.ts).

/** The file's non-empty lines; a file that does not exist yet has none. */
export function readEntries(file: string): string[] {
  try {
    return readFileSync(file, 'utf8').split(/\r?\n/).filter((l) => l.trim() !== '');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** Replace the file in one rename, so a running registry never reads half of it. */
export function writeEntries(file: string, lines: string[]): void {
  // The first `user add` may name a directory no one made yet (auth/htpasswd on a fresh checkout).
  // It holds password hashes, hence owner-only when we create it; an existing one is left as it is.
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, lines.map((l) => l + '\n').join(''), { mode: 0o600 });
  renameSync(tmp, file);
}
