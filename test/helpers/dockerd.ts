import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import path from 'node:path';
import { findTool } from './tools';
import { alive, exited, mountsUnder, shortTempRoot, signal, waitExit, runProcess } from './daemon';

// A private Debian dockerd (docker.io 20.10) for one test, started as real-clients.md section 4 does:
// vfs storage, no iptables/bridge/forwarding changes, everything under one fresh temp dir.
// 127.0.0.0/8 registries are insecure by default, so plain HTTP to 127.0.0.1:PORT works with no config.

export interface DockerResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface DockerOptions {
  /** Written to the CLI's stdin (e.g. a password for --password-stdin). */
  input?: string | Buffer;
  /** Kill the CLI after this many ms (default 120 000). */
  timeoutMs?: number;
  /** Extra environment for the CLI. */
  env?: Record<string, string>;
}

export interface Dockerd {
  /** Run the docker CLI against this daemon; never throws for a non-zero exit. */
  docker(args: string[], opts?: DockerOptions): Promise<DockerResult>;
  /** unix:///.../d.sock */
  host: string;
  /** Temp dir holding socket, data-root, exec-root, pidfile, config and the log. */
  dir: string;
  /** The daemon's log so far. */
  log(): string;
  /** SIGTERM, wait (SIGKILL after ~15 s), then remove what the daemon left. Idempotent; also run at teardown. */
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 15_000;

/** Paths dockerd 20.10 writes outside --data-root/--exec-root whatever the flags. */
const STRAY_FILES = ['/etc/docker/key.json'];
const STRAY_DIRS = ['/run/docker/plugins', '/run/docker'];

/** Debian's daemon (/usr/sbin/dockerd), else whatever dockerd is on PATH. */
function dockerdBinary(): string {
  return findTool('/usr/sbin/dockerd') ?? findTool('dockerd') ?? '/usr/sbin/dockerd';
}

/** Debian's CLI (/usr/bin/docker, 20.10) first: /usr/local/bin/docker may be a newer one that downgrades its API. */
function dockerCli(): string {
  return findTool('/usr/bin/docker') ?? findTool('docker') ?? 'docker';
}

function ping(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/_ping', method: 'GET', timeout: 2000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200));
      res.on('error', () => resolve(false));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

/**
 * Start a private dockerd for this test and wait until its socket answers GET /_ping.
 * Stopped and cleaned up at teardown.
 */
export async function startDockerd(t: { teardown(fn: () => void | Promise<void>): void }): Promise<Dockerd> {
  const dir = mkdtempSync(path.join(shortTempRoot(), 'dkd-'));
  const socketPath = path.join(dir, 'd.sock');
  const host = `unix://${socketPath}`;
  const configFile = path.join(dir, 'daemon.json');
  const clientConfig = path.join(dir, 'cli');
  const logFile = path.join(dir, 'dockerd.log');
  writeFileSync(configFile, '{}\n');
  mkdirSync(clientConfig);
  // Only what did not exist before this daemon started is removed at stop.
  const strayFiles = STRAY_FILES.filter((f) => !existsSync(f));
  const strayDirs = STRAY_DIRS.filter((d) => !existsSync(d));

  const logFd = openSync(logFile, 'a');
  const child = spawn(
    dockerdBinary(),
    [
      '--config-file', configFile,
      '--storage-driver=vfs',
      '--iptables=false',
      '--ip-masq=false',
      '--bridge=none',
      '--ip-forward=false',
      '--host', host,
      '--data-root', path.join(dir, 'data'),
      '--exec-root', path.join(dir, 'exec'),
      '--pidfile', path.join(dir, 'docker.pid'),
    ],
    { stdio: ['ignore', logFd, logFd] },
  );
  closeSync(logFd);
  let spawnError: Error | undefined;
  child.on('error', (err) => (spawnError = err));

  const log = () => {
    try {
      return readFileSync(logFile, 'utf8');
    } catch {
      return '';
    }
  };

  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      // dockerd's containerd child: killed by hand only if dockerd dies without stopping it.
      let containerdPid: number | undefined;
      try {
        containerdPid = Number(readFileSync(path.join(dir, 'exec', 'containerd', 'containerd.pid'), 'utf8').trim()) || undefined;
      } catch {
        /* not started */
      }
      if (!exited(child) && child.pid !== undefined) {
        child.kill('SIGTERM');
        if (!(await waitExit(child, STOP_TIMEOUT_MS))) {
          child.kill('SIGKILL');
          await waitExit(child, 5000);
        }
      }
      if (containerdPid !== undefined && alive(containerdPid)) {
        const cmdline = (() => {
          try {
            return readFileSync(`/proc/${containerdPid}/cmdline`, 'utf8');
          } catch {
            return '';
          }
        })();
        // The pid file is ours; still check the process is our containerd before killing it.
        if (cmdline.includes(dir)) {
          signal(containerdPid, 'SIGTERM');
          for (let i = 0; i < 50 && alive(containerdPid); i++) await new Promise((r) => setTimeout(r, 100));
          if (alive(containerdPid)) signal(containerdPid, 'SIGKILL');
        }
      }
      for (const m of mountsUnder(dir)) spawnSync('umount', ['-l', m]);
      for (const f of strayFiles) rmSync(f, { force: true });
      for (const d of strayDirs) {
        try {
          rmdirSync(d); // only when empty: another daemon may be using it
        } catch {
          /* not empty or gone */
        }
      }
      rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    })());
  t.teardown(stop);

  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (spawnError || exited(child)) {
      const why = spawnError ? spawnError.message : `exit code ${child.exitCode} signal ${child.signalCode}`;
      const text = log();
      await stop();
      throw new Error(`dockerd did not start (${why}); log:\n${text}`);
    }
    if (existsSync(socketPath) && (await ping(socketPath))) break;
    if (Date.now() > deadline) {
      const text = log();
      await stop();
      throw new Error(`dockerd not ready on ${host} after ${READY_TIMEOUT_MS / 1000} s; log:\n${text}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  const cli = dockerCli();
  const docker = (args: string[], opts: DockerOptions = {}): Promise<DockerResult> => {
    const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_CONFIG: clientConfig, ...opts.env };
    // Nothing from the caller's environment may point the CLI at another daemon or context.
    delete env.DOCKER_HOST;
    delete env.DOCKER_CONTEXT;
    delete env.DOCKER_TLS_VERIFY;
    delete env.DOCKER_CERT_PATH;
    return runProcess(cli, ['-H', host, ...args], { env, input: opts.input, timeoutMs: opts.timeoutMs ?? 120_000 });
  };

  return { docker, host, dir, log, stop };
}
