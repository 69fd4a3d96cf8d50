import { runGarbageCollection } from '../gc/run';
import { dispatch, type Command } from './dispatch';
import { backupCommand, backupHelp } from './backup';
import { bridgeCommand, bridgeHelp } from './bridge';
import { checkCommand, checkHelp } from './check';
import { compactCommand, compactHelp } from './compact';
import { configCommand, configHelp } from './config-check';
import { duCommand, duHelp } from './du';
import { gcCommand, gcHelp } from './gc';
import { rebuildCommand, rebuildHelp } from './rebuild';
import { notificationsCommand, notificationsHelp } from './notifications';
import { repoCommand, repoHelp } from './repo';
import { retentionCommand, retentionHelp } from './retention';
import { interruptSignal, processIo, runEntry } from './io';
import { userCommand } from './user-command';

// The operator's tool: npm run registry -- <command> [arguments] (node dist/cli/registry.js in the
// image). Each command lives in its own file; this table is the only place that wires in the real
// collaborators (the garbage collector), so that the commands themselves can be tested with fakes.

const commands: Record<string, Command> = {
  user: {
    help: [
      ['user add <name> [--file <htpasswd>]', 'add a user, or set a new password (stdin\'s first line, or a prompt)'],
      ['user remove <name> [--file <htpasswd>]', 'remove a user'],
      ['user list [--file <htpasswd>]', 'list the users (file: --file, else auth.htpasswd.path)'],
    ],
    run: (args, io) =>
      userCommand(args, io, {
        usage: 'usage: npm run registry -- user add <name> | user remove <name> | user list [--file <htpasswd>]',
      }),
  },
  gc: {
    help: gcHelp,
    run: (args, io) => gcCommand(args, io, { run: runGarbageCollection, signal: interruptSignal() }),
  },
  retention: { help: retentionHelp, run: (args, io) => retentionCommand(args, io, { signal: interruptSignal() }) },
  du: { help: duHelp, run: (args, io) => duCommand(args, io) },
  repo: { help: repoHelp, run: (args, io) => repoCommand(args, io) },
  backup: { help: backupHelp, run: (args, io) => backupCommand(args, io) },
  'rebuild-index': { help: rebuildHelp, run: (args, io) => rebuildCommand(args, io) },
  bridge: { help: bridgeHelp, run: (args, io) => bridgeCommand(args, io) },
  check: { help: checkHelp, run: (args, io) => checkCommand(args, io, { signal: interruptSignal() }) },
  'compact-journal': { help: compactHelp, run: (args, io) => compactCommand(args, io, { signal: interruptSignal() }) },
  config: { help: configHelp, run: (args, io) => configCommand(args, io) },
  notifications: { help: notificationsHelp, run: (args, io) => notificationsCommand(args, io) },
};

runEntry('registry: ', () => dispatch(process.argv.slice(2), commands, processIo()));
