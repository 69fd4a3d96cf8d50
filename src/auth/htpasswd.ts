import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync, watchFile, unwatchFile, promises as fs } from 'node:fs';
import { BcryptWorker } from './bcrypt-worker';

// An htpasswd file: bcrypt entries ($2y$, $2a$, $2b$, as `htpasswd -B` writes); apr1-MD5 and
// {SHA} entries of older files are accepted with a warning; plaintext entries are refused.
// The file is re-read when it changes, without a restart.

export interface HtpasswdLog {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

type Scheme = 'bcrypt' | 'apr1' | 'sha';

interface Entry {
  scheme: Scheme;
  hash: string;
}

function schemeOf(hash: string): Scheme | undefined {
  if (/^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/.test(hash)) return 'bcrypt';
  if (hash.startsWith('$apr1$')) return 'apr1';
  if (hash.startsWith('{SHA}')) return 'sha';
  return undefined;
}

export function parseHtpasswd(text: string, log?: HtpasswdLog): Map<string, Entry> {
  const users = new Map<string, Entry>();
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon <= 0) {
      log?.warn({ line: i + 1 }, 'htpasswd: ignoring a malformed line');
      continue;
    }
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    const scheme = schemeOf(hash);
    if (!scheme) {
      log?.warn({ line: i + 1, user }, 'htpasswd: refusing an entry that is not bcrypt, apr1 or {SHA} (plaintext?)');
      continue;
    }
    if (scheme !== 'bcrypt') log?.warn({ user, scheme }, 'htpasswd: weak legacy hash accepted; re-create it with htpasswd -B');
    users.set(user, { scheme, hash });
  }
  return users;
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function verifyEntry(password: string, entry: Entry, bcryptWorker: BcryptWorker): Promise<boolean> | boolean {
  switch (entry.scheme) {
    case 'bcrypt':
      // bcryptjs understands $2a$/$2b$; $2y$ is the same algorithm under PHP's name.
      return bcryptWorker.compare(password, entry.hash.replace(/^\$2y\$/, '$2b$'));
    case 'sha':
      return safeEqual(entry.hash, '{SHA}' + createHash('sha1').update(password).digest('base64'));
    case 'apr1':
      return safeEqual(entry.hash, apr1(password, entry.hash.split('$')[2] ?? ''));
  }
}

/**
 * An entry no password matches, checked for a name the file lacks, so that a failed login takes as long
 * whether the name exists or not. It takes the scheme and bcrypt cost most of the file's entries use: a
 * fixed cheap dummy made failures for unknown names measurably faster, which told which names exist.
 * Its hash part is random characters: bcrypt still runs in full at that cost, nothing matches, and
 * making it costs no bcrypt run on reload.
 */
export function dummyEntry(users: Iterable<Entry>): Entry {
  const counts = new Map<string, number>();
  for (const { scheme, hash } of users) {
    const kind = scheme === 'bcrypt' ? `bcrypt:${hash.slice(4, 6)}` : scheme;
    counts.set(kind, (counts.get(kind) ?? 0) + 1);
  }
  // The most used kind; among equals, the costlier (bcrypt over the legacy schemes, then the higher cost).
  const rank = (kind: string) => (kind.startsWith('bcrypt:') ? 1000 + Number(kind.slice(7)) : 0);
  let kind = 'bcrypt:04'; // no entries: every name is unknown, so the cheapest cost hides nothing
  let best = 0;
  for (const [k, n] of counts) {
    if (n > best || (n === best && rank(k) > rank(kind))) [kind, best] = [k, n];
  }
  if (kind === 'sha') return { scheme: 'sha', hash: '{SHA}' + randomBytes(20).toString('base64') };
  if (kind === 'apr1') return { scheme: 'apr1', hash: `$apr1$${randomChars(8)}$${randomChars(22)}` };
  return { scheme: 'bcrypt', hash: `$2b$${kind.slice(7)}$${randomChars(53)}` };
}

/** Characters of bcrypt's and apr1's base64 alphabet. */
function randomChars(n: number): string {
  return Array.from(randomBytes(n), (b) => ITOA64[b & 0x3f]).join('');
}

/** One reading of the file: its users, and what was verified against them. */
interface Generation {
  users: Map<string, Entry>;
  /** Successful verifications (sha256 of user and password), so bcrypt runs once per credential, not per request. */
  verified: Set<string>;
  /** Verifications under way, so that the same credential arriving many times at once costs one bcrypt. */
  checking: Map<string, Promise<boolean>>;
  /** What a name the file lacks is checked against. */
  dummy: Entry;
}

export class Htpasswd {
  private current: Generation;
  private mtimeMs = 0;
  private reloading: Promise<void> | null = null;
  private readonly bcrypt: BcryptWorker;

