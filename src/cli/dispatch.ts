import { errorMessage, type CliIo } from './io';

// `npm run registry -- <command> [arguments]`: finds the command, prints help and usage, and turns a
// command's thrown error into one line `registry <command>: <message>` with status 1. The table of
// commands is the entry's (registry.ts), so tests can dispatch to fakes.

export const INVOCATION = 'npm run registry --';

export interface Command {
  /** Help rows: synopsis (arguments after the command's name included) and what it does. */
  help: [synopsis: string, description: string][];
  /** Exit status: 0 done, 1 failed, 2 bad usage (after saying why on stderr). May throw. */
  run(args: string[], io: CliIo): Promise<number>;
}

const HELP_FLAGS = new Set(['help', '--help', '-h']);

function helpRows(rows: [string, string][]): string {
  const width = Math.max(...rows.map(([s]) => s.length)) + 2;
  return rows.map(([s, d]) => `  ${s.padEnd(width)}${d}\n`).join('');
}

export function usage(commands: Record<string, Command>): string {
  const rows = Object.values(commands).flatMap((c) => c.help);
  return (
    `usage: ${INVOCATION} <command> [arguments]   (or: node dist/cli/registry.js <command> ...)\n\n` +
    'commands:\n' +
    helpRows([...rows, ['help', 'this message; <command> --help for one command']]) +
    '\nCommands read the server\'s configuration: REGISTRY_CONFIG (default ./config.yml) and REGISTRY_* overrides.\n'
  );
}

export async function dispatch(argv: string[], commands: Record<string, Command>, io: CliIo): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined) {
    io.stderr.write(usage(commands));
    return 2;
  }
  if (HELP_FLAGS.has(name)) {
    io.stdout.write(usage(commands));
    return 0;
  }
  // Object.hasOwn: "constructor" or "toString" are not commands.
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!command) {
    io.stderr.write(`registry: unknown command ${JSON.stringify(name)}\n\n${usage(commands)}`);
    return 2;
  }
  if (args.some((a) => a === '--help' || a === '-h')) {
    io.stdout.write('usage:\n' + command.help.map(([s, d]) => `  ${INVOCATION} ${s}\n      ${d}\n`).join(''));
    return 0;
  }
  try {
    return await command.run(args, io);
  } catch (err) {
    io.stderr.write(`registry ${name}: ${errorMessage(err)}\n`);
    return 1;
  }
}
