import { readFileSync } from 'node:fs';
import { ConfigError } from '../config/errors';
import type { Config } from '../config/schema';

// The index keys that depend on each other (run by parseConfig, so the server and `config check` agree).

/** index.postgres: a URL, and a password in at most one other place. */
export function checkIndexConfig(index: Config['index']): void {
  if (index.driver !== 'postgres') return;
  const pg = index.postgres;
  // Below this, its change feed would ping PostgreSQL more often than it can answer.
  if (pg.cacheStaleness > 0 && pg.cacheStaleness < 100) {
    throw new ConfigError(`index.postgres.cacheStaleness is ${pg.cacheStaleness}: set 0 (no cache) or at least 100 milliseconds`);
  }
  if (!pg.url) throw new ConfigError('index.postgres.url is empty: set it (or REGISTRY_INDEX_POSTGRES_URL) to use index.driver postgres');
  const sources = [pg.password && 'index.postgres.password', pg.passwordFile && 'index.postgres.passwordFile', urlPassword(pg.url) && 'the password in index.postgres.url'];
  if (sources.filter(Boolean).length > 1) throw new ConfigError(`${sources.filter(Boolean).join(' and ')}: set the password in one place only`);
}

function urlPassword(url: string): string {
  try {
    return new URL(url).password;
  } catch {
    return '';
  }
}

/** The URL to connect with: index.postgres.url with the password from its file or key put in. */
export function postgresUrl(pg: Config['index']['postgres']): string {
  let password = pg.password;
  if (pg.passwordFile) {
    try {
      password = readFileSync(pg.passwordFile, 'utf8').split(/\r?\n/)[0]!;
    } catch (err) {
      throw new ConfigError(`index.postgres.passwordFile: cannot read ${pg.passwordFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (password === '') throw new ConfigError(`index.postgres.passwordFile: ${pg.passwordFile} holds no password on its first line`);
  }
  if (!password) return pg.url;
  const url = new URL(pg.url);
  url.password = encodeURIComponent(password);
  return url.toString();
}
