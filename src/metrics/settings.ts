import { readFileSync } from 'node:fs';
import { ConfigError } from '../config/errors';
import type { Config } from '../config/schema';

// The metrics.* keys that depend on each other, checked with the rest of the configuration, and the
// credentials scrapers must send, read at start.

/** host:port, or empty. */
export function parseListenAddr(value: unknown, where: string): string {
  if (value === '' || value === null || value === undefined) return '';
  const addr = typeof value === 'number' ? String(value) : value;
  const m = typeof addr === 'string' ? /^(.*):(\d{1,5})$/.exec(addr) : null;
  if (!m || !m[1] || Number(m[2]) > 65535) throw new ConfigError(`${where}: expected host:port, got ${JSON.stringify(value)}`);
  return addr as string;
}

/** Cross-key rules of metrics.*: a user needs exactly one password source, and the other way round. */
export function checkMetricsConfig(config: Config): void {
  const m = config.metrics;
  const sources = [m.password && 'metrics.password', m.passwordFile && 'metrics.passwordFile'].filter(Boolean);
  if (sources.length > 1) throw new ConfigError('metrics.password and metrics.passwordFile: set one of them, not both');
  if (m.user && sources.length === 0) throw new ConfigError('metrics.user: set metrics.passwordFile (or metrics.password, REGISTRY_METRICS_PASSWORD) too');
  if (!m.user && sources.length === 1) throw new ConfigError(`${sources[0]}: set metrics.user too (the user name scrapers send)`);
  if (m.addr && m.addr === config.http.addr) throw new ConfigError(`metrics.addr: ${m.addr} is http.addr already; leave metrics.addr empty to serve /metrics there`);
}

export interface MetricsCredentials {
  user: string;
  password: string;
}

/** The credentials scrapers must send (undefined: none asked); the password file is read now. */
export function metricsCredentials(config: Config): MetricsCredentials | undefined {
  const m = config.metrics;
  if (!m.user) return undefined;
  let password = m.password;
  if (m.passwordFile) {
    try {
      password = readFileSync(m.passwordFile, 'utf8').split(/\r?\n/)[0]!;
    } catch (err) {
      throw new ConfigError(`metrics.passwordFile: cannot read ${m.passwordFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (password === '') throw new ConfigError(`metrics.passwordFile: ${m.passwordFile} holds no password on its first line`);
  }
  return { user: m.user, password };
}
