import { readFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { ConfigError, parseConfig } from '../config/load';
import type { Command } from './dispatch';
import type { CliIo } from './io';

// `registry config check [FILE]`: validates a configuration the way the server does at start (every key,
// every REGISTRY_* override, the rules that tie keys together) and prints the configuration the server
// would run with, secrets masked, so an operator can check a change before restarting.

const USAGE = 'usage: npm run registry -- config check [FILE]\n';

export const configHelp: Command['help'] = [
  ['config check [FILE]', 'validate a configuration (FILE, else REGISTRY_CONFIG or ./config.yml, plus REGISTRY_* overrides) and print the effective one, secrets masked'],
];

/**
 * Keys whose string values are credentials; `...File`/`...Path`/`...Env` keys name the file or environment
 * variable holding one, which is not secret.
 */
const SECRET_KEY = /(secret|password|passwd|token|authorization|credential|api[-_]?key)/i;
const FILE_KEY = /(file|path|env)$/i;
export const MASK = '********';

/** A copy of `value` with credentials replaced: values of secret-named keys and of headers, and passwords in URLs. */
export function maskSecrets(value: unknown, key = ''): unknown {
  if (typeof value === 'string') {
    if (value !== '' && SECRET_KEY.test(key) && !FILE_KEY.test(key)) return MASK;
    return value.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/:@\s]*):[^@/\s]*@/i, `$1:${MASK}@`);
  }
  if (Array.isArray(value)) return value.map((v) => maskSecrets(v, key));
  if (typeof value === 'object' && value !== null) {
    // Header values are credentials as often as not (X-Hook-Key, Cookie): all of them masked.
    if (key === 'headers') return Object.fromEntries(Object.keys(value).map((k) => [k, MASK]));
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, maskSecrets(v, k)]));
  }
  return value;
}

export async function configCommand(args: string[], io: CliIo, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const [sub, file, ...rest] = args;
  const unexpected = sub !== 'check' ? sub : file?.startsWith('-') ? file : rest[0];
  if (sub === undefined || unexpected !== undefined) {
    io.stderr.write(`registry config: ${sub === undefined ? 'which subcommand?' : `unexpected argument ${JSON.stringify(unexpected)}`}\n${USAGE}`);
    return 2;
  }
  const explicit = file ?? env.REGISTRY_CONFIG;
  const path = explicit ?? './config.yml';
  let text = '';
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || explicit !== undefined) {
      io.stderr.write(`registry config check: cannot read ${path}: ${(err as Error).message}\n`);
      return 1;
    }
  }
  let config;
  try {
    config = parseConfig(text, env, path);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    io.stderr.write(`registry config check: ${path}: ${err.message}\n`);
    return 1;
  }
  const overrides = Object.keys(env).filter((name) => name.startsWith('REGISTRY_') && name !== 'REGISTRY_CONFIG').sort();
  io.stdout.write(`# effective configuration: ${text === '' ? `defaults (no ${path})` : path}${overrides.length ? `, overridden by ${overrides.join(', ')}` : ''}\n`);
  io.stdout.write(stringify(maskSecrets(config)));
  io.stderr.write(`registry config check: ${path}: valid\n`);
  return 0;
}
