import { processIo, runEntry } from './io';
import { userCommand } from './user-command';

// npm run user -- add <name> | remove <name> | list   [--file <htpasswd>]
// Kept for existing scripts and docs; the same commands are `npm run registry -- user ...`.

runEntry('', () =>
  userCommand(process.argv.slice(2), processIo(), {
    usage: 'usage: npm run user -- add <name> | remove <name> | list [--file <htpasswd>]',
  }),
);
