import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import bcrypt from 'bcryptjs';
import { isReservedName } from '../auth/rules';
import { loadConfig } from '../config/load';
import { isRepositoryComponent } from '../names';

// npm run user -- add <name> | remove <name> | list   [--file <htpasswd>]
// Writes bcrypt ($2y$) entries to the htpasswd file named by auth.htpasswd.path (or --file).
// The password comes from standard input (one line) or, on a terminal, from a hidden prompt.

const BCRYPT_COST = 10;

function usage(): never {
  process.stderr.write('usage: npm run user -- add <name> | remove <name> | list [--file <htpasswd>]\n');
  process.exit(2);
}

/** A user name stands for `$user` in rule globs, so it must be one repository path component. */
function checkUserName(name: string): void {
  let why = '';
  if (isReservedName(name)) why = 'it is reserved';
  else if (!isRepositoryComponent(name)) {
    why = 'use lower-case letters and digits, joined by ".", "_", "__" or "-" (it names the $user repositories)';
  }
  if (!why) return;
  process.stderr.write(`invalid user name ${JSON.stringify(name)}: ${why}\n`);
  process.exit(2);
}

function readPassword(): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) {
    return new Promise((resolve, reject) => {
      let data = '';
      stdin.setEncoding('utf8');
      stdin.on('data', (c) => (data += c));
      stdin.on('end', () => resolve(data.split(/\r?\n/)[0] ?? ''));
      stdin.on('error', reject);
    });
  }
  process.stderr.write('password: ');
  return new Promise((resolve) => {
    let pw = '';
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding('utf8');
    stdin.on('data', (ch: string) => {
      for (const c of ch) {
        if (c === '\r' || c === '\n' || c === '\u0004') {
          stdin.setRawMode(false);
          stdin.pause();
          process.stderr.write('\n');
          resolve(pw);
          return;
        }
        if (c === '\u0003') process.exit(130);
        pw = c === '\u007f' ? pw.slice(0, -1) : pw + c;
      }
    });
  });
}

function readEntries(file: string): string[] {
  try {
    return readFileSync(file, 'utf8').split(/\r?\n/).filter((l) => l.trim() !== '');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** Replace the file in one rename, so a running registry never reads half of it. */
function writeEntries(file: string, lines: string[]): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, lines.map((l) => l + '\n').join(''), { mode: 0o600 });
  renameSync(tmp, file);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const fileFlag = args.indexOf('--file');
  const file = fileFlag >= 0 ? args.splice(fileFlag, 2)[1] : loadConfig().auth.htpasswd.path;
  if (!file) {
    process.stderr.write('no htpasswd file: set auth.htpasswd.path in config.yml or pass --file\n');
    process.exit(2);
  }
  const [command, name] = args;
  const lines = readEntries(file);
  const others = (user: string) => lines.filter((l) => l.slice(0, l.indexOf(':')) !== user);
  switch (command) {
    case 'add': {
      if (!name) usage();
      checkUserName(name);
      const password = await readPassword();
      if (password.length < 1) {
        process.stderr.write('empty password refused\n');
        process.exit(2);
      }
      const hash = bcrypt.hashSync(password, BCRYPT_COST).replace(/^\$2b\$/, '$2y$');
      writeEntries(file, [...others(name), `${name}:${hash}`]);
      process.stdout.write(`${lines.length === others(name).length ? 'added' : 'updated'} ${name} in ${file}\n`);
      return;
    }
    case 'remove': {
      if (!name) usage();
      const rest = others(name);
      if (rest.length === lines.length) {
        process.stderr.write(`no user ${name} in ${file}\n`);
        process.exit(1);
      }
      writeEntries(file, rest);
      process.stdout.write(`removed ${name} from ${file}\n`);
      return;
    }
    case 'list':
      for (const l of lines) process.stdout.write(l.slice(0, l.indexOf(':')) + '\n');
      return;
    default:
      usage();
  }
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
