import { accessSync, constants } from 'node:fs';
import { globProblem } from '../auth/globs';
import { parseDurationSeconds } from '../config/duration';
import { ConfigError } from '../config/errors';
import { isRepositoryName } from '../names';

// proxy.upstreams (schema.ts): the pull-through cache's upstream registries, one per local namespace prefix.

export interface UpstreamConfig {
  /** Local namespace, ending in '/': `hub/` serves `hub/library/alpine` from the upstream's `library/alpine`. */
  prefix: string;
  /** Base URL of the upstream registry (http or https, no path). */
  url: string;
  /** Credentials: a user name with its password read from a file or an environment variable; '' for none. */
  username: string;
  passwordFile: string;
  passwordEnv: string;
  /** Seconds a tag looked up upstream is served from the cache before it is checked again (0: every pull). */
  tagTtl: number;
  /** Upstream repositories (after the prefix) that may be pulled through, as globs; empty: all. */
  repositories: string[];
  /** PEM file of CA certificates trusted for the upstream's TLS certificate ('' : the system's). */
  caFile: string;
  /** Seconds to wait for the upstream to connect and to answer each request's headers (and between body bytes). */
  timeout: number;
}

const KEYS = ['prefix', 'url', 'username', 'passwordFile', 'passwordEnv', 'tagTtl', 'repositories', 'caFile', 'timeout'] as const;

function optionalString(value: unknown, where: string): string {
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string') throw new ConfigError(`${where}: expected a string, got ${JSON.stringify(value)}`);
  return value;
}

function readableFile(file: string, where: string): void {
  try {
    accessSync(file, constants.R_OK);
  } catch (err) {
    throw new ConfigError(`${where}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function parseUpstream(value: unknown, at: string, env: NodeJS.ProcessEnv): UpstreamConfig {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ConfigError(`${at}: expected a mapping {prefix, url, ...}`);
  const given = value as Record<string, unknown>;
  for (const key of Object.keys(given)) {
    if (!(KEYS as readonly string[]).includes(key)) throw new ConfigError(`unknown configuration key "${at}.${key}" (known keys here: ${KEYS.join(', ')})`);
  }
  const prefix = optionalString(given.prefix, `${at}.prefix`);
  if (!prefix.endsWith('/') || !isRepositoryName(prefix.slice(0, -1))) {
    throw new ConfigError(`${at}.prefix: expected a repository namespace ending in "/", such as hub/, got ${JSON.stringify(given.prefix)}`);
  }
  const url = optionalString(given.url, `${at}.url`).replace(/\/+$/, '');
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(`${at}.url: expected an http(s) URL such as https://registry-1.docker.io, got ${JSON.stringify(given.url)}`);
  }
  if ((parsed.protocol !== 'https:' && parsed.protocol !== 'http:') || parsed.pathname !== '/' || parsed.search || parsed.username) {
    throw new ConfigError(`${at}.url: expected an http(s) URL of a registry without path, query or credentials, got ${JSON.stringify(given.url)}`);
  }
  const username = optionalString(given.username, `${at}.username`);
  const passwordFile = optionalString(given.passwordFile, `${at}.passwordFile`);
  const passwordEnv = optionalString(given.passwordEnv, `${at}.passwordEnv`);
  if (passwordFile && passwordEnv) throw new ConfigError(`${at}: set passwordFile or passwordEnv, not both`);
  if (username && !passwordFile && !passwordEnv) throw new ConfigError(`${at}.username: a password is needed too (passwordFile or passwordEnv)`);
  if (!username && (passwordFile || passwordEnv)) throw new ConfigError(`${at}.username: required with a password`);
  if (passwordFile) readableFile(passwordFile, `${at}.passwordFile`);
  if (passwordEnv && env[passwordEnv] === undefined) throw new ConfigError(`${at}.passwordEnv: the environment variable ${passwordEnv} is not set`);
  const caFile = optionalString(given.caFile, `${at}.caFile`);
  if (caFile) readableFile(caFile, `${at}.caFile`);
  const repositories = given.repositories ?? [];
  if (!Array.isArray(repositories) || repositories.some((r) => typeof r !== 'string')) {
    throw new ConfigError(`${at}.repositories: expected a list of repository globs such as library/*`);
  }
  repositories.forEach((glob: string, i) => {
    const problem = globProblem(glob, false);
    if (problem) throw new ConfigError(`${at}.repositories[${i}]: ${problem}`);
  });
  const tagTtl = given.tagTtl === undefined ? 300 : parseDurationSeconds(given.tagTtl, `${at}.tagTtl`);
  const timeout = given.timeout === undefined ? 30 : parseDurationSeconds(given.timeout, `${at}.timeout`, 1);
  return { prefix, url, username, passwordFile, passwordEnv, tagTtl, repositories: repositories as string[], caFile, timeout };
}

/** proxy.upstreams: a list of upstreams whose prefixes do not overlap. */
export function parseUpstreams(value: unknown, where: string, env: NodeJS.ProcessEnv = process.env): UpstreamConfig[] {
  if (value === null || value === undefined) return [];
  if (!Array.isArray(value)) throw new ConfigError(`${where}: expected a list of {prefix, url, ...}`);
  const upstreams = value.map((u, i) => parseUpstream(u, `${where}[${i}]`, env));
  upstreams.forEach((u, i) => {
    const other = upstreams.findIndex((o, j) => j !== i && (u.prefix.startsWith(o.prefix) || o.prefix.startsWith(u.prefix)));
    if (other >= 0) throw new ConfigError(`${where}[${i}].prefix: ${u.prefix} overlaps ${upstreams[other]!.prefix} of ${where}[${other}]`);
  });
  return upstreams;
}
