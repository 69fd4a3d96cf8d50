import bcrypt from 'bcryptjs';
import { isReservedName } from '../auth/rules';
import { loadConfig } from '../config/load';
import type { Config } from '../config/schema';
import { isRepositoryComponent } from '../names';
import { readEntries, writeEntries } from './htpasswd-file';
import type { CliIo } from './io';
import { readPassword } from './read-password';

// add <name> | remove <name> | list   [--file <htpasswd>], shared by `npm run user` (user.ts) and
// `npm run registry -- user` (registry.ts). Writes bcrypt ($2y$) entries to the htpasswd file named
// by auth.htpasswd.path (or --file). Messages and exit statuses are those `npm run user` always had.

const BCRYPT_COST = 10;

export interface UserCommandOptions {
  /** The usage line for the tool it runs in, e.g. `usage: npm run user -- add <name> | ...`. */
  usage: string;
  loadConfig?: () => Config;
}

/** Why a name cannot be a user, or '': it stands for `$user` in rule globs, so it must be one repository path component. */
function badUserName(name: string): string {
  if (isReservedName(name)) return 'it is reserved';
  if (!isRepositoryComponent(name)) {
    return 'use lower-case letters and digits, joined by ".", "_", "__" or "-" (it names the $user repositories)';
  }
  return '';
}

export async function userCommand(argv: string[], io: CliIo, opts: UserCommandOptions): Promise<number> {
  const usage = () => {
    io.stderr.write(opts.usage + '\n');
    return 2;
  };
  const args = [...argv];
  const fileFlag = args.indexOf('--file');
  const fileArg = fileFlag >= 0 ? args.splice(fileFlag, 2)[1] : undefined;
  const [command, name] = args;
  // A mistyped command gets the usage, not a complaint about the htpasswd file.
  if (command !== 'add' && command !== 'remove' && command !== 'list') return usage();
  if (command !== 'list' && !name) return usage();

  const file = fileArg ?? (opts.loadConfig ?? (() => loadConfig()))().auth.htpasswd.path;
  if (!file) {
    io.stderr.write('no htpasswd file: set auth.htpasswd.path in config.yml or pass --file\n');
    return 2;
  }
  const lines = readEntries(file);
  const others = (user: string) => lines.filter((l) => l.slice(0, l.indexOf(':')) !== user);
  switch (command) {
    case 'add': {
      const why = badUserName(name!);
      if (why) {
        io.stderr.write(`invalid user name ${JSON.stringify(name)}: ${why}\n`);
        return 2;
      }
      const password = await readPassword(io.stdin, io.stderr);
      if (password.length < 1) {
        io.stderr.write('empty password refused\n');
        return 2;
      }
      const hash = bcrypt.hashSync(password, BCRYPT_COST).replace(/^\$2b\$/, '$2y$');
      writeEntries(file, [...others(name!), `${name}:${hash}`]);
      io.stdout.write(`${lines.length === others(name!).length ? 'added' : 'updated'} ${name} in ${file}\n`);
      return 0;
    }
    case 'remove': {
      const rest = others(name!);
      if (rest.length === lines.length) {
        io.stderr.write(`no user ${name} in ${file}\n`);
        return 1;
      }
      writeEntries(file, rest);
      io.stdout.write(`removed ${name} from ${file}\n`);
      return 0;
    }
    case 'list':
      for (const l of lines) io.stdout.write(l.slice(0, l.indexOf(':')) + '\n');
      return 0;
  }
}
