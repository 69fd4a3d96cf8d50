import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { freePort } from './process';
import { requireTools, type ToolGate } from './tools';

// A throw-away PostgreSQL cluster per test file: initdb in a temp dir, a postmaster on 127.0.0.1 and a
// free port (its unix socket in the temp dir), one database owned by a password user (not a superuser,
// as a registry's would be). PostgreSQL refuses to run as root, so as root every program runs as the
// `postgres` user (runuser); as anyone else, as that user. Durability is off: the data dies with the test.

export interface PgCluster {
  /** postgres://registry:<password>@127.0.0.1:<port>/registry: the registry's own user and database. */
  url: string;
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  /** The postmaster's PID (stopped by it at teardown). */
  pid: number;
  /** The temp directory: data, socket and server.log (removed at teardown). */
  dir: string;
  /** A new empty database owned by the registry user; its URL. */
  createDatabase(name: string): Promise<string>;
  /** Run SQL as the superuser (over the unix socket, trust auth) in `database` (default: the registry's). */
  admin<T>(fn: (client: Client) => Promise<T>, database?: string): Promise<T>;
  /**
   * Stop the postmaster (replicas see their connections end: `fast` terminates sessions and shuts down
   * cleanly, `immediate` as a crash would) and wait until it is gone. `pid` is then 0.
   */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Start it again on the same data, address and port; waits until it accepts connections. */
  start(): Promise<void>;
  /** Milliseconds initdb and the start took (the harness's cost, for BENCHMARKS/reports). */
  timings: { initdbMs: number; startMs: number; setupMs: number };
}

interface Teardown extends ToolGate {
  teardown(fn: () => void | Promise<void>): void;
}

/** The newest installed server's bin directory (Debian: /usr/lib/postgresql/<major>/bin), or PG_BIN. */
export function postgresBinDir(): string {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const root = '/usr/lib/postgresql';
  const majors = existsSync(root) ? readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a)) : [];
  return path.join(root, majors[0] ?? '15', 'bin');
}

const SERVER_SETTINGS = [
  "listen_addresses = '127.0.0.1'",
  'fsync = off', // a test's data is thrown away: no flushes at all
  'synchronous_commit = off',
  'full_page_writes = off',
  'shared_buffers = 16MB',
  'max_connections = 60', // 4 pools of 10 in the concurrent-migration test, plus admin sessions
  "log_min_messages = 'warning'",
];

/**
 * Start a cluster for this test, stopped (by PID) and removed at teardown. undefined when the
 * PostgreSQL binaries are missing on a developer machine (requireTools recorded a skip; under CI it failed).
 */
export async function startPostgres(t: Teardown): Promise<PgCluster | undefined> {
  const bin = postgresBinDir();
  const asRoot = process.getuid?.() === 0;
  if (!requireTools(t, [path.join(bin, 'initdb'), path.join(bin, 'pg_ctl'), path.join(bin, 'postgres'), ...(asRoot ? ['runuser'] : [])])) return undefined;
  const run = (program: string, args: string[]): void => {
    const [cmd, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', path.join(bin, program), ...args]] : [path.join(bin, program), args];
    const r = spawnSync(cmd, argv, { encoding: 'utf8', timeout: 60_000 });
    if (r.status !== 0) throw new Error(`${program} failed (${r.status ?? r.signal}): ${r.stderr || r.stdout}`);
  };

  const dir = mkdtempSync(path.join(tmpdir(), 'registry-pg-'));
  const data = path.join(dir, 'data');
  let pid = 0;
  t.teardown(async () => {
    if (pid) await stopByPid(pid);
    rmSync(dir, { recursive: true, force: true });
  });
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }));
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }));
    chownSync(dir, uid, gid);
  }

  const t0 = performance.now();
  // --no-sync: initdb's own fsyncs are most of its time on this machine. Local (socket) connections are
  // trusted for the harness's superuser; TCP ones, the registry's, need the password.
  run('initdb', ['-D', data, '-U', 'postgres', '--auth-local=trust', '--auth-host=scram-sha-256', '--no-sync', '-E', 'UTF8', '--locale=C', '--no-instructions']);
  const t1 = performance.now();

  let port = 0;
  for (let attempt = 0; ; attempt++) {
    port = await freePort();
    appendFileSync(path.join(data, 'postgresql.conf'), [...SERVER_SETTINGS, `port = ${port}`, `unix_socket_directories = '${dir}'`, ''].join('\n'));
    try {
      run('pg_ctl', ['start', '-w', '-t', '60', '-D', data, '-l', path.join(dir, 'server.log')]);
      break;
    } catch (err) {
      // Another process took the port between freePort and the bind: try another one.
      if (attempt >= 2) throw new Error(`${(err as Error).message}\n${readLog(dir)}`);
    }
  }
  const readPid = () => Number(readFileSync(path.join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
  pid = readPid();
  const t2 = performance.now();

  const user = 'registry';
  const database = 'registry';
  const password = randomBytes(12).toString('hex');
  const admin = async <T>(fn: (client: Client) => Promise<T>, db = database): Promise<T> => {
    const client = new Client({ host: dir, port, user: 'postgres', database: db });
    await client.connect();
    try {
      return await fn(client);
    } finally {
      await client.end();
    }
  };
  await admin(async (c) => {
    await c.query(`CREATE ROLE ${user} LOGIN PASSWORD '${password}'`);
    await c.query(`CREATE DATABASE ${database} OWNER ${user}`);
  }, 'postgres');
  const t3 = performance.now();

  const urlOf = (db: string) => `postgres://${user}:${password}@127.0.0.1:${port}/${db}`;
  return {
    url: urlOf(database),
    host: '127.0.0.1',
    port,
    user,
    password,
    database,
    dir,
    admin,
    async createDatabase(name) {
      if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`bad database name ${name}`);
      await admin((c) => c.query(`CREATE DATABASE ${name} OWNER ${user}`), 'postgres');
      return urlOf(name);
    },
    get pid() {
      return pid;
    },
    async stop(mode = 'fast') {
      if (!pid) return;
      const was = pid;
      process.kill(was, mode === 'fast' ? 'SIGINT' : 'SIGQUIT'); // PostgreSQL's fast / immediate shutdown
      for (let waited = 0; alive(was); waited += 20) {
        if (waited >= 30_000) throw new Error(`PostgreSQL (pid ${was}) did not stop within 30 s`);
        await new Promise((r) => setTimeout(r, 20));
      }
      pid = 0;
    },
    async start() {
      if (pid) return;
      run('pg_ctl', ['start', '-w', '-t', '60', '-D', data, '-l', path.join(dir, 'server.log')]);
      pid = readPid();
    },
    timings: { initdbMs: Math.round(t1 - t0), startMs: Math.round(t2 - t1), setupMs: Math.round(t3 - t2) },
  };
}

function readLog(dir: string): string {
  try {
    return readFileSync(path.join(dir, 'server.log'), 'utf8');
  } catch {
    return '';
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGQUIT is PostgreSQL's immediate shutdown (no checkpoint: the data is thrown away); SIGKILL if it lingers. */
async function stopByPid(pid: number): Promise<void> {
  if (!alive(pid)) return;
  process.kill(pid, 'SIGQUIT');
  for (let waited = 0; alive(pid); waited += 20) {
    if (waited === 5000) process.kill(pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 20));
  }
}
