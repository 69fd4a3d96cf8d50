import { copyFileSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Test } from 'tap';
import { sharedPostgres, newPostgresDatabase } from './index-db';
import { makeCerts, renderConfig, startNginx, type Nginx } from './nginx';
import type { PgCluster } from './postgres';
import { freePort, spawnServer, type ServerProcess } from './process';
import { startS3rver, S3RVER_KEY, type S3rver } from './s3rver';
import { tempDir } from './server';
import { requireTools } from './tools';

// N registry processes (dist/server.js, as `npm start` runs it) sharing one PostgreSQL index (a throw-away
// cluster, helpers/postgres.ts) and one s3rver bucket, behind Debian's nginx running the shipped
// nginx/registry.conf with its one upstream server replaced by the N replicas (round-robin). Mode `split`
// sends the requests of one upload to different replicas on purpose: POST to replica 0, PATCH to 1, PUT
// to 2 (DELETE to 0), everything else round-robin. Replicas can be stopped (SIGTERM / SIGKILL) and started
// again on their port; PostgreSQL can be stopped and started under them.

export type Balancing = 'round-robin' | 'split';

export interface Replica {
  /** Its position (0-based), also its name in nginx's split map: replica<i>. */
  i: number;
  port: number;
  /** The running process, undefined while stopped. */
  proc?: ServerProcess;
  /** Everything each process of this replica wrote to stdout/stderr (pino lines), restarts included. */
  log(): string;
}

export interface ReplicaSet {
  pg: PgCluster;
  /** The registry's database on the cluster (also readable through `query`). */
  databaseUrl: string;
  s3: S3rver;
  nginx: Nginx;
  replicas: Replica[];
  /** http://127.0.0.1:PORT: nginx's plain-HTTP listener added for in-test clients (fetch has no test CA). */
  base: string;
  /** 127.0.0.1:PORT of nginx's TLS listener (the shipped one) for skopeo, podman and docker. */
  tlsHost: string;
  /** A directory holding only the test CA as ca.crt (skopeo --dest-cert-dir, podman --cert-dir). */
  caDir: string;
  /** The environment every replica starts with (a copy). */
  env: Record<string, string>;
  /** Start replica i (not running) on its port; resolves once it answers /v1/_ping. */
  start(i: number): Promise<ServerProcess>;
  /** Stop replica i with `signal` and wait for its exit; the exit code (null if killed by the signal). */
  stop(i: number, signal?: NodeJS.Signals): Promise<number | null>;
  /** Replicas whose latest leadership log line says they lead, among the running ones. */
  leaders(): number[];
  /** Run SQL in the registry's database as the superuser. */
  query<T = Record<string, unknown>>(sql: string): Promise<T[]>;
  /** Committed blob objects in the bucket (s3rver's files under blobs/). */
  blobObjects(): number;
  /** Replicas that exited without being stopped by `stop`: which, how, and the end of their output. */
  unexpectedExits: string[];
}

export interface ReplicaOptions {
  replicas?: number;
  balancing?: Balancing;
  /** Extra REGISTRY_* settings for every replica. */
  env?: Record<string, string>;
  /** nginx config edits after rendering (tests of proxy settings). */
  editConfig?: (conf: string) => string;
}

/** Tools the replica harness runs (requireTools: under CI a missing one fails the test). */
export const REPLICA_TOOLS = ['nginx', 'openssl', 'initdb', 'pg_ctl', 'postgres'];

/** Every server's pino lines that say it leads or stopped leading, in order. */
const LEADERSHIP = /"msg":"(leading: this replica runs the background work|leadership lost[^"]*)"/g;

/**
 * Start PostgreSQL, s3rver, `replicas` registry processes and nginx in front of them. undefined when a
 * tool is missing (requireTools recorded the skip, or the failure under CI=true).
 */
