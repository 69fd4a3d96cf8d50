import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { schema, isLeaf, type Branch, type Leaf, type Config } from './schema';

import { checkMetricsConfig } from '../metrics/settings';
import { checkCrossKeys } from './cross-checks';
import { ConfigError } from './errors';

export { ConfigError };

/** Environment variable name for a key path: http.trustProxy -> REGISTRY_HTTP_TRUST_PROXY. */
export function envName(path: readonly string[]): string {
  return 'REGISTRY_' + path.map((p) => p.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_');
}

/** Environment variables that are not configuration keys. */
const NOT_KEYS = new Set(['REGISTRY_CONFIG']);

function coerce(leaf: Leaf, value: unknown, where: string, fromEnv = false): unknown {
  switch (leaf.type) {
    case 'custom': {
      let v = value;
      if (fromEnv) {
        try {
          v = parseYaml(String(value));
        } catch (err) {
          throw new ConfigError(`${where}: invalid YAML/JSON value: ${(err as Error).message}`);
        }
      }
      return leaf.parse!(v, where);
    }
    case 'boolean':
      if (typeof value === 'boolean') return value;
      if (typeof value === 'string' && /^(true|false)$/i.test(value)) return value.toLowerCase() === 'true';
      throw new ConfigError(`${where}: expected true or false, got ${JSON.stringify(value)}`);
    case 'integer': {
      const n = typeof value === 'string' && /^-?\d+$/.test(value.trim()) ? Number(value) : value;
      if (typeof n !== 'number' || !Number.isSafeInteger(n)) {
        throw new ConfigError(`${where}: expected an integer, got ${JSON.stringify(value)}`);
      }
      if (leaf.min !== undefined && n < leaf.min) throw new ConfigError(`${where}: must be at least ${leaf.min}, got ${n}`);
      return n;
    }
    case 'enum':
      if (typeof value !== 'string' || !leaf.values!.includes(value)) {
        throw new ConfigError(`${where}: expected one of ${leaf.values!.join(', ')}, got ${JSON.stringify(value)}`);
      }
      return value;
    case 'string':
      if (typeof value === 'number') return String(value);
      if (typeof value !== 'string' || (value === '' && !leaf.optional)) {
        throw new ConfigError(`${where}: expected a non-empty string, got ${JSON.stringify(value)}`);
      }
      return value;
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Walk the schema and the file together: unknown keys and wrong types stop here, naming the key. */
function resolve(
  branch: Branch,
  file: unknown,
  env: NodeJS.ProcessEnv,
  path: string[],
  usedEnv: Set<string>,
): Record<string, unknown> {
  const where = path.join('.') || '(top level)';
  if (file !== undefined && file !== null && !isPlainObject(file)) {
    throw new ConfigError(`${where}: expected a mapping of keys, got ${JSON.stringify(file)}`);
  }
  const given = (file ?? {}) as Record<string, unknown>;
  for (const key of Object.keys(given)) {
    if (!Object.hasOwn(branch, key)) {
      const known = Object.keys(branch).join(', ');
      throw new ConfigError(`unknown configuration key "${[...path, key].join('.')}" (known keys here: ${known})`);
    }
  }
  const out: Record<string, unknown> = {};
  for (const [key, node] of Object.entries(branch)) {
    const keyPath = [...path, key];
    if (isLeaf(node)) {
      const name = envName(keyPath);
      usedEnv.add(name);
      if (env[name] !== undefined) out[key] = coerce(node, env[name], `${name} (${keyPath.join('.')})`, true);
      else if (given[key] !== undefined && given[key] !== null) out[key] = coerce(node, given[key], keyPath.join('.'));
      else out[key] = node.default;
    } else {
      out[key] = resolve(node, given[key], env, keyPath, usedEnv);
    }
  }
  return out;
}

function checkAddr(addr: string): void {
  const m = /^(.*):(\d{1,5})$/.exec(addr);
  if (!m || !m[1] || Number(m[2]) > 65535) throw new ConfigError(`http.addr: expected host:port, got "${addr}"`);
}

/** Parse a config document (YAML text) plus environment overrides into a validated, frozen Config. */
export function parseConfig(text: string, env: NodeJS.ProcessEnv = process.env, source = 'config'): Config {
  let doc: unknown;
  try {
    doc = text.trim() === '' ? {} : parseYaml(text);
  } catch (err) {
    throw new ConfigError(`${source}: invalid YAML: ${(err as Error).message}`);
  }
  const usedEnv = new Set<string>();
  const config = resolve(schema, doc, env, [], usedEnv) as unknown as Config;
  for (const name of Object.keys(env)) {
    if (name.startsWith('REGISTRY_') && !usedEnv.has(name) && !NOT_KEYS.has(name)) {
      throw new ConfigError(`unknown environment override ${name} (no such configuration key)`);
    }
  }
  checkAddr(config.http.addr);
  checkCrossKeys(config);
  return deepFreeze(config);
}

/** Load the file named by REGISTRY_CONFIG (default ./config.yml); a missing default file means all defaults. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const file = env.REGISTRY_CONFIG ?? './config.yml';
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || env.REGISTRY_CONFIG) {
      throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`);
    }
  }
  return parseConfig(text, env, file);
}

/** A config with every default, plus overrides: for tests and tools. */
export function defaultConfig(overrides: DeepPartial<Config> = {}): Config {
  const usedEnv = new Set<string>();
  const config = resolve(schema, overrides, {}, [], usedEnv) as unknown as Config;
  checkMetricsConfig(config);
  return deepFreeze(config);
}

export type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> : T[K] };

function deepFreeze<T>(o: T): T {
  if (isPlainObject(o)) for (const v of Object.values(o)) deepFreeze(v);
  return Object.freeze(o);
}

export function splitAddr(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':');
  return { host: addr.slice(0, i).replace(/^\[(.*)\]$/, '$1'), port: Number(addr.slice(i + 1)) };
}
