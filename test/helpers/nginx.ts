import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import { ROOT } from './process';
import { findTool } from './tools';

// The shipped nginx/registry.conf, run for real by Debian's nginx (real-clients.md section 8): a temp copy
// whose ports, upstream, certificate, pid, log and temp paths point into one test directory, certificates
// from the shipped nginx/make-certs.sh, and nginx as a foreground child process stopped by its PID.

export const SHIPPED_CONF = path.join(ROOT, 'nginx', 'registry.conf');
export const MAKE_CERTS = path.join(ROOT, 'nginx', 'make-certs.sh');

export interface Certs {
  dir: string;
  ca: string;
  cert: string;
  key: string;
}

/** Run nginx/make-certs.sh into `dir` (throws with its output on failure). */
export function makeCerts(dir: string, names: string[] = []): Certs {
  const r = spawnSync('sh', [MAKE_CERTS, dir, ...names], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`make-certs.sh exited ${r.status}: ${r.stdout}${r.stderr}`);
  return { dir, ca: path.join(dir, 'ca.crt'), cert: path.join(dir, 'server.crt'), key: path.join(dir, 'server.key') };
}

export interface NginxPorts {
  /** Where the registry listens (replaces the upstream `server registry:5000`). */
  upstreamPort: number;
  https: number;
  http: number;
}

/** Replace `from` once at least; throws if the shipped config no longer contains it (the template drifted). */
function replaceAll(text: string, from: string, to: string): string {
  if (!text.includes(from)) throw new Error(`nginx/registry.conf no longer contains ${JSON.stringify(from)}`);
  return text.split(from).join(to);
}

/**
 * The shipped config with everything machine-specific pointed at `dir` (certs in dir/certs, logs in
 * dir/logs, temp files in dir/tmp) and every listener on 127.0.0.1. The rest is the shipped text, unchanged.
 */
export function renderConfig(dir: string, ports: NginxPorts, certsDir = path.join(dir, 'certs')): string {
  let conf = readFileSync(SHIPPED_CONF, 'utf8');
  conf = replaceAll(conf, 'server registry:5000 max_fails=0;', `server 127.0.0.1:${ports.upstreamPort} max_fails=0;`);
  conf = replaceAll(conf, 'listen 443 ssl http2;', `listen 127.0.0.1:${ports.https} ssl http2;`);
  conf = replaceAll(conf, 'listen 80;', `listen 127.0.0.1:${ports.http};`);
  conf = replaceAll(conf, 'return 308 https://$host$request_uri;', `return 308 https://$host:${ports.https}$request_uri;`);
  conf = replaceAll(conf, '/etc/nginx/certs/', `${certsDir}/`);
  conf = replaceAll(conf, 'pid /run/nginx.pid;', `pid ${dir}/nginx.pid;`);
  conf = replaceAll(conf, '/var/log/nginx/', `${dir}/logs/`);
  conf = replaceAll(conf, 'root /var/www/acme;', `root ${dir}/acme;`);
  const tmp = path.join(dir, 'tmp');
  const temps = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((k) => `    ${k}_temp_path ${tmp}/${k};`).join('\n');
  conf = replaceAll(conf, '\nhttp {\n', `\nhttp {\n${temps}\n`);
  return conf;
}

/** Write the rendered config and the directories it names; returns the config file path. */
export function writeConfig(dir: string, ports: NginxPorts, certsDir?: string): string {
  for (const d of ['logs', 'tmp', 'acme']) mkdirSync(path.join(dir, d), { recursive: true });
  // Workers (nobody, when the master runs as root) must reach the temp directories under dir.
  chmodSync(dir, 0o755);
  const file = path.join(dir, 'nginx.conf');
  writeFileSync(file, renderConfig(dir, ports, certsDir));
  return file;
}

/** `nginx -t` on a config file: exit code and what nginx said. */
export function nginxTest(conf: string, prefix: string): { code: number | null; output: string } {
  const bin = findTool('nginx') ?? 'nginx';
  const r = spawnSync(bin, ['-t', '-c', conf, '-p', prefix, '-g', 'daemon off;'], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, output: `${r.stdout}${r.stderr}` };
}

export interface Nginx {
  child: ChildProcess;
  dir: string;
  /** error.log plus nginx's own stderr so far. */
  errors(): string;
  /** access.log lines so far. */
  access(): string[];
  stop(): Promise<void>;
}

function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

function portOpen(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, host);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Start nginx in the foreground on a rendered config; waits until the HTTPS port accepts connections. */
export async function startNginx(
  t: { teardown(fn: () => unknown): void },
  dir: string,
  conf: string,
  httpsPort: number,
  host = '127.0.0.1',
): Promise<Nginx> {
  const bin = findTool('nginx') ?? 'nginx';
  const child = spawn(bin, ['-c', conf, '-p', dir, '-g', 'daemon off;'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stdout!.on('data', (d) => (stderr += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const read = (f: string) => {
    try {
      return readFileSync(path.join(dir, 'logs', f), 'utf8');
    } catch {
      return '';
    }
  };
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGQUIT'); // graceful: the master waits for its workers
        const timer = setTimeout(() => {
          // Not gone in time: the workers (children of this master) first, then the master, by PID.
          for (const pid of childPids(child.pid!)) signal(pid, 'SIGKILL');
          child.kill('SIGKILL');
        }, 10_000);
        await exited;
        clearTimeout(timer);
      }
    })());
  t.teardown(stop);
  const errors = () => `${read('error.log')}${stderr}`;
  const deadline = Date.now() + 15_000;
  while (!(await portOpen(httpsPort, host))) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`nginx exited ${child.exitCode}: ${errors()}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`nginx did not listen on ${httpsPort}: ${errors()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    child,
    dir,
    errors,
    access: () => read('access.log').split('\n').filter(Boolean),
    stop,
  };
}