  /** `maxQueued`: bcrypt compares waiting at most (see BcryptWorker). */
  constructor(
    private readonly path: string,
    private readonly log?: HtpasswdLog,
    maxQueued = Infinity,
  ) {
    this.bcrypt = new BcryptWorker(maxQueued);
    // The first reading is synchronous: a missing or unreadable file stops the start.
    this.current = this.apply(readFileSync(this.path, 'utf8'), statSync(this.path).mtimeMs);
    // Polling stat is reliable across editors that replace the file, bind mounts and network filesystems.
    watchFile(this.path, { interval: 1000, persistent: false }, () => void this.reloadIfChanged());
  }

  close(): void {
    unwatchFile(this.path);
    void this.bcrypt.close();
  }

  /** Re-read the file if its modification time changed. Also called before each verification. */
  reloadIfChanged(): Promise<void> {
    this.reloading ??= this.reload().finally(() => (this.reloading = null));
    return this.reloading;
  }

  private async reload(): Promise<void> {
    try {
      const { mtimeMs } = await fs.stat(this.path);
      if (mtimeMs !== this.mtimeMs) this.current = this.apply(await fs.readFile(this.path, 'utf8'), mtimeMs);
    } catch {
      // keep the last good copy while the file is being replaced
    }
  }

  private apply(text: string, mtimeMs: number): Generation {
    this.mtimeMs = mtimeMs;
    const users = parseHtpasswd(text, this.log);
    this.log?.info({ users: users.size }, 'htpasswd loaded');
    return { users, verified: new Set(), checking: new Map(), dummy: dummyEntry(users.values()) };
  }

  has(user: string): boolean {
    return this.current.users.has(user);
  }

  /** The stored hash of `user` (undefined: no such user), to bind tokens to this version of the entry. */
  hashOf(user: string): string | undefined {
    return this.current.users.get(user)?.hash;
  }

  /** Password checks waiting for or running on the bcrypt worker. */
  get pendingChecks(): number {
    return this.bcrypt.pending;
  }

  /**
   * `admit` is called only when this call starts a new check (not for a remembered credential, nor one
   * joining the same check under way); it may throw to refuse, and returns what to call when it ends.
   */
  async verify(user: string, password: string, admit?: () => () => void): Promise<boolean> {
    await this.reloadIfChanged();
    const gen = this.current;
    const key = createHash('sha256').update(user).update('\0').update(password).digest('hex');
    const entry = gen.users.get(user);
    if (entry && gen.verified.has(key)) return true;
    let checking = gen.checking.get(key);
    if (!checking) {
      const release = admit?.() ?? (() => {});
      checking = Promise.resolve(verifyEntry(password, entry ?? gen.dummy, this.bcrypt))
        .then((ok) => {
          // Cached in this generation only: a file changed meanwhile starts with nothing verified.
          if (ok && entry) gen.verified.add(key);
          return ok && entry !== undefined;
        })
        .finally(release);
      const drop = () => void gen.checking.delete(key);
      checking.then(drop, drop);
      gen.checking.set(key, checking);
    }
    if (!(await checking)) return false;
    // The file may have changed while bcrypt ran (a user removed, a password changed): the answer
    // holds only if the file read now still has the entry that was checked.
    await this.reloadIfChanged();
    return this.current.users.get(user)?.hash === entry!.hash;
  }
}

// ---- Apache's apr1 MD5-crypt, for reading old files only ----

const ITOA64 = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

function to64(v: number, n: number): string {
  let s = '';
  while (n-- > 0) {
    s += ITOA64[v & 0x3f];
    v >>= 6;
  }
  return s;
}

export function apr1(password: string, salt: string): string {
  const magic = '$apr1$';
  salt = salt.slice(0, 8);
  const pw = Buffer.from(password);
  let ctx = createHash('md5').update(pw).update(magic).update(salt);
  let fin = createHash('md5').update(pw).update(salt).update(pw).digest();
  for (let i = pw.length; i > 0; i -= 16) ctx.update(fin.subarray(0, Math.min(16, i)));
  for (let i = pw.length; i; i >>= 1) ctx.update(i & 1 ? Buffer.alloc(1) : pw.subarray(0, 1));
  fin = ctx.digest();
  for (let i = 0; i < 1000; i++) {
    ctx = createHash('md5');
    ctx.update(i & 1 ? pw : fin);
    if (i % 3) ctx.update(salt);
    if (i % 7) ctx.update(pw);
    ctx.update(i & 1 ? fin : pw);
    fin = ctx.digest();
  }
  const f = fin;
  const out =
    to64((f[0]! << 16) | (f[6]! << 8) | f[12]!, 4) +
    to64((f[1]! << 16) | (f[7]! << 8) | f[13]!, 4) +
    to64((f[2]! << 16) | (f[8]! << 8) | f[14]!, 4) +
    to64((f[3]! << 16) | (f[9]! << 8) | f[15]!, 4) +
    to64((f[4]! << 16) | (f[10]! << 8) | f[5]!, 4) +
    to64(f[11]!, 2);
  return `${magic}${salt}$${out}`;
}