export async function startReplicas(t: Test, opts: ReplicaOptions = {}): Promise<ReplicaSet | undefined> {
  if (!requireTools(t, REPLICA_TOOLS)) return undefined;
  const n = opts.replicas ?? 3;
  const balancing = opts.balancing ?? 'round-robin';
  if (balancing === 'split' && n < 3) throw new Error('split balancing needs 3 replicas');
  const dir = tempDir(t, 'replicas-');
  const pg = await sharedPostgres();
  const databaseUrl = await newPostgresDatabase();
  const s3 = await startS3rver(t);
  const s3conf = s3.overrides.storage!.s3!;

  // One secret directory for all: a token issued by one replica is accepted by the others, and so is a UI session.
  const secrets = path.join(dir, 'secrets');
  mkdirSync(secrets);
  const env: Record<string, string> = {
    REGISTRY_INDEX_DRIVER: 'postgres',
    REGISTRY_INDEX_POSTGRES_URL: databaseUrl,
    REGISTRY_INDEX_POSTGRES_MAX_CONNECTIONS: '5',
    REGISTRY_STORAGE_DRIVER: 's3',
    REGISTRY_STORAGE_S3_ENDPOINT: s3conf.endpoint!,
    REGISTRY_STORAGE_S3_BUCKET: s3conf.bucket!,
    REGISTRY_STORAGE_S3_FORCE_PATH_STYLE: 'true',
    REGISTRY_STORAGE_S3_ACCESS_KEY_ID: S3RVER_KEY,
    REGISTRY_STORAGE_S3_SECRET_ACCESS_KEY: S3RVER_KEY,
    REGISTRY_STORAGE_S3_REGION: 'us-east-1',
    REGISTRY_STORAGE_S3_PART_SIZE: String(5 * 1024 * 1024),
    REGISTRY_AUTH_TOKEN_SECRET_FILE: path.join(secrets, 'token.key'),
    REGISTRY_UI_SESSION_SECRET_FILE: path.join(secrets, 'ui-session.key'),
    REGISTRY_HTTP_TRUST_PROXY: '1',
    // info: the leadership lines (and one line per request, which diagnoses a failed client operation).
    REGISTRY_LOG_LEVEL: 'info',
    ...opts.env,
  };

  const replicas: (Replica & { logs: string[] })[] = [];
  const unexpectedExits: string[] = [];
  const stopping = new WeakSet<ServerProcess>();
  for (let i = 0; i < n; i++) {
    const r: Replica & { logs: string[] } = {
      i,
      port: await freePort(),
      logs: [],
      log: () => [...r.logs, r.proc ? r.proc.stdout() + r.proc.stderr() : ''].join(''),
    };
    replicas.push(r);
  }

  const start = async (i: number): Promise<ServerProcess> => {
    const r = replicas[i]!;
    if (r.proc) throw new Error(`replica ${i} is running`);
    const proc = await spawnServer(t, { ...env, REGISTRY_HTTP_ADDR: `127.0.0.1:${r.port}` }, r.port);
    r.proc = proc;
    void proc.exited.then((code) => {
      if (r.proc !== proc || stopping.has(proc)) return; // stopped by stop()
      unexpectedExits.push(`replica ${i} exited (${code ?? proc.child.signalCode}): ${(proc.stdout() + proc.stderr()).slice(-3000)}`);
      r.logs.push(proc.stdout() + proc.stderr());
      r.proc = undefined;
    });
    return proc;
  };
  const stop = async (i: number, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> => {
    const r = replicas[i]!;
    const proc = r.proc;
    if (!proc) return null;
    stopping.add(proc);
    const code = await proc.stop(signal);
    r.logs.push(proc.stdout() + proc.stderr());
    r.proc = undefined;
    return code;
  };
  // One at a time: replicas starting together is the migration lock's test (test/index), not this one's.
  for (let i = 0; i < n; i++) await start(i);

  // nginx: the shipped config, its upstream server replaced by the replicas.
  const ngx = path.join(dir, 'nginx');
  mkdirSync(ngx);
  const certs = makeCerts(path.join(ngx, 'certs'));
  const caDir = path.join(ngx, 'ca-only');
  mkdirSync(caDir);
  copyFileSync(certs.ca, path.join(caDir, 'ca.crt'));
  const https = await freePort();
  const http = await freePort();
  const plain = await freePort();
  let conf = renderConfig(ngx, { upstreamPort: replicas[0]!.port, https, http });
  conf = upstreamsFor(conf, replicas.map((r) => r.port), balancing);
  conf = replaceOnce(conf, `listen 127.0.0.1:${https} ssl http2;`, `listen 127.0.0.1:${https} ssl http2;\n        listen 127.0.0.1:${plain};`);
  if (opts.editConfig) conf = opts.editConfig(conf);
  for (const d of ['logs', 'tmp', 'acme']) mkdirSync(path.join(ngx, d), { recursive: true });
  const file = path.join(ngx, 'nginx.conf');
  writeFileSync(file, conf);
  const nginx = await startNginx(t, ngx, file, https);

  return {
    pg,
    databaseUrl,
    s3,
    nginx,
    replicas,
    base: `http://127.0.0.1:${plain}`,
    tlsHost: `127.0.0.1:${https}`,
    caDir,
    env: { ...env },
    start,
    stop,
    leaders: () =>
      replicas
        .filter((r) => r.proc)
        .filter((r) => {
          const lines = [...(r.proc!.stdout() + r.proc!.stderr()).matchAll(LEADERSHIP)];
          return lines.at(-1)?.[1]?.startsWith('leading') ?? false;
        })
        .map((r) => r.i),
    query: async <T>(sql: string) => (await pg.admin((c) => c.query(sql), new URL(databaseUrl).pathname.slice(1))).rows as T[],
    blobObjects: () => countObjects(path.join(s3.dir, s3.bucket, 'blobs')),
    unexpectedExits,
  };
}

function replaceOnce(text: string, from: string, to: string): string {
  if (!text.includes(from)) throw new Error(`rendered nginx config lacks ${JSON.stringify(from)}`);
  return text.replace(from, to);
}

/**
 * The shipped upstream block with one `server` per replica; for `split`, also one upstream per replica and
 * a map choosing the upstream by method, which every proxy_pass then uses.
 */
export function upstreamsFor(conf: string, ports: number[], balancing: Balancing): string {
  const servers = ports.map((p) => `server 127.0.0.1:${p} max_fails=0;`).join('\n        ');
  conf = replaceOnce(conf, `server 127.0.0.1:${ports[0]} max_fails=0;`, servers);
  if (balancing === 'round-robin') return conf;
  const singles = ports.map((p, i) => `    upstream replica${i} {\n        server 127.0.0.1:${p} max_fails=0;\n        keepalive 8;\n    }\n`).join('');
  const map = [
    '    # One upload, three replicas: POST starts it on one, PATCH continues it on another, PUT ends it on a third.',
    '    map $request_method $registry_upstream {',
    '        POST replica0;',
    '        DELETE replica0;',
    '        PATCH replica1;',
    '        PUT replica2;',
    '        default tsregistry;',
    '    }',
    '',
  ].join('\n');
  conf = replaceOnce(conf, '    upstream tsregistry {', `${singles}${map}    upstream tsregistry {`);
  return conf.split('proxy_pass http://tsregistry;').join('proxy_pass http://$registry_upstream;');
}

/** Files s3rver keeps for objects under a key prefix (each object is `<key>._S3rver_object` plus metadata). */
function countObjects(dir: string): number {
  let n = 0;
  let entries: import('node:fs').Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    if (e.isDirectory()) n += countObjects(path.join(dir, e.name));
    else if (e.name.endsWith('._S3rver_object')) n++;
  }
  return n;
}
