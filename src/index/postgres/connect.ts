import pg from 'pg';

// The connection pool of the PostgreSQL index. Every replica holds one; PostgreSQL's max_connections
// bounds replicas x `max`. Errors name the server (host and port), never the URL: it holds the password.

export interface PoolOptions {
  /** Connections per pool (default 10). */
  max?: number;
  /** Where to report a connection that broke while idle in the pool (default: ignored, the pool replaces it). */
  onIdleError?: (message: string) => void;
}

/** host:port a URL names, for messages (a unix socket: its directory, from ?host=). Never the credentials. */
export function serverOf(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error('index.postgres.url is not a valid URL (expected postgres://user:password@host:port/database)');
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new Error(`index.postgres.url must start with postgres:// or postgresql://, not ${parsed.protocol}//`);
  }
  const host = parsed.searchParams.get('host') ?? (parsed.hostname || 'localhost');
  return `${host}:${parsed.port || 5432}`;
}

// Booleans as 1 / 0, as SQLite returns them. int8 (bigint: sizes, millisecond times, count(*)) and numeric (what sum() of a bigint returns) as numbers
// rather than pg's default strings, so rows look like better-sqlite3's and SQL such as
// `coalesce(sum(size), 0)` is shared. This schema holds integers only; beyond 2^53 a number would be wrong,
// so that is an error instead.
const INT8_OID = 20;
const BOOL_OID = 16;
const NUMERIC_OID = 1700;
function toSafeInteger(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new Error(`${text} is not an integer JavaScript can hold exactly`);
  return n;
}
const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: string) => {
    if ((oid === INT8_OID || oid === NUMERIC_OID) && format !== 'binary') return toSafeInteger;
    if (oid === BOOL_OID && format !== 'binary') return (text: string) => (text === 't' ? 1 : 0); // as SQLite's 1 / 0
    return pg.types.getTypeParser(oid, format as 'text');
  }) as pg.CustomTypesConfig['getTypeParser'],
};

/** The PostgreSQL index cannot be used at start (unreachable, refused login, failed migration): one line for the operator. */
export class PostgresStartError extends Error {
  override name = 'PostgresStartError';
}

/** A pool on `url`, not yet connected (see connectPool). */
export function createPool(url: string, opts: PoolOptions = {}): pg.Pool {
  const server = serverOf(url);
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.max ?? 10,
    connectionTimeoutMillis: 5_000, // an unreachable server fails a request in bounded time, not after the OS's TCP timeout
    idleTimeoutMillis: 30_000,
    keepAlive: true,
    // A transaction's BEGIN, SAVEPOINT and a lone write's COMMIT go out without waiting for the answer
    // before them (postgres/database.ts): one round trip each fewer.
    pipeline: true,
    application_name: 'tsregistry',
    // A transaction left open by a bug must not hold its row locks (and block every replica) forever.
    idle_in_transaction_session_timeout: 60_000,
    types,
  });
  // An idle client whose connection drops emits 'error' on the pool; unhandled, that would end the process.
  pool.on('error', (err) => opts.onIdleError?.(`PostgreSQL connection to ${server} lost: ${describe(err, url)}`));
  return pool;
}

/**
 * A connection of its own, outside the pool (leadership, the change feed), not yet connected. Bounded: a
 * dead socket fails its queries within 5 s instead of leaving them hanging, and keepalives notice a
 * vanished server.
 */
export function dedicatedClient(url: string, applicationName: string): pg.Client {
  return new pg.Client({
    connectionString: url,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    query_timeout: 5000,
    connectionTimeoutMillis: 5000,
    application_name: applicationName,
  });
}

/**
 * A pool on `url` that has connected once: a server that cannot be reached, or refuses the credentials,
 * stops the start with one line naming host and port (no stack trace, no password).
 */
export async function connectPool(url: string, opts: PoolOptions = {}): Promise<pg.Pool> {
  const server = serverOf(url);
  const pool = createPool(url, opts);
  try {
    const client = await pool.connect();
    client.release();
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw new PostgresStartError(`cannot connect to the PostgreSQL index at ${server}: ${describe(err, url)}`);
  }
  return pool;
}

/** One line about a connection error, with the URL's password (if any) removed should a library quote it. */
export function describe(err: unknown, url: string): string {
  const e = err as { code?: string; message?: string };
  let text = (e.message || e.code || String(err)).split('\n')[0]!;
  let password = '';
  try {
    password = decodeURIComponent(new URL(url).password);
  } catch {
    // serverOf already rejected a URL that does not parse
  }
  if (password) text = text.split(password).join('***');
  return text;
}
