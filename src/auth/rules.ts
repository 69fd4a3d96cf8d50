import { ConfigError } from '../config/errors';

// Access rules as written in config.yml (auth.groups, auth.rules), validated at start.

export const ACTIONS = ['pull', 'push', 'delete'] as const;
export type Action = (typeof ACTIONS)[number];

export interface AccessRule {
  /** Repository glob: `*` stays within one path component, `**` spans any; `$user` is the caller's name. */
  repository: string;
  /** Users, group names (`@group` or the bare name of a group), `$anonymous`, `$authenticated`. */
  who: string[];
  actions: Action[];
}

const isStringList = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string' && x !== '');

/** Names of Object's own machinery: refused as user and group names, so no lookup can ever land on them. */
const RESERVED_NAMES = new Set([...Object.getOwnPropertyNames(Object.prototype), 'prototype']);

export const isReservedName = (name: string): boolean => RESERVED_NAMES.has(name);

function checkName(name: string, where: string): void {
  if (isReservedName(name)) throw new ConfigError(`${where}: "${name}" cannot be a user or group name (it is reserved)`);
}

export function parseGroups(value: unknown, where: string): Record<string, string[]> {
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new ConfigError(`${where}: expected a mapping of group name to a list of users`);
  for (const [name, members] of Object.entries(value)) {
    checkName(name, `${where}.${name}`);
    if (!isStringList(members)) throw new ConfigError(`${where}.${name}: expected a list of user names`);
    for (const m of members) checkName(m, `${where}.${name}`);
  }
  return value as Record<string, string[]>;
}

export function parseRules(value: unknown, where: string): AccessRule[] {
  if (value === null || value === undefined) return [];
  if (!Array.isArray(value)) throw new ConfigError(`${where}: expected a list of rules`);
  return value.map((rule, i) => {
    const at = `${where}[${i}]`;
    if (typeof rule !== 'object' || rule === null || Array.isArray(rule)) throw new ConfigError(`${at}: expected a mapping`);
    for (const key of Object.keys(rule)) {
      if (!['repository', 'who', 'actions'].includes(key)) throw new ConfigError(`unknown configuration key "${at}.${key}" (known keys here: repository, who, actions)`);
    }
    const r = rule as Record<string, unknown>;
    if (typeof r.repository !== 'string' || r.repository === '') throw new ConfigError(`${at}.repository: expected a repository glob`);
    if (!isStringList(r.who) || r.who.length === 0) throw new ConfigError(`${at}.who: expected a non-empty list of users, groups, $anonymous or $authenticated`);
    if (!isStringList(r.actions) || r.actions.some((a) => !(ACTIONS as readonly string[]).includes(a))) {
      throw new ConfigError(`${at}.actions: expected a list of ${ACTIONS.join(', ')}`);
    }
    for (const w of r.who) {
      if (w.startsWith('$') && w !== '$anonymous' && w !== '$authenticated') throw new ConfigError(`${at}.who: unknown keyword ${w}`);
      checkName(w.startsWith('@') ? w.slice(1) : w, `${at}.who`);
    }
    return { repository: r.repository, who: r.who, actions: r.actions as Action[] };
  });
}
