import { ConfigError } from '../config/errors';
import { parseDurationSeconds } from '../config/duration';

// Parsers of the ui.* configuration keys (schema.ts).

/** ui.pathPrefix: an absolute path of plain segments, without a trailing slash ("/ui", "/tools/registry"). */
export function parsePathPrefix(value: unknown, where: string): string {
  const s = String(value ?? '').trim().replace(/\/+$/, '');
  if (!/^(\/[A-Za-z0-9._~-]+)+$/.test(s)) {
    throw new ConfigError(`${where}: expected an absolute path such as /ui or /tools/registry (letters, digits, . _ ~ -), got ${JSON.stringify(value)}`);
  }
  if (/^\/(v1|v2|token|healthz|readyz)(\/|$)/.test(s)) throw new ConfigError(`${where}: ${s} is taken by the registry API`);
  return s;
}

/** ui.sessionTtl: a duration ("8h", "30m", "2d") or seconds, as seconds. */
export function parseSessionTtl(value: unknown, where: string): number {
  return parseDurationSeconds(value, where, 60);
}
